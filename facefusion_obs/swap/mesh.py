"""The ``mesh`` swap engine: the preset's face texture warped piecewise-affinely onto the target's
468 landmarks, colour-matched to the target's lighting and blended through a feathered mask.

Everything per pixel is written once against the frame's array module (numpy or cupy). The warp is
vectorised over triangles: every triangle's bounding-box pixels are enumerated in one flat array, the
pixels inside each triangle keep their barycentric coordinates, and the source position of every face
pixel follows from those in one step (no Python loop over triangles).

What the mask leaves to the target, on purpose: the mouth opening (MediaPipe's mesh has a hole there,
so the target's teeth and tongue stay), triangles that fold over when the head turns (their winding
flips, so they are dropped instead of tearing), and faces that are too small, too turned or too far
outside the frame (passed through unchanged). Eyes are warped from the source through the lid
landmarks, so a target blink closes the source eye.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from facefusion_obs.runtime.imageops import box_mean, remap, resize_linear
from facefusion_obs.runtime.xp import module_of, to_numpy

if TYPE_CHECKING:
    from facefusion_obs.runtime.pool import ModelPool

log = logging.getLogger(__name__)

MIN_FACE_PX = 40  # smaller faces are passed through: too few pixels per triangle to warp cleanly
MAX_FOLDED = 0.30  # fraction of flipped triangles beyond which the pose is too extreme (> ~60° yaw)
MAX_OUTSIDE = 0.35  # fraction of the face box that may lie outside the frame
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # Rec. 601 weights: brightness as the eye sees it


@dataclass(frozen=True)
class SourceFace:
    """What the engine needs from a preset: a face texture and its landmarks in texture pixels."""

    texture: Any  # (h, w, 3) uint8 RGB, in the frame's array module
    points: np.ndarray  # (468, 2) float64 texture pixels


@dataclass
class FaceResult:
    """Per face: whether it was swapped, why not otherwise, and timings (ms)."""

    swapped: bool
    reason: str = ""
    warp_ms: float = 0.0
    blend_ms: float = 0.0
    opacity: float = 1.0  # < 1 while a face the tracker lost fades out (the real face shows through)


def signed_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = points[triangles[:, 0]], points[triangles[:, 1]], points[triangles[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def rasterize(xp: Any, verts: np.ndarray, triangles: np.ndarray, height: int, width: int,
              ) -> tuple[Any, Any, Any, Any]:
    """Which triangle covers each pixel centre of an (height, width) grid, vectorised over triangles.

    ``verts`` are in grid pixels. Returns flat pixel indices, the triangle index of each, and its
    barycentric weights (l1, l2) for vertices 1 and 2 (l0 = 1 - l1 - l2).
    """
    tri = verts[triangles]  # (T, 3, 2), numpy: per-triangle set-up is tiny
    lo = np.clip(np.floor(tri.min(1)).astype(np.int64), 0, [width - 1, height - 1])
    hi = np.clip(np.ceil(tri.max(1)).astype(np.int64), 0, [width - 1, height - 1])
    span = hi - lo + 1
    counts = span[:, 0] * span[:, 1]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    inv = np.stack([np.stack([e2[:, 1], -e2[:, 0]], -1), np.stack([-e1[:, 1], e1[:, 0]], -1)], 1)
    inv = inv / det[:, None, None]  # rows give l1, l2 from (p - v0)

    # enumerate every triangle's bounding box in one flat array
    tid = xp.repeat(xp.arange(len(triangles), dtype=xp.int32), xp.asarray(counts))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    local = xp.arange(int(counts.sum()), dtype=xp.int64) - xp.asarray(starts)[tid]
    w_t = xp.asarray(span[:, 0])[tid]
    px = xp.asarray(lo[:, 0])[tid] + local % w_t
    py = xp.asarray(lo[:, 1])[tid] + local // w_t
    dx = px.astype(xp.float32) - xp.asarray(tri[:, 0, 0], dtype=xp.float32)[tid]
    dy = py.astype(xp.float32) - xp.asarray(tri[:, 0, 1], dtype=xp.float32)[tid]
    inv_x = xp.asarray(inv, dtype=xp.float32)
    l1 = inv_x[tid, 0, 0] * dx + inv_x[tid, 0, 1] * dy
    l2 = inv_x[tid, 1, 0] * dx + inv_x[tid, 1, 1] * dy
    eps = -1e-4
    inside = (l1 >= eps) & (l2 >= eps) & (l1 + l2 <= 1 - eps)
    return (py * width + px)[inside], tid[inside], l1[inside], l2[inside]


def last_drawn(xp: Any, idx: Any, tid: Any, l1: Any, l2: Any) -> tuple[Any, Any, Any, Any]:
    """Keep one candidate per pixel, the last triangle drawn there (deterministic on numpy and cupy)."""
    _, first_from_end = xp.unique(idx[::-1], return_index=True)
    keep = len(idx) - 1 - first_from_end
    return idx[keep], tid[keep], l1[keep], l2[keep]


def check_face(points: np.ndarray, frame_shape: tuple[int, ...]) -> str:
    """Why a face cannot be swapped ("" when it can)."""
    lo, hi = points.min(0), points.max(0)
    size = float(max(hi - lo))
    if size < MIN_FACE_PX:
        return f"face too small ({size:.0f} px)"
    h, w = frame_shape[:2]
    inside = np.clip(hi, 0, [w, h]) - np.clip(lo, 0, [w, h])
    if np.prod(np.clip(inside, 0, None)) < (1 - MAX_OUTSIDE) * np.prod(hi - lo):
        return "face mostly outside the frame"
    return ""


FOREHEAD_TOP, FOREHEAD_MID, BROWS, CHIN = 10, 151, 9, 152


def vertex_weights(ring: np.ndarray, inner_mouth: np.ndarray, source_points: np.ndarray) -> np.ndarray:
    """Blend weight per vertex: 0 on the outline, rising over two rings of the mesh, so the face fades
    out in the mesh's own geometry instead of at a fixed pixel width. The forehead fades out between
    the brows and mid-forehead, because that is where the source's hair (bangs) would otherwise be pasted
    onto the target. The inner lip line is half-weight so an open mouth blends into the target's."""
    w = np.clip(ring / 2.0, 0.0, 1.0).astype(np.float32)
    w[inner_mouth] = np.minimum(w[inner_mouth], 0.5)
    # height along the face's own up axis (chin -> forehead top), from the source's landmarks
    up = source_points[FOREHEAD_TOP] - source_points[CHIN]
    up = up / max(float(np.linalg.norm(up)), 1e-6)
    h = (source_points - source_points[BROWS]) @ up
    top = float((source_points[FOREHEAD_MID] - source_points[BROWS]) @ up)
    fade = np.clip(1.0 - h / max(top, 1e-6), 0.0, 1.0)
    return (w * fade).astype(np.float32)


