"""The frame pipeline: BGRA in, straight-alpha RGBA out.

Order matters: the face swap runs first so that matting despills and keys the *swapped* face, and the
swap hands its face mask to the matting as a region that must stay opaque.

Two cores are used without adding latency: the matte of frame N is solved on the work grid
(``Matter.solve``, which reads only the input frame) on a second thread while the face work of the
same frame runs on the caller's; the full-resolution finish then applies it to the swapped frame.
numpy, OpenCV and LiteRT release the GIL in their heavy loops, so the two really overlap. The frame
crosses memory three times at full resolution: BGRA to RGB on the way in (OpenCV's fused conversion),
colour planes for the matte's finish, and one merge of planes and alpha straight into ``out``.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from facefusion_obs.config import validate_options
from facefusion_obs.matting import build_matter
from facefusion_obs.pipeline.label import draw_label
from facefusion_obs.pipeline.quality import QUALITY_LEVELS, QualityLevel
from facefusion_obs.runtime.clock import StageClock
from facefusion_obs.runtime.imageops import bgra_to_rgb, merge_planes
from facefusion_obs.runtime.xp import cupy_or_none
from facefusion_obs.swap import build_swapper

if TYPE_CHECKING:
    from facefusion_obs.runtime.pool import ModelPool


class FramePipeline:
    """One pipeline per stream: it owns the stream's temporal state (tracking, smoothing, matte history).

    Models come from ``pool``, which the caller owns and shares between pipelines, so many channels
    load them once. ``close`` stops the matte thread (the worker calls it when a channel closes).
    """

    def __init__(self, options: Mapping[str, Any] | None, pool: ModelPool, xp: ModuleType | None = None) -> None:
        self.options = validate_options(dict(options or {}))
        self.pool = pool
        # The array module is chosen once, here: CuPy when it and a CUDA device are present, so the
        # frame is uploaded once, every stage runs on the device, and the result comes down once,
        # straight into ``out``; numpy otherwise, through the same code.
        self.xp: ModuleType = xp or cupy_or_none() or np
        self._staging: Any = None  # a pinned host buffer the frame is uploaded from (GPU only)
        self._badges: dict[tuple, Any] = {}  # the AI label, rendered once per text, size and corner
        self.swapper = build_swapper(self.options, pool)
        self.clock = StageClock()
        self.matter = build_matter(self.options, pool, clock=self.clock)
        self._matte_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ffobs-matte")
        self._level = 0
        self.face_swapped = False  # the last frame swapped every face found (the privacy cover's verdict)

    def configure(self, options: Mapping[str, Any]) -> None:
        """Apply changed options live; stages keep their state where the change allows it."""
        self.options = validate_options({**self.options, **options})
        self.swapper.configure(self.options)
        self.matter.configure(self.options)
        self.set_quality(self._level)  # a rebuilt engine or segmenter starts at the current level

    def recheck(self) -> list[str]:
        """Follow model availability (a model fetched or removed meanwhile); returns the notes to show."""
        self.swapper.recheck()
        return self.swapper.take_notes()

    @property
    def quality(self) -> QualityLevel:
        return QUALITY_LEVELS[self._level]

    @property
    def quality_level(self) -> int:
        return self._level

    def set_quality(self, level: int) -> None:
        """Step to ``QUALITY_LEVELS[level]`` (the live worker does, under load); 0 is full quality."""
        self._level = max(0, min(len(QUALITY_LEVELS) - 1, level))
        q = QUALITY_LEVELS[self._level]
        self.matter.work_height = q.matte_rows
        if self.matter.segmenter is not None:
            self.matter.segmenter.every = q.segment_every
        tracker = getattr(self.swapper.engine, "tracker", None)
        if tracker is not None:
            tracker.detect_every = q.detect_every

    def close(self) -> None:
        self._matte_thread.shutdown(wait=False, cancel_futures=True)

    def _upload(self, bgra: np.ndarray) -> Any:
        """The frame on the pipeline's device: itself on numpy; one copy through pinned memory on CuPy."""
        xp = self.xp
        if xp is np:
            return bgra
        import cupyx  # type: ignore[import-not-found]

        if self._staging is None or self._staging.shape != bgra.shape:
            self._staging = cupyx.empty_pinned(bgra.shape, np.uint8)
        np.copyto(self._staging, bgra)
        device = xp.empty(bgra.shape, xp.uint8)
        device.set(self._staging)
        return device

    def _solve(self, rgb: Any) -> Any:
        return self.matter.solve(rgb)

    def process(self, bgra: np.ndarray, out: np.ndarray | None = None, t: float | None = None) -> np.ndarray:
        """The RGBA result of one BGRA frame, written into ``out`` when one is given.

        ``t`` is the frame's time in seconds (the camera's capture time, a video's timestamp, or index
        / fps): every temporal filter runs on it, never on the wall clock, so the same frames give the
        same output however fast the machine is. None counts frames at 30 per second."""
        clock = self.clock
        with clock("convert in"):
            rgb = bgra_to_rgb(self._upload(bgra))
        swapping = self.options["swap_enabled"]
        solving = self._matte_thread.submit(self._solve, rgb) if swapping else None
        face_mask = None
        if swapping:
            with clock("faces+swap"):
                rgb, face_mask = self.swapper.process(rgb, t)  # the input frame is left as it was
            with clock("waited"):
                solved = solving.result()
        else:
            solved = self._solve(rgb)
        # fail closed: a face the mesh engine found but did not swap counts, and no mask means none swapped
        # (a face fading out after a loss lets the real one show through: that is not swapped either)
        self.face_swapped = face_mask is not None and all(
            r.swapped and getattr(r, "opacity", 1.0) >= 1.0 for r in getattr(self.swapper.engine, "last", ()))
        planes, alpha = self.matter.finish(rgb, solved, opaque=face_mask)
        with clock("compose"):
            result = merge_planes([*planes, alpha], out)
        draw_label(result, self.options, face_mask is not None, self._badges)  # the "AI face swap" badge
        clock.frames += 1
        return result
