"""Temporal smoothing of the matte that calms flicker without trailing behind motion.

A plain running average makes a moving edge leave a ghost. Here each pixel is blended with its
previous value only as far as the change is small enough to be noise: a change of ``motion`` or more
(an edge actually moving) passes through untouched, so motion costs no lag at all.
"""

from __future__ import annotations

from typing import Any

from facefusion_obs.runtime.xp import module_of


class TemporalSmoother:
    """Per-stream state; ``strength`` 0 disables it, 1 holds still pixels as firmly as it can."""

    def __init__(self, strength: float = 0.5, motion: float = 0.15) -> None:
        self.strength = strength
        self.motion = motion
        self.reset()

    def reset(self) -> None:
        self._previous: Any = None

    def apply(self, alpha: Any) -> Any:
        """Smoothed alpha (H, W float32 in 0..1); remembers it for the next frame."""
        xp = module_of(alpha)
        previous = self._previous
        if previous is None or previous.shape != alpha.shape or self.strength <= 0.0:
            self._previous = alpha
            return alpha
        change = previous - alpha
        # weight = strength * (1 - |change| / motion), clamped: written with clip, which is one fast
        # pass on both numpy and cupy (float maximum/minimum are slow on numpy 2)
        weight = xp.clip(self.strength - xp.abs(change) * (self.strength / self.motion), 0.0, 1.0)
        out = alpha + weight * change
        self._previous = out
        return out
