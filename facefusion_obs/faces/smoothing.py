"""One-Euro filtering of landmark sets (Casiez et al. 2012), vectorised over all points.

Speeds are measured in face sizes per second, so the same settings steady a small distant face and a
large close one alike: a still face is filtered hard (no shimmer), a moving one lightly (no lag).
"""

from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau / dt)


def carry(points: np.ndarray, motion: np.ndarray, translate: bool = True) -> np.ndarray:
    """``points`` (N, 2 or 3) moved by the 2x3 similarity ``motion``; a third (depth) coordinate is
    scaled with it, so the mesh keeps its proportions."""
    m = np.asarray(motion, np.float64)
    out = np.array(points, np.float64, copy=True)
    out[:, :2] = points[:, :2] @ m[:, :2].T + (m[:, 2] if translate else 0.0)
    if out.shape[1] > 2:
        out[:, 2:] *= float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    return out


class OneEuroFilter:
    """``filter(points, t, scale) -> smoothed points`` (same shape); ``scale`` is the face size in px."""

    def __init__(self, min_cutoff: float = 0.05, beta: float = 80.0, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def filter(self, points: np.ndarray, t: float, scale: float, motion: np.ndarray | None = None) -> np.ndarray:
        """``t`` is the frame's time in seconds (capture or video time, never the wall clock), so the
        same frames give the same output on any machine. ``motion`` (2x3, frame pixels), when given,
        is how the face moved since the last frame (the optical flow's similarity): the filter's state
        is carried along it first, so only motion the flow did not explain is smoothed and a fast but
        rigid head movement is followed without lag."""
        x = np.asarray(points, np.float64)
        if self._x is None or self._t is None or t <= self._t or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = t - self._t
        self._t = t
        if motion is not None:
            self._x = carry(self._x, motion)
            self._dx = carry(self._dx, motion, translate=False)
        dx = (x - self._x) / dt / max(scale, 1e-6)
        self._dx = self._dx + _alpha(self.d_cutoff, dt) * (dx - self._dx)
        # one speed per point (norm over its coordinates) so x and y share a cutoff
        speed = np.linalg.norm(self._dx, axis=-1, keepdims=True)
        cutoff = self.min_cutoff + self.beta * speed
        self._x = self._x + _alpha(cutoff, dt) * (x - self._x)
        return self._x.copy()