def match_colour(xp: Any, warped: Any, target: Any, inside: Any, radius: int) -> Any:
    """The warped source face relit like the target: the target's shading, and its skin tone.

    Shading (brightness) follows the target locally, over a box of ``radius``, so the face takes the
    scene's light and shadow. Tone (the balance between channels) is matched once for the whole
    face: taken locally it copies every colour cast, and the green screen's bounce light at the
    face's edge turned that cheek green.
    """
    luma = xp.asarray(_LUMA)
    weight = box_mean(inside, radius) + 1e-3
    shade_t = box_mean((target @ luma) * inside, radius) / weight
    shade_s = box_mean(warped @ luma, radius) / weight
    gain = xp.clip((shade_t + 4.0) / (shade_s + 4.0), 0.6, 1.7)
    flat = inside.reshape(-1)  # a weighted sum as one matrix product: 30x faster than .sum(axis=(0, 1))
    area = flat.sum() + 1e-3
    tone_t = flat @ target.reshape(-1, 3) / area
    tone_s = flat @ warped.reshape(-1, 3) / area
    tone = xp.clip((tone_t + 4.0) / (tone_t @ luma + 4.0) * (tone_s @ luma + 4.0) / (tone_s + 4.0), 0.7, 1.4)
    return warped * gain[..., None] * tone


MAP_STEP = 2  # the warp's source map is solved on every second pixel and upsampled


