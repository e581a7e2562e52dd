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

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from facefusion_obs.config import locations
from facefusion_obs.runtime.onnx import CPU, OnnxModel
from facefusion_obs.runtime.xp import module_of
from facefusion_obs.swap.align import align_crop, five_from_mesh, paste_back, soft_crop_mask

if TYPE_CHECKING:
    from facefusion_obs.runtime.pool import ModelPool, VerifiedFile

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

    model_name = "arcface_w600k_r50"

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
    """inswapper_128 (or its fp16 twin, loaded by name): aligned 128 crop + latent → swapped crop."""

    model_name = "inswapper_128"
    output_shapes: Mapping[str, tuple[int, ...]] = {"output": (1, 3, SWAP_SIZE, SWAP_SIZE)}

    def __init__(self, file: VerifiedFile, session: Any) -> None:
        super().__init__(file, session)
        self.emap = read_emap(file)

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


def read_emap(file: VerifiedFile) -> np.ndarray:
    """The 512x512 ``emap`` initializer (the graph's last one, where insightface reads it), from the
    verified bytes the session was made from.

    Parsing a 530 MB protobuf costs seconds and a gigabyte, so the matrix is cached as a plain ``.npz``
    (``allow_pickle=False``) keyed by the bytes' SHA-256.
    """
    path = file.path
    cache = locations().cache_dir / "emap" / f"{path.stem}-{file.sha256[:32]}.npz"
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
    model = onnx.load_from_string(file.data)
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


def fetch_instructions(missing: Mapping[str, str]) -> str:
    """The exact commands that make the inswapper engine available, licence step included."""
    names = " ".join(missing)
    reasons = "; ".join(f"{name}: {why}" for name, why in missing.items())
    return (f"the inswapper engine needs {names} ({reasons}). These insightface models are licensed for "
            f"non-commercial research only (https://github.com/deepinsight/insightface#license). To accept "
            f"that licence and fetch them, run: facefusion-obs models fetch {names} --accept-license")


def load_models(pool: ModelPool) -> tuple[ArcFace, InSwapper]:
    """The verified, prepared ArcFace and inswapper models from ``pool``, or ModelUnavailable with the fix.

    Which inswapper file is used follows the provider (``swapper_model_names``) among those installed.
    """
    from facefusion_obs.models import ModelUnavailable
    from facefusion_obs.swap import engine_status

    status = engine_status(pool, "inswapper")
    if not status.available:
        raise ModelUnavailable(fetch_instructions(status.missing))
    names = [n for n in swapper_model_names(pool.providers[0][0]) if not pool.check(n)]
    try:
        return pool.load(ArcFace), pool.load(InSwapper, names[0])
    except (RuntimeError, ValueError) as exc:  # verified bytes, yet unusable: still never a black stream
        raise ModelUnavailable(f"the inswapper engine's models could not be opened ({exc}); "
                               f"re-fetch them: facefusion-obs models fetch arcface_w600k_r50 "
                               f"{names[0]} --force --accept-license") from exc


def identity_key(arcface: ArcFace) -> str:
    """The preset cache key: names the model *and* its bytes, so embeddings made with one file (a
    stand-in, an older download) are never reused with another."""
    return f"arcface_w600k_r50_{arcface.sha256[:16]}"


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
    the swap stage turns into a fallback to ``mesh``.
    """

    engine = "inswapper"

    def __init__(self, options: Mapping[str, Any], pool: ModelPool) -> None:
        from facefusion_obs.faces import FaceTracker

        self.arcface, self.swapper = load_models(pool)
        self.provider = self.swapper.provider
        self.tracker = FaceTracker(pool, max_faces=int(options.get("max_faces", 1)))
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
        faces = self.tracker.process(to_numpy(rgb), t)  # frame time (None: frames at 30/s), never wall clock
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
            if not face.swap:  # the tracker's consistency check: never draw a torn or misplaced face
                continue
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
