"""The neural swap engine: ArcFace identity → inswapper_128 on the arcface-aligned crop → soft paste-back.

Contracts, as insightface's ``model_zoo/arcface_onnx.py`` and ``model_zoo/inswapper.py`` define them:

* ArcFace w600k_r50: a 112x112 RGB crop aligned to the arcface template, ``(x − 127.5) / 127.5``, NCHW
  → a 512-d embedding. Its L2-normalised form is insightface's ``normed_embedding``.
* inswapper_128: ``target`` = the 128x128 RGB crop aligned to the 128 template, ``x / 255`` (mean 0), NCHW;
  ``source`` = the latent, 1x512; ``output`` = 1x3x128x128 RGB in 0..1.
* The latent: ``l = normed_embedding · emap; l /= ‖l‖``, with ``emap`` the model's last initializer
  (512x512). This normalisation is the one insightface's INSwapper.get applies and the model was trained
  with; we keep it exactly. For a preset with several photos we average the *normalised* embeddings
  and normalise the mean again before the emap (each photo counts equally whatever its embedding's
  magnitude, which varies with image quality; the result is the identity direction insightface
  expects). The latent is computed once per preset, never per frame.

On a GPU the frame arrives as a cupy array and stays there: alignment warp, NCHW conversion, inference
through IOBinding, and paste-back all run on the device; only the 2x3 matrices live on the host.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facefusion_obs.config import locations
from facefusion_obs.runtime.onnx import CPU, OnnxModel, select_providers
from facefusion_obs.runtime.xp import module_of
from facefusion_obs.swap.align import align_crop, five_from_mesh, paste_back, soft_crop_mask

log = logging.getLogger(__name__)

ARCFACE_SIZE = 112
SWAP_SIZE = 128
EMBEDDING_DIM = 512


# ------------------------------------------------------------------------------------------- maths
def normed(vector: Any) -> Any:
    """L2-normalised copy (float32); refuses a zero vector instead of producing NaNs."""
    xp = module_of(vector)
    v = xp.asarray(vector, dtype=xp.float32).reshape(-1)
    norm = float(xp.linalg.norm(v))
    if not norm > 0.0:
        raise ValueError("cannot normalise a zero embedding (the face crop was probably empty)")
    return v / norm


def mean_identity(embeddings: Sequence[Any]) -> np.ndarray:
    """The preset's identity: mean of the photos' normalised embeddings, normalised again."""
    if not embeddings:
        raise ValueError("a preset needs at least one face embedding")
    stack = np.stack([np.asarray(normed(e)) for e in embeddings])
    return np.asarray(normed(stack.mean(axis=0)))


def latent_from_embedding(embedding: Any, emap: Any) -> Any:
    """insightface's latent: ``normed(embedding) · emap``, then L2-normalised; shape (1, 512) float32."""
    xp = module_of(emap)
    e = normed(xp.asarray(embedding)).reshape(1, -1)
    latent = e @ xp.asarray(emap, dtype=xp.float32)
    return (latent / xp.linalg.norm(latent)).astype(xp.float32)


def to_nchw(crop: Any, scale: float, offset: float = 0.0) -> Any:
    """HxWx3 uint8 RGB → 1x3xHxW float32 ``(x − offset) · scale`` (the models' input blobs)."""
    xp = module_of(crop)
    blob = xp.ascontiguousarray(crop.transpose(2, 0, 1)[None], dtype=xp.float32)
    if offset:
        blob -= offset
    blob *= scale
    return blob


def from_nchw(output: Any) -> Any:
    """1x3xHxW RGB in 0..1 (float32 or float16) → HxWx3 uint8."""
    xp = module_of(output)
    img = output[0].transpose(1, 2, 0).astype(xp.float32)
    img *= 255.0
    img += 0.5
    return xp.ascontiguousarray(xp.clip(img, 0, 255).astype(xp.uint8))


# ------------------------------------------------------------------------------------------ models
class ArcFace(OnnxModel):
    """w600k_r50: aligned 112 crop → raw 512-d embedding (normalise with ``normed``)."""

    def check_contract(self) -> None:
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or list(inputs[0].shape[1:]) != [3, ARCFACE_SIZE, ARCFACE_SIZE]:
            found = [(i.name, i.shape) for i in inputs]
            raise ValueError(f"{self.path}: not an arcface model (inputs {found}, expected one "
                             f"N x 3 x {ARCFACE_SIZE} x {ARCFACE_SIZE} input)")
        self.output_shapes = {self.output_names[0]: (1, EMBEDDING_DIM)}

    def warm_up(self) -> None:
        self.run({self.input_names[0]: np.zeros((1, 3, ARCFACE_SIZE, ARCFACE_SIZE), np.float32)})

    def get(self, rgb: Any, five: np.ndarray) -> np.ndarray:
        """The raw embedding (host, float32) of the face whose five keypoints are ``five`` in ``rgb``."""
        crop, _ = align_crop(rgb, five, ARCFACE_SIZE)
        out = self.run({self.input_names[0]: to_nchw(crop, 1.0 / 127.5, 127.5)})[0]
        from facefusion_obs.runtime.xp import to_numpy

        return to_numpy(out).reshape(-1).astype(np.float32)


