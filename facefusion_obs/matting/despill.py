"""Despill: take the screen's colour cast out of the subject without greying skin.

Spill is the part of the key channel that exceeds the larger of the other two (for a green screen,
G above max(R, B)). Skin, hair and most clothing have G at or below max(R, B), so they are left
exactly as they were; only green-cast pixels (fringes, bounce light on shoulders) are pulled back
to neutral. ``weight`` lets the person prior protect green clothing.
"""

from __future__ import annotations

from typing import Any

from facefusion_obs.runtime.xp import module_of


def despill(rgb: Any, diff: Any, primary: int, amount: float, weight: Any = None) -> Any:
    """rgb (H, W, 3 uint8) with the key channel reduced by ``amount`` of the spill ``diff`` (H, W)."""
    xp = module_of(rgb)
    if amount <= 0.0:
        return rgb
    spill = xp.clip(diff, 0.0, 255.0) * amount
    if weight is not None:
        spill = spill * weight
    out = rgb.copy()
    out[..., primary] = xp.clip(rgb[..., primary] - spill + 0.5, 0.0, 255.0).astype(xp.uint8)
    return out
