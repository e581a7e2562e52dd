"""Per-frame processing in the worker: faces and swap, then matting, then composition to RGBA."""