class InSwapper(OnnxModel):
    """inswapper_128 (or its fp16 twin): aligned 128 crop + latent → swapped crop."""

    output_shapes: Mapping[str, tuple[int, ...]] = {"output": (1, 3, SWAP_SIZE, SWAP_SIZE)}

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.emap = read_emap(self.path)

    def check_contract(self) -> None:
        shapes = {i.name: list(i.shape) for i in self.session.get_inputs()}
        if shapes.get("target") != [1, 3, SWAP_SIZE, SWAP_SIZE] or shapes.get("source") != [1, EMBEDDING_DIM]:
            raise ValueError(f"{self.path}: not an inswapper_128 model (inputs {shapes}; expected target "
                             f"[1, 3, {SWAP_SIZE}, {SWAP_SIZE}] and source [1, {EMBEDDING_DIM}])")
        self.output_shapes = {self.output_names[0]: (1, 3, SWAP_SIZE, SWAP_SIZE)}

    def latent(self, identity: Any, xp: Any = np) -> Any:
        """The model input for a preset identity (an embedding, normalised or not)."""
        return latent_from_embedding(xp.asarray(identity), xp.asarray(self.emap))

    def get(self, crop: Any, latent: Any) -> Any:
        """Swap one aligned 128 crop (uint8 RGB, numpy or cupy) → uint8 RGB crop of the same module."""
        return from_nchw(self.infer(self.blob(crop), latent))

    @staticmethod
    def blob(crop: Any) -> Any:
        """The ``target`` input: RGB / 255, no mean, NCHW (insightface's input_mean 0, input_std 255)."""
        return to_nchw(crop, 1.0 / 255.0)

    def infer(self, blob: Any, latent: Any) -> Any:
        """The raw ``output`` (1x3x128x128 RGB 0..1) for a ``target`` blob and a ``source`` latent."""
        return self.run({"target": blob, "source": latent})[0]


def read_emap(path: Path) -> np.ndarray:
    """The 512x512 ``emap`` initializer (the graph's last one, where insightface reads it).

    Parsing a 530 MB protobuf costs seconds and a gigabyte, so the matrix is cached as a plain ``.npz``
    (``allow_pickle=False``) keyed by the file's size and modification time; ``model_path`` has already
    verified the file's SHA-256 before we get here.
    """
    path = Path(path)
    st = path.stat()
    cache = locations().cache_dir / "emap" / f"{path.stem}-{st.st_size}-{st.st_mtime_ns}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            emap = data["emap"]
        if emap.shape == (EMBEDDING_DIM, EMBEDDING_DIM):
            return emap
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise RuntimeError("reading inswapper's emap needs the 'onnx' package (pip install onnx)") from exc
    model = onnx.load(str(path), load_external_data=False)
    inits = list(model.graph.initializer)
    named = [i for i in inits if i.name == "emap"]
    candidate = named[0] if named else (inits[-1] if inits else None)
    if candidate is None or tuple(candidate.dims) != (EMBEDDING_DIM, EMBEDDING_DIM):
        raise ValueError(f"{path}: no {EMBEDDING_DIM}x{EMBEDDING_DIM} emap initializer (last initializer is "
                         f"{None if candidate is None else (candidate.name, list(candidate.dims))})")
    emap = numpy_helper.to_array(candidate).astype(np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f"{cache.stem}.tmp-{os.getpid()}.npz")
    np.savez(tmp, emap=emap)
    os.replace(tmp, cache)
    return emap


def swapper_model_names(provider: str) -> tuple[str, ...]:
    """Which inswapper file to prefer: fp16 on a GPU (half the memory traffic, tensor cores), fp32 on the
    CPU (where fp16 is emulated and slower); the other one is the fallback."""
    if provider == CPU:
        return ("inswapper_128", "inswapper_128_fp16")
    return ("inswapper_128_fp16", "inswapper_128")


# ------------------------------------------------------------------------------ models, shared
_MODELS: dict[tuple[str, str], OnnxModel] = {}
_MODELS_LOCK = threading.Lock()


