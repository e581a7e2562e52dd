"""Matting: green/blue-screen keying with a clean plate, despill, guided-filter edges, temporal
smoothing and an optional person prior (MediaPipe selfie segmentation)."""

from facefusion_obs.matting.matter import Matter, build_matter

__all__ = ["Matter", "build_matter"]
