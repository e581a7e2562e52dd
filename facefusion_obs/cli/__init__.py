"""The ``facefusion-obs`` command line."""