def _shared(cls: type[OnnxModel], path: Path) -> Any:
    """One prepared (warmed-up) instance per model file in the process, whatever the number of streams."""
    key = (cls.__name__, str(Path(path).resolve()))
    with _MODELS_LOCK:
        if key not in _MODELS:
            model = cls(path)
            model.prepare(select_providers())
            log.info("%s: %s on %s", cls.__name__, Path(path).name, model.provider)
            _MODELS[key] = model
        return _MODELS[key]


def clear_models() -> None:
    with _MODELS_LOCK:
        _MODELS.clear()


def fetch_instructions(missing: Mapping[str, str]) -> str:
    """The exact commands that make the inswapper engine available, licence step included."""
    names = " ".join(missing)
    reasons = "; ".join(f"{name}: {why}" for name, why in missing.items())
    return (f"the inswapper engine needs {names} ({reasons}). These insightface models are licensed for "
            f"non-commercial research only (https://github.com/deepinsight/insightface#license). To accept "
            f"that licence and fetch them, run: facefusion-obs models fetch {names} --accept-license")


def load_models(provider_hint: str | None = None) -> tuple[ArcFace, InSwapper]:
    """The verified, prepared ArcFace and inswapper models, or ModelUnavailable with the fix."""
    from facefusion_obs.models import ModelUnavailable, model_path

    best = provider_hint or select_providers()[0][0]
    missing: dict[str, str] = {}
    arc_path = swap_path = None
    try:
        arc_path = model_path("arcface_w600k_r50")
    except ModelUnavailable as exc:
        missing["arcface_w600k_r50"] = str(exc)
    for name in swapper_model_names(best):
        try:
            swap_path = model_path(name)
            break
        except ModelUnavailable as exc:
            if name == "inswapper_128":  # the fp16 file is optional; ask for the one with a pinned hash
                missing[name] = str(exc)
    if swap_path is not None:
        missing.pop("inswapper_128", None)
    if missing or arc_path is None or swap_path is None:
        raise ModelUnavailable(fetch_instructions(missing))
    try:
        return _shared(ArcFace, arc_path), _shared(InSwapper, swap_path)
    except (RuntimeError, ValueError) as exc:  # verified bytes, yet unusable: still never a black stream
        raise ModelUnavailable(f"the inswapper engine's models could not be opened ({exc}); "
                               f"re-fetch them: facefusion-obs models fetch arcface_w600k_r50 "
                               f"{swap_path.stem} --force --accept-license") from exc


def identity_key(arcface: ArcFace) -> str:
    """The preset cache key: names the model *and* its bytes, so embeddings made with one file (a
    stand-in, an older download) are never reused with another."""
    from facefusion_obs.models.verify import sha256_file

    return f"arcface_w600k_r50_{_file_digest(arcface.path, sha256_file)[:16]}"


@functools.lru_cache(maxsize=16)
def _digest_cached(path: str, size: int, mtime: int, digest: Any) -> str:
    return digest(Path(path))


def _file_digest(path: Path, digest: Any) -> str:
    st = Path(path).stat()
    return _digest_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns, digest)


def preset_identity(preset: Any, arcface: ArcFace) -> np.ndarray:
    """The preset's identity embedding (512, normalised), computed once and cached inside the preset."""

    def compute(p: Any) -> dict[str, np.ndarray]:
        embeddings = [arcface.get(image, five_from_mesh(points))
                      for image, points in zip(p.images(), p.landmarks, strict=True)]
        return {"embeddings": np.stack(embeddings), "identity": mean_identity(embeddings)}

    arrays = preset.cached_arrays(identity_key(arcface), compute)
    return np.asarray(arrays["identity"], np.float32)


