"""Matting quality metrics, as the matting literature defines them (NumPy, host only).

Alphas are float arrays in 0..1; colours are float RGB in 0..1. The transition band is where the
truth is fractional, grown by a few pixels (the "unknown" region of a trimap). SAD, Grad and Conn
follow Rhemann et al., "A Perceptually Motivated Online Benchmark for Image Matting" (CVPR 2009,
alphamatting.com), in the form of the widely used Deep Image Matting evaluation code: sums over the
band, Grad with first-order Gaussian derivatives (sigma 1.4), Conn with thresholds in steps of 0.1
and the 0.15 cut-off. dtSSD is Erofeev et al., "Perceptually Motivated Benchmark for Video
Matting" (BMVC 2015).
"""

from __future__ import annotations

import cv2
import numpy as np


def mad(alpha: np.ndarray, truth: np.ndarray) -> float:
    """Mean absolute difference over the whole frame."""
    return float(np.mean(np.abs(alpha.astype(np.float64) - truth)))


def mse(alpha: np.ndarray, truth: np.ndarray) -> float:
    """Mean squared error over the whole frame."""
    return float(np.mean((alpha.astype(np.float64) - truth) ** 2))


def transition_band(truth: np.ndarray, grow: int = 3) -> np.ndarray:
    """Pixels where the truth is fractional, dilated by ``grow`` pixels (bool)."""
    soft = ((truth > 1e-3) & (truth < 1.0 - 1e-3)).astype(np.uint8)
    if grow > 0:
        soft = cv2.dilate(soft, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    return soft.astype(bool)


def sad(alpha: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Sum of absolute differences inside ``mask`` (not divided by 1000)."""
    return float(np.abs(alpha.astype(np.float64) - truth)[mask].sum())


def _gaussian_gradient_magnitude(image: np.ndarray, sigma: float) -> np.ndarray:
    """|∇(G_sigma * image)| with the evaluation code's kernel: support where the Gaussian exceeds 1%,
    the 2-D derivative kernel g(y)·g'(x) scaled to unit L2 norm, replicated borders."""
    half = int(np.ceil(sigma * np.sqrt(-2.0 * np.log(np.sqrt(2.0 * np.pi) * sigma * 1e-2))))
    x = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-x * x / (2.0 * sigma * sigma)) / (sigma * np.sqrt(2.0 * np.pi))
    dg = -x * g / (sigma * sigma)
    norm = np.sqrt((g * g).sum() * (dg * dg).sum())  # L2 norm of the separable 2-D kernel
    img = image.astype(np.float64)
    gx = cv2.sepFilter2D(img, cv2.CV_64F, dg / norm, g, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.sepFilter2D(img, cv2.CV_64F, g, dg / norm, borderType=cv2.BORDER_REPLICATE)
    return np.sqrt(gx * gx + gy * gy)


def gradient_error(alpha: np.ndarray, truth: np.ndarray, mask: np.ndarray, sigma: float = 1.4) -> float:
    """Sum over ``mask`` of the squared difference of Gaussian gradient magnitudes."""
    diff = _gaussian_gradient_magnitude(alpha, sigma) - _gaussian_gradient_magnitude(truth, sigma)
    return float((diff * diff)[mask].sum())


def _largest_component(binary: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=4)
    if count <= 1:
        return np.zeros_like(binary, dtype=bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == largest


def connectivity_error(alpha: np.ndarray, truth: np.ndarray, mask: np.ndarray, step: float = 0.1) -> float:
    """Rhemann's connectivity error: penalises alpha that is disconnected from the solid foreground."""
    alpha = alpha.astype(np.float64)
    truth = truth.astype(np.float64)
    thresholds = np.arange(0.0, 1.0 + step / 2, step)
    level = -np.ones_like(truth)
    for i in range(1, len(thresholds)):
        omega = _largest_component((alpha >= thresholds[i]) & (truth >= thresholds[i]))
        newly = (level == -1) & ~omega
        level[newly] = thresholds[i - 1]
    level[level == -1] = 1.0
    d_alpha = alpha - level
    d_truth = truth - level
    phi_alpha = 1.0 - d_alpha * (d_alpha >= 0.15)
    phi_truth = 1.0 - d_truth * (d_truth >= 0.15)
    return float(np.abs(phi_alpha - phi_truth)[mask].sum())


def dtssd(alphas: list[np.ndarray], truths: list[np.ndarray]) -> float:
    """Mean over frame pairs of the RMS difference between predicted and true temporal derivatives."""
    if len(alphas) < 2:
        return 0.0
    values = []
    for t in range(1, len(alphas)):
        d = (alphas[t].astype(np.float64) - alphas[t - 1]) - (truths[t].astype(np.float64) - truths[t - 1])
        values.append(np.sqrt(np.mean(d * d)))
    return float(np.mean(values))


def foreground_error(colour: np.ndarray, truth_colour: np.ndarray, truth_alpha: np.ndarray) -> float:
    """Mean absolute colour error of the foreground, weighted by the true alpha (0..1 units)."""
    w = truth_alpha.astype(np.float64)
    if w.sum() <= 0:
        return 0.0
    err = np.abs(colour.astype(np.float64) - truth_colour).mean(axis=-1)
    return float((err * w).sum() / w.sum())


def key_excess(colour: np.ndarray, primary: int) -> np.ndarray:
    """How far the key channel exceeds the larger of the other two (0 where it does not)."""
    others = [c for c in range(3) if c != primary]
    return np.clip(colour[..., primary] - np.maximum(colour[..., others[0]], colour[..., others[1]]), 0, None)


def spill_residual(colour: np.ndarray, truth_colour: np.ndarray, truth_alpha: np.ndarray,
                   primary: int) -> float:
    """Key-colour cast left on the foreground beyond what the true colour has, alpha-weighted."""
    w = truth_alpha.astype(np.float64)
    if w.sum() <= 0:
        return 0.0
    extra = np.clip(key_excess(colour.astype(np.float64), primary) - key_excess(truth_colour, primary),
                    0, None)
    return float((extra * w).sum() / w.sum())
