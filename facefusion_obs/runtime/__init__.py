"""Inference runtimes (onnxruntime, LiteRT) and the array module that pixel code is written against."""
