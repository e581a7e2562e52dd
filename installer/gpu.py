"""Which onnxruntime build the installer asks for, and what it removes first.

Rules this encodes:
* ``onnxruntime`` (CPU) and ``onnxruntime-gpu`` install the same ``onnxruntime`` package folder and
  overwrite each other's files, so the other build is uninstalled first and the two never coexist.
  The project itself names neither in its dependencies, only in its ``[cpu]`` and ``[gpu]`` extras, so
  re-installing the project (as every installer run does) cannot bring the other build back.
* ``onnxruntime-gpu`` is pinned to the CPU build's version (same API the worker was tested with); its
  ``[cuda,cudnn]`` extras bring CUDA 12 and cuDNN 9 as wheels, so no system CUDA toolkit is needed.
* TensorRT comes as the ``tensorrt-cu12-libs`` wheel of the major version that onnxruntime release was
  built against (ONNX Runtime's published table). A release newer than the table gets the newest major
  the table knows; ``facefusion-obs doctor`` then shows whether TensorRT actually starts, and the worker
  falls back to CUDA when it does not.
* CuPy for CUDA 12 (``cupy-cuda12x``) keeps pixel work on the GPU.

Standard library only: the installer runs before the worker's venv has anything in it.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

# onnxruntime (major, minor) -> TensorRT version it was built with (onnxruntime.ai, TensorRT EP page)
TENSORRT_FOR_ONNXRUNTIME = {(1, 18): "10.0", (1, 19): "10.2", (1, 20): "10.4", (1, 21): "10.8",
                            (1, 22): "10.9"}
MIN_ONNXRUNTIME_GPU = (1, 18)  # first CUDA 12 + TensorRT 10 release
CUDA_EXTRAS_SINCE = (1, 21)  # onnxruntime-gpu[cuda,cudnn] pulls the NVIDIA runtime wheels


@dataclass(frozen=True)
class GpuRequirements:
    """``uninstall`` runs first; ``install`` lines join the project's own install in one pip command,
    so pip resolves them together (what ``tests/test_installer.py`` dry-runs)."""

    uninstall: list[str]
    install: list[str]
    notes: list[str] = field(default_factory=list)

    def pip_commands(self, python: str) -> list[list[str]]:
        """argv lists for ``subprocess.run`` with the worker venv's interpreter."""
        commands = []
        if self.uninstall:
            commands.append([python, "-m", "pip", "uninstall", "-y", *self.uninstall])
        commands.append([python, "-m", "pip", "install", *self.install])
        return commands


def _version_tuple(version: str) -> tuple[int, int]:
    match = re.match(r"^(\d+)\.(\d+)", version.strip())
    if not match:
        raise ValueError(f"onnxruntime version {version!r} is not of the form MAJOR.MINOR[.PATCH]")
    return int(match.group(1)), int(match.group(2))


def tensorrt_requirement(onnxruntime_version: str) -> tuple[str, str | None]:
    """The TensorRT wheel requirement for an onnxruntime release, and a note when it is a best guess."""
    key = _version_tuple(onnxruntime_version)
    if key in TENSORRT_FOR_ONNXRUNTIME:
        trt = TENSORRT_FOR_ONNXRUNTIME[key]
        note = None
    else:
        newest = max(TENSORRT_FOR_ONNXRUNTIME)
        trt = TENSORRT_FOR_ONNXRUNTIME[newest]
        note = (f"onnxruntime {onnxruntime_version} is newer than the TensorRT table (up to "
                f"{newest[0]}.{newest[1]}): installing TensorRT {trt.split('.')[0]}.x >= {trt}; run "
                "'facefusion-obs doctor' to confirm the TensorRT provider starts (CUDA is used if not)")
    major = int(trt.split(".")[0])
    return f"tensorrt-cu12-libs>={trt},<{major + 1}", note


def gpu_requirements(onnxruntime_version: str | None, *, tensorrt: bool = True,
                     platform: str = sys.platform) -> GpuRequirements:
    """Requirement lines for the GPU stack, pinned to ``onnxruntime_version`` (the build in use, CPU or
    GPU); ``None`` on a fresh venv takes the newest release with the NVIDIA runtime wheels."""
    if platform == "darwin":
        raise ValueError("--gpu needs an NVIDIA GPU with CUDA 12, which macOS does not have")
    if onnxruntime_version is None:
        install = [f"onnxruntime-gpu[cuda,cudnn]>={CUDA_EXTRAS_SINCE[0]}.{CUDA_EXTRAS_SINCE[1]}", "cupy-cuda12x>=13"]
        if tensorrt:
            newest = max(TENSORRT_FOR_ONNXRUNTIME)
            install.append(tensorrt_requirement(f"{newest[0]}.{newest[1]}")[0])
        return GpuRequirements(uninstall=["onnxruntime"], install=install)
    key = _version_tuple(onnxruntime_version)
    if key < MIN_ONNXRUNTIME_GPU:
        raise ValueError(f"onnxruntime {onnxruntime_version} predates CUDA 12 builds; use "
                         f"{MIN_ONNXRUNTIME_GPU[0]}.{MIN_ONNXRUNTIME_GPU[1]} or newer")
    extras = "[cuda,cudnn]" if key >= CUDA_EXTRAS_SINCE else ""
    install = [f"onnxruntime-gpu{extras}=={onnxruntime_version}", "cupy-cuda12x>=13"]
    notes = []
    if not extras:
        notes.append("this onnxruntime-gpu needs CUDA 12 and cuDNN 9 installed system-wide")
    if tensorrt:
        line, note = tensorrt_requirement(onnxruntime_version)
        install.append(line)
        if note:
            notes.append(note)
    return GpuRequirements(uninstall=["onnxruntime"], install=install, notes=notes)


def cpu_requirements(onnxruntime_version: str | None) -> GpuRequirements:
    """A plain install: the GPU stack out (a no-op on a CPU venv), the CPU build of the same version in."""
    return GpuRequirements(uninstall=["onnxruntime-gpu", "cupy-cuda12x", "tensorrt-cu12-libs"],
                           install=[f"onnxruntime=={onnxruntime_version}"] if onnxruntime_version else [])
