"""How the person prior bounds the chroma matte, and the matte of ``person`` mode.

In ``chroma+person`` the key decides the edges (it resolves single hair strands, the 256x256 model
cannot), while the prior decides two things the key cannot know: the confident inside of the person
is opaque even where it is green (a green shirt), and what is far from any person is transparent
even where it is not green (studio walls beyond the screen). Both bounds are kept a margin away from
the person's outline so the key's fine edges survive.
"""

from __future__ import annotations

from typing import Any

from facefusion_obs.runtime.imageops import box_mean_xp, grow, resize_linear, shrink
from facefusion_obs.runtime.xp import module_of


def person_bounds(prob: Any, height: int, width: int, margin: int = 1, reach: int = 12) -> tuple[Any, Any]:
    """(floor, ceiling) for alpha, full resolution, from a low-res probability grid.

    The floor starts ``margin`` grid cells inside the person's outline, the ceiling ends ``reach``
    cells outside it (on the 256 grid a cell is 0.4% of the frame).
    """
    xp = module_of(prob)
    inside = shrink(prob > 0.3, margin)
    # hair strands reach well beyond the model's outline, so the ceiling keeps a wide berth
    near = grow(prob > 0.3, reach)
    radius = max(1, margin // 2)
    floor = box_mean_xp(inside.astype(xp.float32), radius)
    ceiling = box_mean_xp(near.astype(xp.float32), radius)
    # floor is only trusted where the prior is whole: a feathered floor would pull hair to opaque
    floor = xp.clip(floor * 2.0 - 1.0, 0.0, 1.0)
    ceiling = xp.clip(ceiling * 2.0, 0.0, 1.0)
    return resize_linear(floor, height, width), resize_linear(ceiling, height, width)


def person_alpha(prob: Any, height: int, width: int) -> Any:
    """The raw matte of ``person`` mode: the probability brought to full resolution, edges sharpened."""
    xp = module_of(prob)
    full = resize_linear(prob, height, width)
    return xp.clip((full - 0.5) * 2.5 + 0.5, 0.0, 1.0)
