"""The array module: pixel code is written once against ``xp`` and runs on numpy or cupy.

Functions take arrays and find their module with :func:`module_of`, so the same code path serves the
CPU tests and the GPU stream without a second copy.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy


def cupy_or_none() -> ModuleType | None:
    """cupy when it is installed *and* a CUDA device answers, else None."""
    try:
        import cupy  # type: ignore[import-not-found]

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
    except Exception:  # not installed, no driver, no device: all mean "use numpy"
        return None
    return None


def module_of(array: Any) -> ModuleType:
    """The array module that owns ``array`` (numpy for anything that is not a cupy array)."""
    if type(array).__module__.startswith("cupy"):
        import cupy  # type: ignore[import-not-found]

        return cupy
    return numpy


def to_numpy(array: Any) -> numpy.ndarray:
    """A host copy (or the array itself when it is already numpy)."""
    if isinstance(array, numpy.ndarray):
        return array
    return array.get()
