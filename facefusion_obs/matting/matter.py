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
from facefusion_obs.matting.person import off_screen, person_alpha, person_bounds
from facefusion_obs.matting.plate import ACCEPT, CleanPlate, SubjectLevel
from facefusion_obs.matting.refine import guided_coefficients
from facefusion_obs.matting.segmentation import ReusedSegmentation, SelfieSegmenter
from facefusion_obs.matting.temporal import TemporalSmoother
from facefusion_obs.runtime.clock import StageClock
from facefusion_obs.runtime.imageops import (
    block_mean,
    box_mean,
    grow,
    merge_planes,
    resize_linear,
    split_planes,
    to_uint8,
)
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
# a pixel is inside an object when no pixel within INTERIOR_REACH (of the frame height: 1.1% is
# 4 px at 360 rows, wider than defocus and the motion blur of a fast hand) shows more than
# INTERIOR_SCREEN of the plate's colour difference
INTERIOR_SCREEN = 0.7
INTERIOR_REACH = 0.011
# how far (in plate units) a pixel's other two channels may stray from the screen's hue and still be
# screen: noise and the lighting's tint are a few hundredths (99.9% of a bare screen's pixels stay
# under 0.1), clothing and badges tenths. "Plainly bare screen" takes half of it.
HUE_TOLERANCE = 0.2
# screen light an object bounces back deep inside it, as a share of the screen's key signal
BOUNCE = 0.15
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
    spill_weight: Any = None  # despill weight on the work grid, None = everywhere


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
        self._hue: tuple[float, float] | None = None
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
        self._hue = None
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
                # despill spares what has its own colour (the inside of a navy top, see _key)
                alpha, keyed, bare, spared = self._key(small, key, sh, sw, bare_too=prob is not None)
                if prob is not None:
                    band = max(1, round(SPILL_BAND * sh))
                    floor, ceiling = person_bounds(prob, sh, sw)
                    depth = xp.clip(2.0 * box_mean(floor, band) - 1.0, 0.0, 1.0)
                    # the prior's outline is coarse: where the key sees bare screen it is not lifted
                    floor = floor * (1.0 - bare)
                    # and it caps only what lies beyond the screen, never a prop held over it
                    ceiling = xp.maximum(ceiling, 1.0 - off_screen(alpha, prob))
                    # and what the prior saved from the key (green clothing, though the key kept up to
                    # half of it): skin that keyed solid is despilled as usual
                    saved = floor * xp.clip(2.0 - 2.0 * keyed, 0.0, 1.0) * depth
                    spared = saved if spared is None else xp.maximum(spared, saved)
                    # bounded before the guided filter, so the prior's coarse outline is snapped to the
                    # image's own edges (a green shirt still differs from the screen in shade)
                    alpha = xp.clip(alpha, floor, ceiling)
                weight = None if spared is None else 1.0 - spared
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

    def _key(self, rgb: Any, key: KeyColor, height: int, width: int,
             bare_too: bool = False) -> tuple[Any, Any, Any, Any]:
        """(alpha, keyed, bare, spared) from the linear key signal, unmixed between the screen's
        level and the subject's. ``keyed`` is alpha from the colour alone, before the inside of
        objects is made solid whatever its colour; ``bare`` (0..1, only when ``bare_too``) marks
        pixels that are plainly the screen itself; ``spared`` (None: nothing) is how much of a
        pixel's key-colour excess is its own colour rather than bounced screen light.

        A mixed pixel's signal lies on the line between the screen's (the plate, here) and the nearby
        subject's; skin and hair sit well below zero, so dividing by the plate alone overstates a
        hair strand's alpha. The subject's level is learnt like the plate, per cell, from the pixels
        that show next to none of the screen's colour, and spread outwards on the coarse grid.
        """
        xp = module_of(rgb)
        low, high = self.levels
        planes = split_planes(rgb.astype(xp.float32, copy=False))
        primary = planes[key.primary]
        first, second = (planes[c] for c in key.others)
        diff = primary - 0.5 * (first + second)
        if self.plate.grid is None or self.plate.grid.shape != self.plate.grid_shape(height, width):
            self.plate.start(diff)
        # how much of the screen's colour each pixel shows, against the plate so far
        gain = self.plate.full(1.0 / self.plate.grid, height, width)
        ratio = diff * gain
        taught = ratio > ACCEPT
        screen = self.plate.learn(diff, taught.astype(xp.float32))
        # the key signal alone cannot tell a purple-blue badge from a blue screen of equal strength;
        # the other two channels can: the screen's hue is the same however it is lit. What follows
        # decides about regions a few pixels across, so it is worked out on a grid half as fine.
        hue = self._screen_hue(key, primary, first, second, taught)
        d = 2 if height >= 240 else 1
        c_planes = split_planes(block_mean(rgb, d)) if d > 1 else planes
        c_ratio = block_mean(ratio, d) if d > 1 else ratio
        c_primary = c_planes[key.primary]
        c_first, c_second = (c_planes[c] for c in key.others)
        # against the screen's mean level: sensor noise does not dim with the screen's corners
        level = float(xp.mean(screen))
        off_hue = xp.maximum(xp.abs(c_first - hue[0] * c_primary), xp.abs(c_second - hue[1] * c_primary))
        off_hue *= 1.0 / max(level, 1.0)
        of_screen_hue = off_hue < HUE_TOLERANCE
        # a dark or dull object of the screen's own hue (navy on blue, a visor mirroring the screen)
        # reads as "screen mixed with black", like an edge. But an edge is a few pixels wide, and
        # screen shows right beside it; a region with no screen-like pixel within ``reach`` is the
        # inside of an object, whatever its colour: solid, and the subject level it teaches is the
        # other end of the unmixing line for its own edges
        reach = max(1, round(INTERIOR_REACH * height / d))
        c_inside = (~grow((c_ratio > INTERIOR_SCREEN) & of_screen_hue, reach)).astype(xp.float32)
        inside = resize_linear(c_inside, height, width) if d > 1 else box_mean(c_inside, 1)
        solid = (ratio < 0.05).astype(xp.float32)
        subject = self.subject.update(diff, solid, screen)
        dull = (c_inside > 0.0) & of_screen_hue & (c_ratio >= 0.05)
        if int(xp.count_nonzero(dull)) > 1e-3 * dull.size:  # most frames hold no such object
            if self.plate.cell % d == 0:  # the same cells, counted on the coarser grid
                c_diff = c_primary - 0.5 * (c_first + c_second)
                c_solid = (c_ratio < 0.05).astype(xp.float32)
                subject = self.subject.include(c_diff, c_solid, dull, subject, screen, self.plate.cell // d)
            else:
                subject = self.subject.include(diff, solid, (inside > 0.5) & (ratio >= 0.05), subject, screen)
        span = screen - subject
        grids = xp.stack([screen / span, 1.0 / span], axis=-1)
        offset_gain = self.plate.full(grids, height, width)
        unmixed = offset_gain[..., 0] - diff * offset_gain[..., 1]
        # the noise floor fades in over [low/2, 3·low/2] instead of cutting every faint hair strand at
        # ``low``; above it alpha follows the unmixed value, stretched so ``high`` is already solid
        fade = xp.clip((unmixed - 0.5 * low) * (1.0 / low), 0.0, 1.0)
        alpha = xp.clip(unmixed * (1.0 / high), 0.0, 1.0) * fade
        # inside an object of the screen's own hue, what exceeds the screen light it can bounce back
        # is its own colour (navy stays navy), spared by the despill a few pixels in from the outline;
        # a black helmet's cast is all bounce and is despilled like any other, and so is a blurred
        # edge that reaches deep (its hue is a mix, not the screen's)
        excess = c_primary - xp.maximum(c_first, c_second)
        bounce = BOUNCE * level
        own = c_inside * of_screen_hue * xp.clip(1.0 - bounce / xp.maximum(excess, 1e-3), 0.0, 1.0)
        own = own * xp.clip(2.0 * box_mean(c_inside, 3 * reach) - 1.0, 0.0, 1.0)
        spared = None
        if int(xp.count_nonzero(own > 0.05)) > 1e-3 * own.size:  # a region of its own, not a few pixels
            spared = resize_linear(own, height, width) if d > 1 else own
        bare = None
        if bare_too:
            c_bare = xp.clip((c_ratio - 0.85) * 10.0, 0.0, 1.0) * (off_hue < 0.5 * HUE_TOLERANCE)
            bare = resize_linear(c_bare, height, width) if d > 1 else c_bare
        return xp.maximum(alpha, inside), alpha, bare, spared

    def _screen_hue(self, key: KeyColor, primary: Any, first: Any, second: Any,
                    taught: Any) -> tuple[float, float]:
        """The screen's other two channels as shares of its key channel, learnt from the pixels that
        taught the plate (a running mean over the stream; the key colour's own before any)."""
        xp = module_of(primary)
        step = max(1, primary.shape[0] // 90)  # a sample is plenty for two ratios
        m = taught[::step, ::step].astype(xp.float32)
        p = float((primary[::step, ::step] * m).sum())
        if p > 1000.0:
            seen = (float((first[::step, ::step] * m).sum()) / p, float((second[::step, ::step] * m).sum()) / p)
            last = self._hue
            self._hue = seen if last is None else (0.7 * last[0] + 0.3 * seen[0], 0.7 * last[1] + 0.3 * seen[1])
        if self._hue is not None:
            return self._hue
        a, b = key.others
        top = max(1, key.rgb[key.primary])
        return key.rgb[a] / top, key.rgb[b] / top


def build_matter(options: Mapping[str, Any] | None = None, pool: ModelPool | None = None,
                 clock: StageClock | None = None) -> Matter:
    """The pipeline's entry point."""
    return Matter(options, pool, clock=clock)
