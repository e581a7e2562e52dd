"""Small array operations the matting and the mesh swap are built from, written once against the array module.

Everything here takes numpy or cupy arrays and finds its module with ``module_of``. Two operations
(box mean and bilinear upsampling) dominate the CPU time of a 720p frame, so on numpy they take a
CPU-only fast path through OpenCV; the pure-xp code below is the reference the fast path must match
(pinned by tests) and is what runs on cupy.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy

from facefusion_obs.runtime.xp import module_of


def _cv2_for(xp: ModuleType) -> Any | None:
    """OpenCV when ``xp`` is numpy and cv2 imports; None means "use the pure-xp path"."""
    if xp is not numpy:
        return None
    try:
        import cv2
    except ImportError:  # the worker may run without OpenCV; the xp path is complete on its own
        return None
    return cv2


def box_mean_xp(x: Any, r: int) -> Any:
    """Mean over a (2r+1)² window with edge-replicated borders, by cumulative sums (any array module).

    Works on (H, W) and (H, W, C); the cost does not depend on ``r``.
    """
    xp = module_of(x)
    if r <= 0:
        return x
    pad = ((r, r), (r, r)) + ((0, 0),) * (x.ndim - 2)
    p = xp.pad(x.astype(xp.float32, copy=False), pad, mode="edge")
    # a leading zero row/column so window sums are plain differences of the running sums
    c = xp.cumsum(p, axis=0, dtype=xp.float32)
    c = xp.concatenate([xp.zeros_like(c[:1]), c], axis=0)
    rows = c[2 * r + 1:] - c[: -2 * r - 1]
    c = xp.cumsum(rows, axis=1, dtype=xp.float32)
    c = xp.concatenate([xp.zeros_like(c[:, :1]), c], axis=1)
    out = c[:, 2 * r + 1:] - c[:, : -2 * r - 1]
    return out * (1.0 / float((2 * r + 1) ** 2))


def box_mean(x: Any, r: int) -> Any:
    """:func:`box_mean_xp`, through OpenCV's box filter on the CPU."""
    cv2 = _cv2_for(module_of(x))
    if cv2 is None or r <= 0 or (x.ndim == 3 and x.shape[2] > 4):
        return box_mean_xp(x, r)
    x32 = numpy.ascontiguousarray(x, dtype=numpy.float32)
    return cv2.boxFilter(x32, -1, (2 * r + 1, 2 * r + 1), normalize=True,
                         borderType=cv2.BORDER_REPLICATE)


def _linear_taps(xp: ModuleType, n_out: int, n_in: int) -> tuple[Any, Any, Any]:
    """Source indices and weights of half-pixel-centred linear interpolation (OpenCV's convention)."""
    pos = (xp.arange(n_out, dtype=xp.float32) + 0.5) * (n_in / n_out) - 0.5
    pos = xp.clip(pos, 0.0, n_in - 1)
    i0 = xp.floor(pos).astype(xp.int64)
    i1 = xp.minimum(i0 + 1, n_in - 1)
    return i0, i1, (pos - i0).astype(xp.float32)


def resize_linear_xp(x: Any, height: int, width: int) -> Any:
    """Bilinear resize of (H, W) or (H, W, C), separable (any array module)."""
    xp = module_of(x)
    x = x.astype(xp.float32, copy=False)
    y0, y1, wy = _linear_taps(xp, height, x.shape[0])
    x0, x1, wx = _linear_taps(xp, width, x.shape[1])
    extra = (1,) * (x.ndim - 2)
    wx = wx.reshape((1, width, *extra))
    rows = x[:, x0] * (1.0 - wx) + x[:, x1] * wx
    wy = wy.reshape((height, 1, *extra))
    return rows[y0] * (1.0 - wy) + rows[y1] * wy


def resize_linear(x: Any, height: int, width: int) -> Any:
    """:func:`resize_linear_xp`, through ``cv2.resize`` on the CPU."""
    if x.shape[0] == height and x.shape[1] == width:
        return x.astype(module_of(x).float32, copy=False)
    cv2 = _cv2_for(module_of(x))
    if cv2 is None or (x.ndim == 3 and x.shape[2] > 4):
        return resize_linear_xp(x, height, width)
    x32 = numpy.ascontiguousarray(x, dtype=numpy.float32)
    return cv2.resize(x32, (width, height), interpolation=cv2.INTER_LINEAR)


def block_mean(x: Any, factor: int) -> Any:
    """Area-average by an integer factor; ragged borders are edge-padded so every pixel counts."""
    xp = module_of(x)
    if factor <= 1:
        return x.astype(xp.float32, copy=False)
    h, w = x.shape[:2]
    ph, pw = (-h) % factor, (-w) % factor
    if ph or pw:
        x = xp.pad(x, ((0, ph), (0, pw)) + ((0, 0),) * (x.ndim - 2), mode="edge")
    hh, ww = x.shape[0] // factor, x.shape[1] // factor
    cv2 = _cv2_for(xp)
    if cv2 is not None and (x.ndim == 2 or x.shape[2] <= 4):
        # with an integer factor INTER_AREA is exactly the block mean, only several times faster
        src = x if x.dtype in (numpy.uint8, numpy.float32) else x.astype(numpy.float32)
        return cv2.resize(src, (ww, hh), interpolation=cv2.INTER_AREA).astype(numpy.float32, copy=False)
    blocks = x.reshape((hh, factor, ww, factor, *x.shape[2:]))
    return blocks.mean(axis=(1, 3), dtype=xp.float32)


