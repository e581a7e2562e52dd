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

from facefusion_obs.runtime.imageops import block_mean, fill_holes, resize_linear, shrink
from facefusion_obs.runtime.xp import module_of

# a pixel teaches the plate when it shows at least this share of the plate's colour difference;
# mixed edge pixels fall below it, so the subject never darkens the plate
ACCEPT = 0.75
# a cell is learnt from when this share of its pixels taught it
COVERED = 0.15
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

    def grid_shape(self, height: int, width: int) -> tuple[int, int]:
        return (-(-height // self.cell), -(-width // self.cell))

    def start(self, diff: Any) -> Any:
        """First frame: a rough screen level from the brightest tenth of the cells, then one
        refinement against the plate itself; returns the plate grid."""
        xp = module_of(diff)
        cells = block_mean(diff, self.cell)
        reference = float(xp.percentile(cells, 90))
        if reference < FLOOR:
            self._plate = xp.full(cells.shape, FLOOR, dtype=xp.float32)
            self._seen = xp.zeros(cells.shape, dtype=bool)
            return self._plate
        candidates = cells > 0.5 * reference
        # the light on a screen varies smoothly (gradients, vignetting); a dark object of the
        # screen's hue there from the first frame (a navy top) is a step below that surface, where a
        # local fill would take it for a dim patch of screen and learn it as one for good
        rough = xp.maximum(fill_holes(cells, candidates), 0.9 * smooth_light(cells, candidates))
        screen = shrink(cells > 0.9 * rough, 1)
        if not bool(screen.any()):
            screen = candidates
        self._plate = xp.clip(fill_holes(cells, screen), FLOOR, 255.0)
        self._seen = screen
        return self._plate

    def learn(self, diff: Any, screen: Any) -> Any:
        """Update from this frame's pixels marked ``screen`` (float 0/1, H x W); returns the grid.

        Cells are averaged over their screen pixels only, so a cell half covered by the subject
        still learns the screen right next to the subject's edge, where the key needs it most.
        """
        xp = module_of(diff)
        num = block_mean(diff * screen, self.cell)
        den = block_mean(screen, self.cell)
        covered = den > COVERED
        if float(covered.mean()) < 0.05 and bool(self._seen.any()):
            # the screen no longer matches the plate anywhere (lights changed): start again
            return self.start(diff)
        level = num / xp.maximum(den, 1e-3)
        learnt = xp.where(covered, self._plate + self.adapt * (level - self._plate), self._plate)
        self._seen = self._seen | covered
        self._plate = xp.clip(fill_holes(learnt, self._seen), FLOOR, 255.0)
        return self._plate

    def full(self, grid: Any, height: int, width: int) -> Any:
        """Any per-cell quantity (e.g. 1/plate) brought to full resolution, aligned to the cells.

        The grid is first extended by one cell of linear extrapolation on every side: light falls
        off fastest in the corners, and holding the outer cells' values flat there reads the
        darkest screen as "not quite screen".
        """
        gh, gw = grid.shape[:2]
        up = resize_linear(extrapolate_border(grid), (gh + 2) * self.cell, (gw + 2) * self.cell)
        return up[self.cell:self.cell + height, self.cell:self.cell + width]


def smooth_light(cells: Any, known: Any, rounds: int = 3) -> Any:
    """A quadratic surface in x and y through the ``known`` cells, refitted ``rounds`` times on the
    cells within 20% of it (creases, hot spots and objects drop out): the screen's lighting."""
    xp = module_of(cells)
    gh, gw = cells.shape
    v, u = xp.meshgrid(xp.linspace(-1.0, 1.0, gh, dtype=xp.float32), xp.linspace(-1.0, 1.0, gw, dtype=xp.float32),
                       indexing="ij")
    basis = xp.stack([xp.ones_like(u), u, v, u * u, v * v, u * v], axis=-1).reshape(-1, 6)
    values = cells.reshape(-1)
    use = known.reshape(-1)
    fit = xp.full(values.shape, float(xp.median(values[use])) if bool(use.any()) else 0.0, dtype=xp.float32)
    for _ in range(rounds):
        if int(use.sum()) < 12:
            break
        a = basis[use]
        normal = a.T @ a + 1e-3 * xp.eye(6, dtype=xp.float32)
        coef = xp.linalg.solve(normal, a.T @ values[use])
        fit = basis @ coef
        use = use & (xp.abs(values - fit) < 0.2 * xp.abs(fit))
    return fit.reshape(gh, gw)


def extrapolate_border(grid: Any) -> Any:
    """``grid`` padded by one cell whose value continues the slope of the last two (at most ±50%)."""
    xp = module_of(grid)

    def outward(edge: Any, inner: Any) -> Any:
        step = xp.clip(edge - inner, -0.5 * xp.abs(edge), 0.5 * xp.abs(edge))
        return edge + step

    if grid.shape[0] > 1:
        grid = xp.concatenate([outward(grid[:1], grid[1:2]), grid, outward(grid[-1:], grid[-2:-1])], axis=0)
    else:
        grid = xp.concatenate([grid, grid, grid], axis=0)
    if grid.shape[1] > 1:
        grid = xp.concatenate([outward(grid[:, :1], grid[:, 1:2]), grid,
                               outward(grid[:, -1:], grid[:, -2:-1])], axis=1)
    else:
        grid = xp.concatenate([grid, grid, grid], axis=1)
    return grid


class SubjectLevel:
    """The colour difference of the subject near each cell: the other end of the unmixing line.

    Learnt each frame from pixels a first pass keyed as solid (``weight`` 1), averaged per cell and
    spread to the cells around them; where no subject was seen the plate's 0 ("neutral") is used.
    """

    def __init__(self, cell: int = 16) -> None:
        self.cell = cell

    def update(self, diff: Any, solid: Any, screen: Any) -> Any:
        """Subject level grid (same shape as ``screen``), at most a third of the screen's level."""
        xp = module_of(solid)
        num = block_mean(diff * solid, self.cell)
        den = block_mean(solid, self.cell)
        known = den > 0.05
        level = fill_holes(num / xp.maximum(den, 1e-3), known) if bool(known.any()) else xp.zeros_like(num)
        # a subject nearly as saturated as the screen (green clothing) is left to the person prior
        return xp.clip(level, -255.0, screen * 0.33)

    def include(self, diff: Any, solid: Any, inside: Any, level: Any, screen: Any, cell: int | None = None) -> Any:
        """``level`` (from ``update`` with ``solid``) with the pixels ``inside`` (bool, H x W: the
        inside of a dark object) averaged into the cells that hold them, and only there. ``cell``:
        the cells' size in the given arrays' pixels, when those are coarser than the plate's grid.

        Their level is far above the rest of the subject's; spread like the rest, it would shrink
        the unmixing span of every screen cell around and lift the screen's noise into haze.
        """
        xp = module_of(diff)
        cell = cell or self.cell
        weight = inside.astype(xp.float32)
        num = block_mean(diff * weight, cell)
        den = block_mean(weight, cell)
        known = den > 0.02
        if not bool(known.any()):
            return level
        # the cell's solid pixels, old and new, weighed by their count
        old = block_mean(solid, cell)
        merged = (level * old + num) / xp.maximum(old + den, 1e-3)
        return xp.where(known, xp.clip(merged, -255.0, screen * 0.33), level)
