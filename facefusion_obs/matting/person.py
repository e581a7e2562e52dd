"""How the person prior bounds the chroma matte, and the matte of ``person`` mode.

In ``chroma+person`` the key decides the edges (it resolves single hair strands, the 256x256 model
cannot), while the prior decides two things the key cannot know: the confident inside of the person
is opaque even where it is green (a green shirt), and what is far from any person is transparent
even where it is not green (studio walls beyond the screen). Both bounds are kept a margin away from
the person's outline so the key's fine edges survive.
"""

from __future__ import annotations

from typing import Any

import numpy

from facefusion_obs.runtime.imageops import block_mean, box_mean_xp, grow, resize_linear, shrink
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


OFF_SCREEN_CELL = 4  # work-grid pixels per cell of the grid the off-screen region is traced on


def off_screen(alpha: Any, prob: Any, cell: int = OFF_SCREEN_CELL) -> Any:
    """Where the frame shows neither screen nor person and is joined to the frame's border without
    crossing either: a wall, a light stand or a doorway beyond the screen's edge (H, W float 0..1).

    The person prior alone cannot tell a wall from a prop the streamer holds out at arm's length (a
    helmet, a mug: "not person" to the selfie model too). What tells them apart is where they sit:
    a prop is surrounded by screen or touches the person, while what lies beyond the screen's edge
    reaches the frame's border. So only that region is cut, and only what the key keeps in front of
    the screen is left to the key.
    """
    xp = module_of(alpha)
    height, width = alpha.shape
    solid = block_mean(alpha, cell) > 0.5
    gh, gw = solid.shape
    person = grow(resize_linear(prob, gh, gw) > 0.3, 1)
    free = solid & ~person
    outside = _reached_from_border(free)
    # one cell more, so the outline of the wall next to the screen goes with it
    outside = grow(outside, 1) & ~person
    soft = box_mean_xp(outside.astype(xp.float32), 1)
    return resize_linear(soft, gh * cell, gw * cell)[:height, :width]


def _reached_from_border(free: Any, fast: bool = True) -> Any:
    """The cells of ``free`` (bool grid) joined to the grid's border through ``free`` (8-connected).

    On numpy with OpenCV (and ``fast``) one labelling pass; otherwise geodesic growth, which any
    array module runs and which must give the same cells.
    """
    xp = module_of(free)
    border = xp.zeros(free.shape, dtype=bool)
    border[0, :] = border[-1, :] = True
    border[:, 0] = border[:, -1] = True
    if xp is numpy and fast:
        try:
            import cv2
        except ImportError:  # the worker may run without OpenCV
            cv2 = None
        if cv2 is not None:
            _count, labels = cv2.connectedComponents(free.astype(numpy.uint8), connectivity=8)
            touching = numpy.unique(labels[border & free])
            return numpy.isin(labels, touching[touching > 0])
    reached = border & free
    while True:  # geodesic growth, one cell a step so it never jumps a gap of screen
        step = grow(reached, 1) & free
        if bool((step == reached).all()):
            return reached
        reached = step


def person_alpha(prob: Any, height: int, width: int) -> Any:
    """The raw matte of ``person`` mode: the probability brought to full resolution, edges sharpened."""
    xp = module_of(prob)
    full = resize_linear(prob, height, width)
    return xp.clip((full - 0.5) * 2.5 + 0.5, 0.0, 1.0)
