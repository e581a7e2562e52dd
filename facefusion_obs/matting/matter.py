"""The matting stage of the pipeline: one ``Matter`` per stream.

``chroma`` works on a linear key signal (screen channel minus the mean of the other two). A pixel's
signal is unmixed between the clean plate's (the bare screen here, however it is lit) and the nearby
subject's, which gives alpha directly; the noise floor (tolerance) and the solid point (softness)
shape it, the fast guided filter refines it against the colour image, the person prior bounds it in
``chroma+person``, it is smoothed over time without lag, and the colour is despilled. ``person`` is
the prior alone, snapped to the image's edges by the same guided filter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from facefusion_obs.config import validate_options
from facefusion_obs.matting.despill import despill
from facefusion_obs.matting.keycolor import KeyColor, estimate_key_color, resolve_key_color
from facefusion_obs.matting.person import person_alpha, person_bounds
from facefusion_obs.matting.plate import ACCEPT, CleanPlate, SubjectLevel
from facefusion_obs.matting.refine import guided_coefficients
from facefusion_obs.matting.segmentation import ReusedSegmentation, SelfieSegmenter
from facefusion_obs.matting.temporal import TemporalSmoother
from facefusion_obs.runtime.clock import StageClock
from facefusion_obs.runtime.imageops import block_mean, box_mean, merge_planes, resize_linear, split_planes, to_uint8
from facefusion_obs.runtime.xp import module_of

if TYPE_CHECKING:
    from facefusion_obs.runtime.pool import ModelPool


def key_signal(rgb: Any, key: KeyColor) -> Any:
    """Key channel minus the mean of the other two, float32 (H, W).

    Unlike the max-based difference this is *linear* in colour, so a pixel mixing subject and screen
    has exactly the mix of their signals, and alpha can be solved from the two ends of that line.
    """
    xp = module_of(rgb)
    a, b = key.others
    f = rgb.astype(xp.float32)
    return f[..., key.primary] - 0.5 * (f[..., a] + f[..., b])


def key_levels(tolerance: float, softness: float) -> tuple[float, float]:
    """(low, high) on the unmixed-alpha axis: the noise floor fades in around ``low``, and from
    ``high`` on a pixel is solid.

    ``tolerance`` is how far from the plate a pixel may drift (noise, creases, vignetting) and still
    be screen; ``softness`` sets how much screen colour a solid pixel may still show (spill).
    """
    low = 0.5 * tolerance
    high = min(1.0, low + softness)
    return low, max(high, low + 0.01)


SPILL_BAND = 0.2  # of the frame height: how far screen light reaches into the subject
WORK_HEIGHT = 360  # the matte is solved at about this height; edges come back at full resolution
PLATE_CELL = 16  # full-resolution pixels per clean-plate cell
REFINE_CELL = 180  # the guided filter's cells: the frame height over this many rows


def work_scale(height: int, work_height: int = WORK_HEIGHT) -> int:
    """The integer factor between a frame's height and the matte's work grid (1 at or below 360)."""
    return max(1, round(height / max(1, work_height)))


@dataclass
class SolvedMatte:
    """One frame's matte on the work grid, ready to be applied at full resolution by ``finish``.

    ``coeffs`` (gh, gw, 4) are the guided filter's window-averaged coefficients, alpha ≈ a·rgb + b
    (rgb in 0..255), each cell ``cell`` full-resolution pixels on a side. Because they are
    smooth, upsampling them is exact enough, and applying them to the full-resolution colour puts
    every hair strand back where the colours have it (the fast guided filter's property): the
    full-resolution cost is a few passes over the frame, whatever the edge detail.
    """

    coeffs: Any
    cell: int
    scale: int  # full-resolution pixels per work-grid pixel
    key: KeyColor | None
    spill_weight: Any = None  # despill weight on the work grid (chroma+person), None = everywhere


class Matter:
    """Straight alpha and a despilled foreground for one stream; see the module docstring.

    ``pool`` provides the segmentation model of the ``person`` modes; the chroma key needs no model,
    so a Matter for ``off`` or ``chroma`` may be built without one. ``work_height`` sets the work
    grid (``WORK_HEIGHT``; the pipeline lowers it under load, a quality check raises it).

    The work splits in two so that a pipeline can overlap it with the face swap: ``solve`` needs
    only the input frame and works on the small grid; ``finish`` applies the result to the
    (swapped) frame at full resolution. ``process`` does both in one call.
    """

    def __init__(self, options: Mapping[str, Any] | None = None, pool: ModelPool | None = None,
                 work_height: int = WORK_HEIGHT, clock: StageClock | None = None) -> None:
        self.pool = pool
        self.work_height = work_height
        self.clock = clock or StageClock()
        self.segmenter: ReusedSegmentation | None = None
        self.plate = CleanPlate(PLATE_CELL)
        self.subject = SubjectLevel(PLATE_CELL)
        self.temporal = TemporalSmoother()
        self.options: dict[str, Any] = {}
        self._auto_key: KeyColor | None = None
        self.configure(options or {})

    def configure(self, options: Mapping[str, Any]) -> None:
        """Apply options live; the plate and history survive unless the key colour or mode changed."""
        merged = validate_options({**self.options, **dict(options)})
        key = resolve_key_color(merged["key_color"])  # raises OptionError naming a bad colour
        changed = (not self.options or merged["key_color"] != self.options.get("key_color")
                   or merged["matting"] != self.options.get("matting"))
        self.options = merged
        self.mode: str = merged["matting"]
        self.key: KeyColor | None = key
        self.levels = key_levels(merged["key_tolerance"], merged["key_softness"])
        self.despill_amount = float(merged["despill"])
        self.temporal.strength = float(merged["temporal"])
        if "person" in self.mode and self.segmenter is None:
            if self.pool is None:
                raise ValueError(f"matting mode {self.mode!r} needs the segmentation model: build the Matter "
                                 "with a model pool")
            # loaded now, so a missing model fails here with the fetch command, not on the first frame
            self.segmenter = ReusedSegmentation(self.pool.load(SelfieSegmenter))
        if changed:
            self.reset()

    def reset(self) -> None:
        """Forget the stream's history (a new stream, a cut, or a changed key colour)."""
        self.plate.reset()
        self.temporal.reset()
        self._auto_key = None
        if self.segmenter is not None:
            self.segmenter.reset()

    def process(self, rgb: Any, opaque: Any = None) -> tuple[Any, Any]:
        """(despilled rgb uint8 (H, W, 3), alpha uint8 (H, W)) for rgb (H, W, 3 uint8)."""
        solved = self.solve(rgb)
        planes, alpha = self.finish(rgb, solved, opaque)
        despilled = solved is not None and solved.key is not None and self.despill_amount > 0.0
        return (merge_planes(planes) if despilled else rgb), alpha

    def solve(self, rgb: Any) -> SolvedMatte | None:
        """The matte of ``rgb`` on the work grid (None when matting is off). Reads ``rgb`` only."""
        if self.mode == "off":
            return None
        xp = module_of(rgb)
        clock = self.clock
        height = rgb.shape[0]
        scale = work_scale(height, self.work_height)
        with clock("downscale"):
            small = block_mean(rgb, scale) if scale > 1 else rgb
        sh, sw = small.shape[:2]
        self._fit_cells(max(4, round(PLATE_CELL / scale)))
        key, weight, prob = None, None, None
        if "person" in self.mode:
            with clock("segmentation"):
                prob = xp.asarray(self.segmenter.get(small))
        with clock("key"):
            if self.mode == "person":
                alpha = person_alpha(prob, sh, sw)
                eps = 1e-2
            else:
                key = self.key or self._auto_key or estimate_key_color(small)
                self._auto_key = None if self.key else key
                alpha = self._key(key_signal(small, key), sh, sw)
                if prob is not None:
                    floor, ceiling = person_bounds(prob, sh, sw)
                    # despill spares only what the prior saved from the key (green clothing): skin that
                    # keyed solid is despilled as usual. Screen light bouncing onto the subject is
                    # strongest near its outline, so clothing is spared only with depth into the person.
                    depth = xp.clip(2.0 * box_mean(floor, max(1, round(SPILL_BAND * sh))) - 1.0, 0.0, 1.0)
                    weight = 1.0 - floor * (1.0 - alpha) * depth
                    # bounded before the guided filter, so the prior's coarse outline is snapped to the
                    # image's own edges (a green shirt still differs from the screen in shade)
                    alpha = xp.clip(alpha, floor, ceiling)
                eps = 1e-3
        with clock("refine"):
            # the filter's cells keep their full-resolution size (never finer on a coarser work grid)
            cells = -(-max(1, height // REFINE_CELL) // scale)
            coeffs = guided_coefficients(small, alpha, cells, radius=2, eps=eps)
        return SolvedMatte(coeffs, cells * scale, scale, key, weight)

    def finish(self, rgb: Any, solved: SolvedMatte | None, opaque: Any = None) -> tuple[list[Any], Any]:
        """(colour planes, alpha uint8 (H, W)) of ``rgb`` at full resolution: the matte applied against
        the frame's own colours, faces in ``opaque`` (H, W float 0..1) kept solid, spill removed."""
        xp = module_of(rgb)
        height, width = rgb.shape[:2]
        planes = split_planes(rgb)
        if solved is None:
            return planes, xp.full((height, width), 255, dtype=xp.uint8)

        def full(grid: Any, cell: int) -> Any:
            up = resize_linear(xp.ascontiguousarray(grid), grid.shape[0] * cell, grid.shape[1] * cell)
            return up[:height, :width]

        with self.clock("refine full-res"):
            alpha = full(solved.coeffs[..., 3], solved.cell).copy()
            for c in range(3):
                alpha += full(solved.coeffs[..., c], solved.cell) * planes[c]
            # smoothed over time at full resolution, after the guided filter: its window averaging has
            # taken out the noise the smoother would otherwise mistake for motion
            alpha = self.temporal.apply(xp.clip(alpha, 0.0, 1.0))
            if opaque is not None:
                alpha = xp.maximum(alpha, opaque)
        if solved.key is not None and self.despill_amount > 0.0:
            with self.clock("despill"):
                weight = None if solved.spill_weight is None else full(solved.spill_weight, solved.scale)
                planes[solved.key.primary] = despill(planes, solved.key, self.despill_amount, weight)
        return planes, to_uint8(alpha * 255.0)

    def _fit_cells(self, cell: int) -> None:
        """The plate's cells stay ``PLATE_CELL`` full-resolution pixels whatever the work grid."""
        if self.plate.cell != cell:
            self.plate, self.subject = CleanPlate(cell), SubjectLevel(cell)
            self.temporal.reset()

    def _key(self, diff: Any, height: int, width: int) -> Any:
        """Alpha from the linear key signal, unmixed between the screen's level and the subject's.

        A mixed pixel's signal lies on the line between the screen's (the plate, here) and the nearby
        subject's; skin and hair sit well below zero, so dividing by the plate alone overstates a
        hair strand's alpha. The subject's level is learnt like the plate, per cell, from the pixels
        that show next to none of the screen's colour, and spread outwards on the coarse grid.
        """
        xp = module_of(diff)
        low, high = self.levels
        if self.plate.grid is None or self.plate.grid.shape != self.plate.grid_shape(height, width):
            self.plate.start(diff)
        # how much of the screen's colour each pixel shows, against the plate so far
        ratio = diff * self.plate.full(1.0 / self.plate.grid, height, width)
        screen = self.plate.learn(diff, (ratio > ACCEPT).astype(xp.float32))
        subject = self.subject.update(diff, (ratio < 0.05).astype(xp.float32), screen)
        span = screen - subject
        grids = xp.stack([screen / span, 1.0 / span], axis=-1)
        offset_gain = self.plate.full(grids, height, width)
        unmixed = offset_gain[..., 0] - diff * offset_gain[..., 1]
        # the noise floor fades in over [low/2, 3·low/2] instead of cutting every faint hair strand at
        # ``low``; above it alpha follows the unmixed value, stretched so ``high`` is already solid
        fade = xp.clip((unmixed - 0.5 * low) * (1.0 / low), 0.0, 1.0)
        return xp.clip(unmixed * (1.0 / high), 0.0, 1.0) * fade


def build_matter(options: Mapping[str, Any] | None = None, pool: ModelPool | None = None,
                 clock: StageClock | None = None) -> Matter:
    """The pipeline's entry point."""
    return Matter(options, pool, clock=clock)
