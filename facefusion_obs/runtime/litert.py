"""LiteRT (TensorFlow Lite) sessions on the CPU, built from verified bytes.

The model pool (``runtime/pool.py``) creates one session per model and shares it between every
pipeline. A LiteRT interpreter is not re-entrant, so each session carries a lock; the MediaPipe models
run in 1-3 ms, so serialising calls from several channels costs little and keeps memory at one copy.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # older installs ship the same interpreter as tflite_runtime
        from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found]
    return Interpreter


# LiteRT's C++ core prints this to the process's stderr (fd 2) when it builds the first interpreter.
# A command's error must be one line, so the banner is held back; anything else written meanwhile
# (by any thread) is passed on unchanged once the interpreter exists.
_BANNER = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


@contextlib.contextmanager
def _without_native_banner() -> Iterator[None]:
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (a GUI host): nothing to hide
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            rest = b"".join(line for line in held.read().splitlines(keepends=True) if not line.startswith(_BANNER))
            if rest:
                os.write(2, rest)


def default_threads() -> int:
    """Half the cores (at least 1): the worker runs faces and matting side by side."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


class LiteRTSession:
    """One .tflite model from its verified bytes. ``run(*inputs)`` returns outputs in the model's order.

    ``label`` (the file name) names the model in errors.
    """

    def __init__(self, data: bytes, label: str, num_threads: int | None = None) -> None:
        self.label = label
        self._data = data  # the interpreter reads the flatbuffer in place: keep it alive as long as we are
        with _without_native_banner():
            self.interpreter = _interpreter_class()(model_content=data,
                                                    num_threads=num_threads or default_threads())
            self.interpreter.allocate_tensors()
        self.inputs = self.interpreter.get_input_details()
        self.outputs = self.interpreter.get_output_details()
        self.lock = threading.Lock()

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(int(v) for v in d["shape"]) for d in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [d["name"] for d in self.outputs]

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        if len(inputs) != len(self.inputs):
            raise ValueError(f"{self.label} takes {len(self.inputs)} inputs, got {len(inputs)}")
        with self.lock:
            for detail, array in zip(self.inputs, inputs, strict=True):
                shape = tuple(int(v) for v in detail["shape"])
                if tuple(array.shape) != shape:
                    raise ValueError(f"{self.label}: input {detail['name']!r} must have shape {shape}, "
                                     f"got {tuple(array.shape)}")
                self.interpreter.set_tensor(detail["index"], np.ascontiguousarray(array, detail["dtype"]))
            self.interpreter.invoke()
            return [self.interpreter.get_tensor(d["index"]).copy() for d in self.outputs]
