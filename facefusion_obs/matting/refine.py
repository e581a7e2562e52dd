"""Edge refinement with the fast guided filter (He & Sun, 2015, arXiv:1505.00996).

A matte computed pixel by pixel carries the camera's noise into the soft edge. The guided filter
fits, in every window, alpha as an affine function of the *colour* image (the local linear model
of closed-form matting), so noise that the colours do not explain is averaged away while the
fractional alpha of hair strands, which the colours do explain, is kept. The coefficients are
solved on a grid ``scale`` times coarser and only applied at full resolution, which makes the cost
a few full-resolution operations regardless of the window size.
"""

from __future__ import annotations

from typing import Any

from facefusion_obs.runtime.imageops import block_mean, box_mean, resize_linear
from facefusion_obs.runtime.xp import module_of


def _inverse_times(var: list[Any], cov: Any, xp: Any) -> Any:
    """Solve the per-pixel symmetric 3x3 system ``var @ a = cov`` by cofactors (no batched LAPACK)."""
    rr, rg, rb, gg, gb, bb = var
    i_rr = gg * bb - gb * gb
    i_rg = gb * rb - rg * bb
    i_rb = rg * gb - gg * rb
    i_gg = rr * bb - rb * rb
    i_gb = rb * rg - rr * gb
    i_bb = rr * gg - rg * rg
    det = rr * i_rr + rg * i_rg + rb * i_rb
    cr, cg, cb = cov[..., 0], cov[..., 1], cov[..., 2]
    a = xp.stack([i_rr * cr + i_rg * cg + i_rb * cb,
                  i_rg * cr + i_gg * cg + i_gb * cb,
                  i_rb * cr + i_gb * cg + i_bb * cb], axis=-1)
    return a / det[..., None]


def guided_coefficients(rgb: Any, alpha: Any, scale: int, radius: int, eps: float) -> Any:
    """The filter's per-cell coefficients (h, w, 4): alpha ≈ a·rgb/255 + b, already window-averaged."""
    xp = module_of(alpha)
    guide = block_mean(rgb, scale) * (1.0 / 255.0)
    src = block_mean(alpha, scale)
    mean_i = box_mean(guide, radius)
    mean_p = box_mean(src, radius)
    cov = box_mean(guide * src[..., None], radius) - mean_i * mean_p[..., None]
    r, g, b = guide[..., 0], guide[..., 1], guide[..., 2]
    second = box_mean(xp.stack([r * r, r * g, r * b], axis=-1), radius)
    third = box_mean(xp.stack([g * g, g * b, b * b], axis=-1), radius)
    mr, mg, mb = mean_i[..., 0], mean_i[..., 1], mean_i[..., 2]
    var = [second[..., 0] - mr * mr + eps, second[..., 1] - mr * mg, second[..., 2] - mr * mb,
           third[..., 0] - mg * mg + eps, third[..., 1] - mg * mb, third[..., 2] - mb * mb + eps]
    a = _inverse_times(var, cov, xp)
    offset = mean_p - (a * mean_i).sum(axis=-1)
    coeffs = xp.concatenate([a * (1.0 / 255.0), offset[..., None]], axis=-1).astype(xp.float32)
    return box_mean(coeffs, radius)


def guided_refine(rgb: Any, alpha: Any, scale: int = 4, radius: int = 2, eps: float = 1e-3) -> Any:
    """Refined alpha (H, W) in 0..1 for ``rgb`` (H, W, 3 uint8) and a raw ``alpha`` (H, W float32)."""
    xp = module_of(alpha)
    h, w = alpha.shape
    coeffs = guided_coefficients(rgb, alpha, scale, radius, eps)
    gh, gw = coeffs.shape[:2]
    # planar and contiguous: four fast passes over whole planes instead of strided channel views
    planes = rgb.transpose(2, 0, 1).astype(xp.float32)
    out = resize_linear(xp.ascontiguousarray(coeffs[..., 3]), gh * scale, gw * scale)[:h, :w].copy()
    for c in range(3):
        out += resize_linear(xp.ascontiguousarray(coeffs[..., c]), gh * scale, gw * scale)[:h, :w] * planes[c]
    return xp.clip(out, 0.0, 1.0)
