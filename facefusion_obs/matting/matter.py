"""The matting stage of the pipeline: one ``Matter`` per stream.

``chroma`` works on a linear key signal (screen channel minus the mean of the other two). A pixel's
signal is unmixed between the clean plate's (the bare screen here, however it is lit) and the nearby
subject's, which gives alpha directly; the noise floor (tolerance) and the solid point (softness)
shape it, the fast guided filter refines it against the colour image, the person prior bounds it in
``chroma+person``, it is smoothed over time without lag, and the colour is despilled. ``person`` is
the prior alone, snapped to the image's edges by the same guided filter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from facefusion_obs.config import validate_options
from facefusion_obs.matting.despill import despill
from facefusion_obs.matting.keycolor import KeyColor, estimate_key_color, resolve_key_color
from facefusion_obs.matting.person import person_alpha, person_bounds
from facefusion_obs.matting.plate import ACCEPT, CleanPlate, SubjectLevel
from facefusion_obs.matting.refine import guided_refine
from facefusion_obs.matting.segmentation import SelfieSegmenter
from facefusion_obs.matting.temporal import TemporalSmoother
from facefusion_obs.runtime.imageops import box_mean
from facefusion_obs.runtime.xp import module_of

if TYPE_CHECKING:
    from facefusion_obs.runtime.pool import ModelPool


def color_difference(rgb: Any, key: KeyColor) -> Any:
    """Key channel minus the larger of the other two, float32 (H, W) in -255..255.

    The maximum is taken on the uint8 channels, where it is nearly free; float maxima are not.
    """
    xp = module_of(rgb)
    a, b = key.others
    return rgb[..., key.primary].astype(xp.float32) - xp.maximum(rgb[..., a], rgb[..., b])


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


class Matter:
    """Straight alpha and a despilled foreground for one stream; see the module docstring.

    ``pool`` provides the segmentation model of the ``person`` modes; the chroma key needs no model,
    so a Matter for ``off`` or ``chroma`` may be built without one.
    """

    def __init__(self, options: Mapping[str, Any] | None = None, pool: ModelPool | None = None) -> None:
        self.pool = pool
        self.segmenter: SelfieSegmenter | None = None
        self.plate = CleanPlate()
        self.subject = SubjectLevel(self.plate.cell)
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
            self.segmenter = self.pool.load(SelfieSegmenter)
        if changed:
            self.reset()

    def reset(self) -> None:
        """Forget the stream's history (a new stream, a cut, or a changed key colour)."""
        self.plate.reset()
        self.temporal.reset()
        self._auto_key = None

    def process(self, rgb: Any, opaque: Any = None) -> tuple[Any, Any]:
        """(despilled rgb uint8 (H, W, 3), alpha uint8 (H, W)) for rgb (H, W, 3 uint8)."""
        xp = module_of(rgb)
        height, width = rgb.shape[:2]
        if self.mode == "off":
            return rgb, xp.full((height, width), 255, dtype=xp.uint8)
        out_rgb = rgb
        if self.mode == "person":
            prob = xp.asarray(self.segmenter.get(rgb))
            alpha = self._refine(rgb, person_alpha(prob, height, width), eps=1e-2)
        else:
            key = self.key or self._auto_key or estimate_key_color(rgb)
            self._auto_key = None if self.key else key
            alpha = self._key(key_signal(rgb, key), height, width)
            weight = None
            if self.mode == "chroma+person":
                prob = xp.asarray(self.segmenter.get(rgb))
                floor, ceiling = person_bounds(prob, height, width)
                # despill spares only what the prior saved from the key (green clothing): skin that
                # keyed solid is despilled as usual. Screen light bouncing onto the subject is
                # strongest near its outline, so clothing is spared only with depth into the person.
                depth = xp.clip(2.0 * box_mean(floor, max(1, round(SPILL_BAND * height))) - 1.0, 0.0, 1.0)
                weight = 1.0 - floor * (1.0 - alpha) * depth
                # bounded before the guided filter, so the prior's coarse outline is snapped to the
                # image's own edges (a green shirt still differs from the screen in shade)
                alpha = xp.clip(alpha, floor, ceiling)
            alpha = self._refine(rgb, alpha, eps=1e-3)
            out_rgb = despill(rgb, color_difference(rgb, key), key.primary, self.despill_amount, weight)
        alpha = self.temporal.apply(alpha)
        if opaque is not None:
            alpha = xp.where(opaque > alpha, opaque, alpha)
        return out_rgb, (alpha * 255.0 + 0.5).astype(xp.uint8)

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

    @staticmethod
    def _refine(rgb: Any, alpha: Any, eps: float) -> Any:
        scale = max(1, rgb.shape[0] // 180)
        return guided_refine(rgb, alpha, scale=scale, radius=2, eps=eps)


def build_matter(options: Mapping[str, Any] | None = None, pool: ModelPool | None = None) -> Matter:
    """The pipeline's entry point."""
    return Matter(options, pool)
