"""onnxruntime sessions: execution-provider choice, sessions from verified bytes, device-resident I/O.

Provider order is TensorRT (fp16, engine and timing caches under ``locations().cache_dir``) → CUDA →
CPU, taken from what the *installed* onnxruntime build offers (``onnxruntime-gpu`` lists the first
two; the CPU wheel only the last). A provider that is offered but cannot start (missing CUDA/cuDNN/
TensorRT libraries, a driver too old) is dropped and the next one tried, so a broken GPU set-up degrades
to the CPU instead of a black stream. The provider a session *actually* runs on is reported back
(``OnnxModel.provider``) because onnxruntime may silently fall back and the streamer must see that.

Sessions are created from the bytes the model pool verified (``runtime/pool.py``), and the pool shares
each loaded model between every FramePipeline of the process; nothing is cached here.

I/O goes through ``IOBinding`` for numpy and cupy arrays alike (device type ``cpu`` or ``cuda``, bound by
pointer), so on a GPU the pixels never leave the device between stages, and the very same code path
is what the CPU tests exercise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facefusion_obs.config import locations
from facefusion_obs.runtime.xp import module_of

log = logging.getLogger(__name__)

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PROVIDER_ORDER = (TENSORRT, CUDA, CPU)
SHORT_NAMES = {TENSORRT: "tensorrt", CUDA: "cuda", CPU: "cpu"}

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
              "tensor(int32)": np.int32, "tensor(uint8)": np.uint8}


def available_providers() -> list[str]:
    """What the installed onnxruntime build offers (the one call tests monkeypatch to pose as a GPU build)."""
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def tensorrt_cache_dir() -> Path:
    """Engines take minutes to build; caching them (and the timing cache) makes the next start seconds."""
    return locations().cache_dir / "tensorrt"


def select_providers(available: Sequence[str] | None = None, *, fp16: bool = True,
                     device_id: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """The providers to ask for, best first, each with its options; CPU always closes the list."""
    offered = set(available_providers() if available is None else available)
    chosen: list[tuple[str, dict[str, Any]]] = []
    if TENSORRT in offered:
        cache = str(tensorrt_cache_dir())
        chosen.append((TENSORRT, {
            "device_id": device_id,
            "trt_fp16_enable": bool(fp16),
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": cache,
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": cache,
        }))
    if CUDA in offered:
        # HEURISTIC avoids the exhaustive cuDNN search that stalls the first frames for seconds.
        chosen.append((CUDA, {"device_id": device_id, "cudnn_conv_algo_search": "HEURISTIC"}))
    chosen.append((CPU, {}))
    return chosen


# Process-wide on purpose: this loads shared libraries into the process, which happens once per
# process whatever the number of pools (a second dlopen is a no-op); it is not model state.
_PRELOADED = False


def preload_gpu_libraries() -> None:
    """Load the pip-installed CUDA/cuDNN/TensorRT libraries before the first GPU session.

    The installer's ``--gpu`` brings them as wheels, which are not on the dynamic loader's search path;
    ``onnxruntime.preload_dlls`` (onnxruntime-gpu >= 1.21) loads CUDA and cuDNN from those wheels, and
    the TensorRT wheel's ``libnvinfer`` is loaded by path. Best effort: a failure leaves the provider to
    fail to start, which ``create_session`` handles by falling back.
    """
    global _PRELOADED
    if _PRELOADED:
        return
    _PRELOADED = True
    import onnxruntime

    preload = getattr(onnxruntime, "preload_dlls", None)
    if preload is not None:
        try:
            preload()
        except Exception as exc:
            log.info("onnxruntime.preload_dlls failed: %s", exc)
    try:
        import ctypes

        import tensorrt_libs  # type: ignore[import-not-found]  # the tensorrt-cu12-libs wheel

        folder = Path(tensorrt_libs.__file__).parent
        for lib in [*sorted(folder.glob("libnvinfer.so*")), *sorted(folder.glob("nvinfer*.dll"))][:1]:
            ctypes.CDLL(str(lib))
    except Exception as exc:  # not installed or not loadable: TensorRT simply will not start
        log.debug("TensorRT libraries not preloaded: %s", exc)


def _create(model: bytes | Path, providers: list[tuple[str, dict[str, Any]]]) -> Any:
    import onnxruntime

    if any(name != CPU for name, _ in providers):
        preload_gpu_libraries()

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # the worker log reports the provider in use; ORT's chatter is noise
    # Idle intra-op threads otherwise spin for a while after each run, stealing the cores that the
    # paste-back and matting need right after inference (measured: paste-back 2-3x slower on 2 cores).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    return onnxruntime.InferenceSession(source, sess_options=options,
                                        providers=[name for name, _ in providers],
                                        provider_options=[opts for _, opts in providers])


def create_session(model: bytes | Path, providers: list[tuple[str, dict[str, Any]]] | None = None, *,
                   label: str = "") -> tuple[Any, str]:
    """Open ``model`` (verified bytes, or a path for a probe) on the best provider that actually starts;
    returns (session, provider in use). ``label`` names the model in messages.

    When creating the session fails with a GPU provider in the list, that provider is dropped and the
    next tried: a TensorRT build error must cost quality, never the stream.
    """
    if providers is None:
        providers = select_providers()
    if TENSORRT in [name for name, _ in providers]:
        tensorrt_cache_dir().mkdir(parents=True, exist_ok=True)
    label = label or (Path(model).name if not isinstance(model, bytes) else "model")
    remaining = list(providers)
    while True:
        try:
            session = _create(model, remaining)
        except Exception as exc:
            if len(remaining) <= 1:
                raise RuntimeError(f"onnxruntime cannot open model {label}: {exc}") from exc
            log.warning("provider %s failed for %s (%s); trying %s", remaining[0][0], label, exc,
                        remaining[1][0])
            remaining = remaining[1:]
            continue
        in_use = session.get_providers()[0]
        if in_use != remaining[0][0]:
            log.warning("%s: asked for %s, onnxruntime runs it on %s", label, remaining[0][0], in_use)
        return session, in_use


def device_of(provider: str) -> str:
    """The array device that feeds a provider without copies: ``cuda`` for GPU providers."""
    return "cuda" if provider in (TENSORRT, CUDA) else "cpu"


class OnnxModel:
    """Base of the one-class-per-model wrappers (insightface model_zoo style: ``prepare``, then ``get``).

    Built by the model pool from a verified file and the session made from its bytes. Subclasses fix
    the input/output contract; this class owns the session, the provider report, the fixed output
    shapes and the IOBinding run.
    """

    #: the manifest entry a subclass loads by default
    model_name: str | None = None
    #: output shape per output name when the model leaves it symbolic; subclasses fill this in
    output_shapes: Mapping[str, tuple[int, ...]] = {}

    def __init__(self, file: Any, session: Any) -> None:
        self.path = Path(file.path)
        self.sha256: str = file.sha256
        self.session: Any = session
        self.provider: str = session.get_providers()[0]
        self.input_names: list[str] = []
        self.input_dtypes: dict[str, Any] = {}
        self.output_names: list[str] = []
        self.output_dtypes: dict[str, Any] = {}

    def prepare(self, *, warm_up: bool = True) -> str:
        """Check the contract and run once, so TensorRT builds its engine now, not on frame 1.

        Returns the provider actually in use.
        """
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        self.input_names = [i.name for i in inputs]
        self.input_dtypes = {i.name: _ORT_TYPES.get(i.type, np.float32) for i in inputs}
        self.output_names = [o.name for o in outputs]
        self.output_dtypes = {o.name: _ORT_TYPES.get(o.type, np.float32) for o in outputs}
        self._static_shapes = {o.name: _static(o.shape) for o in outputs}
        self.check_contract()
        if warm_up:
            self.warm_up()
        return self.provider

    @property
    def device(self) -> str:
        return device_of(self.provider)

    def check_contract(self) -> None:
        """Refuse a file whose inputs differ from what this class feeds: a clear error, not a crash."""

    def warm_up(self) -> None:
        """Run once on zeros; subclasses with symbolic input shapes override to pick one."""
        feeds = {}
        for i in self.session.get_inputs():
            shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in i.shape)
            feeds[i.name] = np.zeros(shape, dtype=self.input_dtypes[i.name])
        if self.device == "cuda":
            from facefusion_obs.runtime.xp import cupy_or_none

            cp = cupy_or_none()  # without CuPy the host arrays are bound and onnxruntime copies them
            if cp is not None:
                feeds = {k: cp.asarray(v) for k, v in feeds.items()}
        self.run(feeds)

    def output_shape(self, name: str, feeds: Mapping[str, Any]) -> tuple[int, ...]:
        shape = self.output_shapes.get(name) or self._static_shapes.get(name)
        if shape is None:
            raise RuntimeError(f"{self.path.name}: output {name!r} has a symbolic shape; "
                               f"{type(self).__name__}.output_shapes must name it")
        return shape

    def run(self, feeds: Mapping[str, Any]) -> list[Any]:
        """Run on numpy or cupy inputs; outputs come back as arrays of the same module (no host trip on GPU).

        Inputs are cast to the dtype the model declares (the fp16 inswapper takes float16), and outputs
        are written into arrays allocated here so that IOBinding never has to copy them out.
        """
        if not self.input_names:
            raise RuntimeError(f"{type(self).__name__}.prepare() was not called for {self.path.name}")
        first = next(iter(feeds.values()))
        xp = module_of(first)
        on_gpu = xp is not np
        device_type = "cuda" if on_gpu else "cpu"
        binding = self.session.io_binding()
        keep = []  # the bound buffers must outlive run_with_iobinding
        for name in self.input_names:
            array = xp.ascontiguousarray(feeds[name], dtype=self.input_dtypes[name])
            keep.append(array)
            binding.bind_input(name, device_type, 0, self.input_dtypes[name], list(array.shape),
                               _pointer(array))
        outputs = []
        for name in self.output_names:
            out = xp.empty(self.output_shape(name, feeds), dtype=self.output_dtypes[name])
            outputs.append(out)
            binding.bind_output(name, device_type, 0, self.output_dtypes[name], list(out.shape),
                                _pointer(out))
        if on_gpu:
            xp.cuda.get_current_stream().synchronize()  # cupy's kernels that made the inputs are done
            binding.synchronize_inputs()
        self.session.run_with_iobinding(binding)
        if on_gpu:
            binding.synchronize_outputs()
        del keep
        return outputs


def _pointer(array: Any) -> int:
    if isinstance(array, np.ndarray):
        return int(array.ctypes.data)
    return int(array.data.ptr)


def _static(shape: Sequence[Any]) -> tuple[int, ...] | None:
    if all(isinstance(d, int) and d > 0 for d in shape):
        return tuple(shape)
    return None


def provider_report() -> dict[str, Any]:
    """What ``doctor`` and the worker's status line show: the build's providers and the order we would use."""
    offered = available_providers()
    return {"available": offered, "order": [name for name, _ in select_providers(offered)],
            "best": SHORT_NAMES.get(select_providers(offered)[0][0], select_providers(offered)[0][0])}
