"""Benchmarks behind ``facefusion-obs bench``; each module has ``run(args)``."""
