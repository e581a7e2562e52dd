"""Despill: take the screen's colour cast out of the subject without greying skin.

Spill is the part of the key channel that exceeds the larger of the other two (for a green screen,
G above max(R, B)). Skin, hair and most clothing have G at or below max(R, B), so they are left
exactly as they were; only green-cast pixels (fringes, bounce light on shoulders) are pulled back
to neutral. ``weight`` lets the person prior protect green clothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from facefusion_obs.runtime.imageops import to_uint8
from facefusion_obs.runtime.xp import module_of

if TYPE_CHECKING:
    from facefusion_obs.matting.keycolor import KeyColor


def despill(planes: list[Any], key: KeyColor, amount: float, weight: Any = None) -> Any:
    """The key colour's plane with ``amount`` of its spill (its excess over the larger of the other
    two planes) taken out; ``weight`` (H, W float, 0..1) scales it per pixel."""
    xp = module_of(planes[0])
    a, b = key.others
    primary = planes[key.primary]
    spill = xp.clip(primary.astype(xp.float32) - xp.maximum(planes[a], planes[b]), 0.0, 255.0) * amount
    if weight is not None:
        spill = spill * weight
    return to_uint8(primary - spill)
