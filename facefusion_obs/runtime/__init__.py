"""Inference runtimes (onnxruntime, LiteRT), the array module pixel code is written against, and its array ops."""