def _warp(source: SourceFace, verts: np.ndarray, tris: np.ndarray, weights: np.ndarray | None,
          height: int, width: int, xp: Any) -> tuple[Any, Any]:
    """The source face warped onto an (height, width) ROI whose mesh is ``verts``, and its cover
    (blend weight, 0 off the mesh).

    A piecewise-affine warp is continuous across triangle edges, so its source-position map is
    smooth enough to solve on a grid ``MAP_STEP`` times coarser and upsample bilinearly: the
    rasterisation, the costly part, sees a quarter of the pixels, and the texture is sampled once at
    full resolution (``imageops.remap``). The map is extended one coarse pixel past the mesh first,
    so the upsampling never blends a position with the zeros outside.
    """
    step = MAP_STEP
    gh, gw = -(-height // step), -(-width // step)
    # pixel centres: full-resolution x sits at (x + 0.5) / step - 0.5 on the coarse grid
    coarse = (verts + 0.5) / step - 0.5
    idx, tid, l1, l2 = last_drawn(xp, *rasterize(xp, coarse, tris, gh, gw))
    src_tri = xp.asarray(source.points[tris], dtype=xp.float32)  # (T, 3, 2)
    l0 = 1.0 - l1 - l2
    maps = xp.zeros((gh * gw, 4), xp.float32)  # source x, source y, cover, defined
    maps[idx, 0] = l0 * src_tri[tid, 0, 0] + l1 * src_tri[tid, 1, 0] + l2 * src_tri[tid, 2, 0]
    maps[idx, 1] = l0 * src_tri[tid, 0, 1] + l1 * src_tri[tid, 1, 1] + l2 * src_tri[tid, 2, 1]
    if weights is None:
        maps[idx, 2] = 1.0
    else:
        wt = xp.asarray(weights[tris], dtype=xp.float32)
        maps[idx, 2] = l0 * wt[tid, 0] + l1 * wt[tid, 1] + l2 * wt[tid, 2]
    maps[idx, 3] = 1.0
    maps = maps.reshape(gh, gw, 4)
    defined = maps[..., 3]
    near = box_mean(maps[..., :2] * defined[..., None], 1) / (box_mean(defined, 1)[..., None] + 1e-6)
    maps[..., :2] = xp.where(defined[..., None] > 0, maps[..., :2], near)
    full = resize_linear(maps[..., :3], gh * step, gw * step)[:height, :width]
    inside = resize_linear(defined, gh * step, gw * step)[:height, :width] > 0.999
    warped = remap(source.texture, full[..., 0], full[..., 1])
    cover = xp.where(inside, full[..., 2], 0.0).astype(xp.float32)
    return warped, cover


def swap_face(frame: Any, target: np.ndarray, source: SourceFace, triangles: np.ndarray,
              face_mask: Any, weights: np.ndarray | None = None, *, colour: bool = True,
              opacity: float = 1.0) -> FaceResult:
    """Swap one face in ``frame`` (H, W, 3 uint8, modified in place) and max its blend weight into
    ``face_mask`` (H, W float32). ``target`` is (468, 2) frame pixels, or (468, 3) with MediaPipe's
    depth (smaller is nearer), which lets a turned head draw its nose over the cheek behind it;
    ``weights`` (468,) per-vertex blend weights (see :func:`vertex_weights`; None = 1 everywhere);
    ``opacity`` scales the whole blend (a face the tracker lost fades out through it)."""
    import time

    xp = module_of(frame)
    t0 = time.perf_counter()
    depth = target[:, 2] if target.shape[1] > 2 else None
    target = target[:, :2]
    reason = check_face(target, frame.shape)
    if reason:
        return FaceResult(False, reason)
    src_area = signed_areas(source.points, triangles)
    tgt_area = signed_areas(target, triangles)
    usable = (np.abs(src_area) > 1e-3)
    valid = usable & (np.sign(src_area) == np.sign(tgt_area)) & (np.abs(tgt_area) > 0.05)
    folded = 1.0 - valid.sum() / max(usable.sum(), 1)
    if folded > MAX_FOLDED:
        return FaceResult(False, f"head turned too far ({folded:.0%} of the mesh folds over)")
    tris = triangles[valid]
    if depth is not None:
        # painter's order: far triangles first, so the nearest surface is drawn last and wins
        tris = tris[np.argsort(-depth[tris].mean(axis=1), kind="stable")]

    size = float(max(target.max(0) - target.min(0)))
    feather = max(1, round(size * 0.015))
    shade = max(3, round(size * 0.12))
    pad = 2 * feather + 2
    h, w = frame.shape[:2]
    x0, y0 = (np.floor(target.min(0)).astype(int) - pad).clip(0)
    x1, y1 = np.minimum(np.ceil(target.max(0)).astype(int) + pad + 1, [w, h])
    rh, rw = int(y1 - y0), int(x1 - x0)

    warped, cover = _warp(source, target - [x0, y0], tris, weights, rh, rw, xp)
    t1 = time.perf_counter()

    roi = frame[y0:y1, x0:x1].astype(xp.float32)
    covered = cover > 0
    if colour:
        warped = match_colour(xp, warped, roi, covered.astype(xp.float32), shade)
    # The feather spreads blend weight past the mesh edge and into holes left by dropped triangles;
    # there the warp has no pixel, so it must show the target itself, never black.
    warped = xp.where(covered[..., None], warped, roi)
    soft = box_mean(cover, feather)
    if opacity < 1.0:
        soft = soft * np.float32(opacity)
    blended = roi + soft[..., None] * (warped - roi)
    frame[y0:y1, x0:x1] = xp.clip(blended + 0.5, 0, 255).astype(xp.uint8)
    region = face_mask[y0:y1, x0:x1]
    face_mask[y0:y1, x0:x1] = xp.maximum(region, soft)
    t2 = time.perf_counter()
    return FaceResult(True, "", (t1 - t0) * 1e3, (t2 - t1) * 1e3, opacity)


class MeshSwapper:
    """The ``mesh`` engine for one stream: tracks faces, swaps each to the preset's face.

    ``process(rgb) -> (rgb, face_mask)``; the mask (H, W float32, 0..1) is the blend weight, which the
    matting keeps opaque. With no preset, or no face it can swap, the frame passes through unchanged.
    """

    engine = "mesh"

    def __init__(self, options: Mapping[str, Any], pool: ModelPool) -> None:
        from facefusion_obs.faces import FaceTracker
        from facefusion_obs.faces.topology import MeshTopology

        self.topology = pool.load(MeshTopology)
        self.tracker = FaceTracker(pool, max_faces=int(options.get("max_faces", 1)),
                                   triangles=self.topology.triangles)
        self.options: dict[str, Any] = {}
        from facefusion_obs.presets import PresetWatcher

        self.watcher = PresetWatcher()
        self._source: tuple[Any, tuple[SourceFace, np.ndarray]] | None = None
        self.last: list[FaceResult] = []
        self.faces: list[Any] = []  # the tracker's faces of the last frame, in the order of ``last``
        self.timings: dict[str, float] = {}
        self.configure(options)

    def configure(self, options: Mapping[str, Any]) -> None:
        self.watcher.follow(str(options.get("preset", "")))
        self.tracker.max_faces = int(options.get("max_faces", 1))
        self.options = dict(options)

    def reset(self) -> None:
        self.tracker.reset()

    def source_face(self, xp: Any) -> tuple[SourceFace, np.ndarray] | None:
        preset = self.watcher.current()
        if preset is None:
            return None
        key = (id(preset), preset.revision, xp.__name__)
        if self._source is None or self._source[0] != key:
            points = preset.texture_points[:, :2].copy()
            weights = vertex_weights(self.topology.ring, self.topology.inner_mouth, points)
            self._source = (key, (SourceFace(xp.asarray(preset.texture), points), weights))
        return self._source[1]

    def process(self, rgb: Any, t: float | None = None) -> tuple[Any, Any]:
        """``t``: the frame's time in seconds (capture or video time); None counts frames at 30/s.
        Never the wall clock: the output must not depend on how fast the machine is."""
        xp = module_of(rgb)
        found = self.source_face(xp)
        if found is None:
            self.last, self.faces = [], []
            return rgb, None
        source, weights = found
        faces = self.tracker.process(to_numpy(rgb), t)
        self.faces = faces
        self.last = []
        if not faces:
            self.timings = dict(self.tracker.timings)
            return rgb, None
        out = rgb.copy()
        mask = xp.zeros(rgb.shape[:2], xp.float32)
        for face in faces:
            if not face.swap:  # the tracker's consistency check: never draw a torn or misplaced face
                self.last.append(FaceResult(False, face.reason))
                continue
            self.last.append(swap_face(out, face.landmarks, source, self.topology.triangles, mask, weights,
                                       opacity=face.opacity))
        self.timings = {**self.tracker.timings, "warp": sum(r.warp_ms for r in self.last),
                        "blend": sum(r.blend_ms for r in self.last)}
        if not any(r.swapped for r in self.last):
            return rgb, None
        return out, mask
