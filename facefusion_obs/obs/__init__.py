"""Runs inside OBS: standard library only, never blocks the render thread."""
