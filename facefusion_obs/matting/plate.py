"""The clean plate: how strongly the bare screen shows its colour at each place in the frame.

Real screens are lit unevenly (hot spots, vignetting, shadows, creases), so one threshold on the
colour difference either leaves the dark corners as haze or eats into the subject near the hot
spot. Keying on the colour difference *divided by the plate's* makes every part of the screen read
1.0. The plate lives on a coarse grid (``cell`` pixels per cell), is learnt only from cells that are
clearly screen, is interpolated behind the subject, and remembers what it saw there before the
subject moved in.
"""

from __future__ import annotations

from typing import Any

from facefusion_obs.matting.ops import block_mean, fill_holes, resize_linear, shrink
from facefusion_obs.runtime.xp import module_of

# a cell counts as screen when its mean colour difference reaches this share of the plate there;
# a cell a tenth covered by the subject already fails, so the subject never darkens the plate
ACCEPT = 0.88
# the smallest plate value (colour difference, 0..255 units): a frame with no screen keys to opaque
FLOOR = 24.0


class CleanPlate:
    """Tracks the plate of one stream; ``reset`` when the stream or the key colour changes."""

    def __init__(self, cell: int = 16, adapt: float = 0.25) -> None:
        self.cell = cell
        self.adapt = adapt
        self.reset()

    def reset(self) -> None:
        self._plate: Any = None
        self._seen: Any = None

    @property
    def grid(self) -> Any:
        """The plate on its grid (None before the first frame)."""
        return self._plate

    def update(self, diff: Any) -> Any:
        """Learn from this frame's colour difference (H, W); returns the plate grid."""
        xp = module_of(diff)
        cells = block_mean(diff, self.cell)
        if self._plate is None or self._plate.shape != cells.shape:
            self._plate, self._seen = self._first(cells)
            return self._plate
        screen = shrink(cells > ACCEPT * self._plate, 1)
        learnt = xp.where(screen, self._plate + self.adapt * (cells - self._plate), self._plate)
        self._seen = self._seen | screen
        self._plate = xp.clip(fill_holes(learnt, self._seen), FLOOR, 255.0)
        return self._plate

    def _first(self, cells: Any) -> tuple[Any, Any]:
        # a rough screen level from the brightest tenth, then one refinement against the plate itself
        xp = module_of(cells)
        reference = float(xp.percentile(cells, 90))
        if reference < FLOOR:
            return xp.full(cells.shape, FLOOR, dtype=xp.float32), xp.zeros(cells.shape, dtype=bool)
        candidates = cells > 0.5 * reference
        rough = fill_holes(cells, candidates)
        screen = shrink(cells > ACCEPT * rough, 1)
        if not bool(screen.any()):
            screen = candidates
        return xp.clip(fill_holes(cells, screen), FLOOR, 255.0), screen

    def full(self, grid: Any, height: int, width: int) -> Any:
        """Any per-cell quantity (e.g. 1/plate) brought to full resolution, aligned to the cells."""
        gh, gw = grid.shape[:2]
        up = resize_linear(grid, gh * self.cell, gw * self.cell)
        return up[:height, :width]