def grow(mask: Any, steps: int = 1) -> Any:
    """Binary dilation by ``steps`` (3x3 neighbourhood per step); meant for small low-res grids.

    ``steps`` 3x3 steps are one (2·steps+1)² square, which OpenCV dilates in one pass on the CPU.
    """
    xp = module_of(mask)
    cv2 = _cv2_for(xp)
    if cv2 is not None and steps > 0 and mask.ndim == 2:
        kernel = numpy.ones((2 * steps + 1, 2 * steps + 1), numpy.uint8)
        return cv2.dilate(mask.astype(numpy.uint8), kernel, borderType=cv2.BORDER_REPLICATE) > 0
    m = mask.astype(bool)
    for _ in range(steps):
        p = xp.pad(m, 1, mode="edge")
        m = (p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
             | p[:-2, :-2] | p[:-2, 2:] | p[2:, :-2] | p[2:, 2:])
    return m


def shrink(mask: Any, steps: int = 1) -> Any:
    """Binary erosion, the dual of :func:`grow`."""
    return ~grow(~mask.astype(bool), steps)


def fill_holes(values: Any, known: Any) -> Any:
    """Fill unknown cells of a small grid from their known neighbours, coarse scales last.

    Normalised box filtering at doubling radii spreads the known values into holes of any size in
    a handful of passes (a cheap pull-push), which is what a plate hidden behind the subject needs.
    """
    xp = module_of(values)
    v = xp.where(known, values, 0.0).astype(xp.float32)
    w = known.astype(xp.float32)
    if not bool(w.any()):
        return v
    r = 1
    while bool((w == 0).any()):
        num = box_mean(v * w, r)
        den = box_mean(w, r)
        fill = (w == 0) & (den > 1e-6)
        v = xp.where(fill, num / xp.maximum(den, 1e-6), v)
        w = xp.where(fill, 1.0, w).astype(xp.float32)
        r *= 2
        if r > 2 * max(values.shape):
            break
    return v


# ----------------------------------------------------------------------------------- colour planes
# A strided per-channel read or write of an interleaved 720p frame costs numpy ~6 ms; OpenCV's
# split/merge/cvtColor do the same in well under 1 ms. The pipeline therefore converts each frame
# once on the way in and once on the way out, and works on contiguous planes in between.

def bgra_to_rgb(bgra: Any, out: Any = None) -> Any:
    """RGB (H, W, 3) uint8 of a BGRA frame; the copy that drops alpha also orders the channels."""
    cv2 = _cv2_for(module_of(bgra))
    if cv2 is None:
        return module_of(bgra).ascontiguousarray(bgra[..., 2::-1])
    return cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGB, dst=out)


def split_planes(rgb: Any) -> list[Any]:
    """The three colour planes of (H, W, 3), each contiguous."""
    xp = module_of(rgb)
    cv2 = _cv2_for(xp)
    if cv2 is None:
        return [xp.ascontiguousarray(rgb[..., c]) for c in range(rgb.shape[2])]
    return list(cv2.split(rgb))


def merge_planes(planes: list[Any], out: Any = None) -> Any:
    """Interleave uint8 planes into (H, W, len(planes)), into ``out`` (host memory) when given."""
    xp = module_of(planes[0])
    cv2 = _cv2_for(xp)
    if cv2 is None:
        merged = xp.stack(planes, axis=-1)
        if out is None:
            return merged
        if xp is numpy:
            out[...] = merged
        else:  # the one download of the frame, straight into the host buffer (an output slot)
            merged.get(out=out)
        return out
    return cv2.merge(planes, dst=out)


def to_uint8(x: Any) -> Any:
    """Round float values to uint8 (half to even, as OpenCV does), saturating at 0 and 255."""
    xp = module_of(x)
    cv2 = _cv2_for(xp)
    if cv2 is None:
        return xp.clip(xp.rint(x), 0.0, 255.0).astype(xp.uint8)
    return cv2.convertScaleAbs(cv2.max(numpy.ascontiguousarray(x, numpy.float32), 0.0))


def remap_xp(image: Any, x: Any, y: Any) -> Any:
    """``image`` (h, w, C) sampled bilinearly at float positions ``x``, ``y`` (any shape),
    edge-clamped; returns float32 of shape ``x.shape + (C,)`` (any array module)."""
    xp = module_of(image)
    h, w = image.shape[:2]
    shape = x.shape
    x = xp.clip(x.reshape(-1), 0, w - 1.001)
    y = xp.clip(y.reshape(-1), 0, h - 1.001)
    x0, y0 = xp.floor(x).astype(xp.int32), xp.floor(y).astype(xp.int32)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    flat = image.reshape(h * w, -1).astype(xp.float32, copy=False)
    i00 = y0 * w + x0
    top = flat[i00] * (1 - fx) + flat[i00 + 1] * fx
    bottom = flat[i00 + w] * (1 - fx) + flat[i00 + w + 1] * fx
    return (top * (1 - fy) + bottom * fy).reshape(*shape, -1)


def remap(image: Any, x: Any, y: Any) -> Any:
    """:func:`remap_xp`, through ``cv2.remap`` on the CPU."""
    cv2 = _cv2_for(module_of(image))
    if cv2 is None or image.shape[2] > 4:
        return remap_xp(image, x, y)
    src = numpy.ascontiguousarray(image, numpy.float32)
    out = cv2.remap(src, numpy.ascontiguousarray(x, numpy.float32), numpy.ascontiguousarray(y, numpy.float32),
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(*x.shape, -1)