# ------------------------------------------------------------------------------------- the engine
class InswapperSwapper:
    """The ``inswapper`` engine for one stream (same contract as the mesh engine).

    ``process(rgb) -> (rgb, face_mask)``: each tracked face is arcface-aligned to 128, swapped to the
    preset's identity and pasted back on its ROI through a soft mask; the mask (H, W float32) is the
    matting's opaque region. Frames pass through unchanged without a preset or a face.
    Construction raises ModelUnavailable (with the fetch command) when the models are not there, which
    ``build_swapper`` turns into a fallback to ``mesh``.
    """

    engine = "inswapper"

    def __init__(self, options: Mapping[str, Any], models: tuple[ArcFace, InSwapper] | None = None) -> None:
        """``models`` (prepared ArcFace and InSwapper) replaces the manifest lookup; the benchmark uses it
        to time generated stand-ins without registering them."""
        from facefusion_obs.faces import FaceTracker

        self.arcface, self.swapper = models or load_models()
        self.provider = self.swapper.provider
        self.tracker = FaceTracker(max_faces=int(options.get("max_faces", 1)))
        self.options: dict[str, Any] = {}
        from facefusion_obs.presets import PresetWatcher

        self.watcher = PresetWatcher()
        self._latent: tuple[Any, Any] | None = None
        self._mask: dict[str, Any] = {}
        self._xp: Any = None
        self.timings: dict[str, float] = {}
        self.faces_swapped = 0
        self.sync_timings = False  # the benchmark sets it: GPU stage times need a sync to be true
        self.configure(options)

    def configure(self, options: Mapping[str, Any]) -> None:
        if self.watcher.follow(str(options.get("preset", ""))):
            self._latent = None
        self.tracker.max_faces = int(options.get("max_faces", 1))
        self.options = dict(options)

    def reset(self) -> None:
        self.tracker.reset()

    def latent(self) -> Any | None:
        """The model input for the current preset, on the model's device; recomputed when it changes."""
        preset = self.watcher.current()
        if preset is None:
            return None
        key = (id(preset), preset.revision)
        if self._latent is None or self._latent[0] != key:
            identity = preset_identity(preset, self.arcface)
            self._latent = (key, self.swapper.latent(identity, self._model_xp()))
        return self._latent[1]

    def _model_xp(self) -> Any:
        """cupy when the model runs on the GPU and CuPy is there; otherwise numpy (onnxruntime then copies
        the small crop to the device itself: slower by a transfer, never broken)."""
        if self._xp is None:
            from facefusion_obs.runtime.xp import cupy_or_none

            self._xp = (cupy_or_none() if self.swapper.device == "cuda" else None) or np
        return self._xp

    def soft_mask(self, xp: Any) -> Any:
        if xp.__name__ not in self._mask:
            self._mask[xp.__name__] = soft_crop_mask(SWAP_SIZE, xp)
        return self._mask[xp.__name__]

    def _clock(self, xp: Any) -> float:
        if self.sync_timings and xp is not np:
            xp.cuda.get_current_stream().synchronize()
        return time.perf_counter()

    def process(self, rgb: Any, t: float | None = None) -> tuple[Any, Any]:
        from facefusion_obs.runtime.xp import to_numpy

        latent = self.latent()
        if latent is None:
            self.faces_swapped = 0
            return rgb, None
        t0 = time.perf_counter()
        faces = self.tracker.process(to_numpy(rgb), time.monotonic() if t is None else t)
        t1 = time.perf_counter()
        self.faces_swapped = 0
        timings = {"track": (t1 - t0) * 1e3, "align": 0.0, "inference": 0.0, "paste": 0.0}
        if not faces:
            self.timings = timings
            return rgb, None
        xp = module_of(rgb)
        model_xp = self._model_xp()
        tf = time.perf_counter()
        out = rgb.copy()
        mask = xp.zeros(rgb.shape[:2], xp.float32)
        timings["frame"] = (time.perf_counter() - tf) * 1e3
        timings["convert"] = 0.0
        for face in faces:
            ta = time.perf_counter()
            try:
                crop, m = align_crop(rgb, five_from_mesh(face.landmarks), SWAP_SIZE)
            except (ValueError, np.linalg.LinAlgError) as exc:
                log.debug("face %s not swapped: %s", face.track_id, exc)
                continue
            tb = self._clock(xp)
            blob = self.swapper.blob(_to_module(crop, model_xp))
            tc = self._clock(model_xp)
            output = self.swapper.infer(blob, latent)
            td = self._clock(model_xp)
            swapped = _to_module(from_nchw(output), xp)
            te = self._clock(xp)
            paste_back(out, swapped, m, self.soft_mask(xp), mask)
            tg = self._clock(xp)
            timings["align"] += (tb - ta) * 1e3
            timings["convert"] += (tc - tb + te - td) * 1e3
            timings["inference"] += (td - tc) * 1e3
            timings["paste"] += (tg - te) * 1e3
            self.faces_swapped += 1
        self.timings = timings
        if not self.faces_swapped:
            return rgb, None
        return out, mask


def _to_module(array: Any, xp: Any) -> Any:
    """Move a (small) array to ``xp``'s device: only 128x128 crops ever cross when the frame is on the
    host and the model on the GPU; with a cupy frame nothing crosses at all."""
    if module_of(array) is xp:
        return array
    if xp is np:
        from facefusion_obs.runtime.xp import to_numpy

        return to_numpy(array)
    return xp.asarray(array)
