"""What the worker does to a frame. Each effect writes straight into the output slot (no extra copy).

``passthrough`` and ``test-pattern`` exercise the worker and shared memory alone; ``test-pattern`` is
pixel-predictable so end-to-end tests can check OBS's output exactly. ``pipeline`` is the product:
face swap and matting (imported lazily so the diagnostics never pay for model loading).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from facefusion_obs.pipeline.quality import QUALITY_LEVELS
from facefusion_obs.worker.pacing import Pacer

if TYPE_CHECKING:
    from facefusion_obs.runtime.pool import ModelPool


class Effect(Protocol):
    def configure(self, options: Mapping[str, Any]) -> None: ...

    def process(self, bgra: np.ndarray, out_rgba: np.ndarray, t: float | None = None) -> None:
        """One frame; ``t`` is its capture time in seconds (from the frame header), which temporal
        filters run on instead of the wall clock."""
        ...

    def in_use(self) -> tuple[str, str, str]:
        """(preset, engine, inference provider) actually in use, for the worker's status report."""
        ...

    def pace(self, frame_id: int, capture_ns: int, process_ms: float) -> str:
        """Follow the load after a frame; returns the quality level's name ("" when it has none)."""
        ...


_OPAQUE = np.uint32(0xFF << 24) if np.little_endian else np.uint32(0xFF)


class Passthrough:
    """BGRA in, the same picture as RGBA with alpha 255 out."""

    def configure(self, options: Mapping[str, Any]) -> None:
        pass

    def in_use(self) -> tuple[str, str, str]:
        return "", "passthrough", "cpu"

    def pace(self, frame_id: int, capture_ns: int, process_ms: float) -> str:
        return ""

    def process(self, bgra: np.ndarray, out_rgba: np.ndarray, t: float | None = None) -> None:
        cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA, dst=out_rgba)
        # Forcing alpha on 32-bit words is 3x faster than a strided write of the alpha plane.
        words = out_rgba.view(np.uint32)
        np.bitwise_or(words, _OPAQUE, out=words)


def positional_alpha(height: int, width: int) -> np.ndarray:
    """Alpha that varies with position, kept in 128..255 so no colour is lost to premultiplication."""
    y, x = np.mgrid[0:height, 0:width]
    return (255 - (x + 2 * y) % 128).astype(np.uint8)


class TestPattern:
    """Inverted RGB and a positional alpha: every output pixel is predictable from its input."""

    __test__ = False  # not a pytest class
    # No camera picture survives the inversion, so the privacy cover may let it through: this is what
    # lets real-OBS tests drive the uncovered path without face models.
    face_swapped = True

    def __init__(self) -> None:
        self._alpha: np.ndarray | None = None

    def configure(self, options: Mapping[str, Any]) -> None:
        pass

    def in_use(self) -> tuple[str, str, str]:
        return "", "test-pattern", "cpu"

    def pace(self, frame_id: int, capture_ns: int, process_ms: float) -> str:
        return ""

    def process(self, bgra: np.ndarray, out_rgba: np.ndarray, t: float | None = None) -> None:
        h, w = bgra.shape[:2]
        if self._alpha is None or self._alpha.shape != (h, w):
            self._alpha = positional_alpha(h, w)
        cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA, dst=out_rgba)
        np.subtract(255, out_rgba[..., :3], out=out_rgba[..., :3])
        out_rgba[..., 3] = self._alpha


class PipelineEffect:
    """Face swap and matting through :class:`facefusion_obs.pipeline.frame.FramePipeline`.

    The live filter swaps in stored presets only: a preset records the consent of the person pictured
    (a stored one without it is refused by the presets' watcher), a photo path records none, so one
    given as ``preset`` is refused here with a note and the preset serving before stays.
    """

    def __init__(self, options: Mapping[str, Any], pool: ModelPool) -> None:
        from facefusion_obs.pipeline.frame import FramePipeline

        self._notes: list[str] = []
        self.pipeline = FramePipeline(self._presets_only(options, ""), pool)
        self.pacer = Pacer(len(QUALITY_LEVELS))

    def _presets_only(self, options: Mapping[str, Any], serving: str) -> dict[str, Any]:
        from facefusion_obs.presets import is_image_path

        value = str(options.get("preset", ""))
        if not is_image_path(value):
            return dict(options)
        self._notes.append(f"preset {value[:200]!r} is a photo, not a preset: the live filter swaps in presets "
                           "only, which record the consent of the person pictured; make one with: facefusion-obs "
                           'presets add NAME PHOTO --consent "WHO, WHEN, HOW"')
        return {**options, "preset": serving}

    def pace(self, frame_id: int, capture_ns: int, process_ms: float) -> str:
        level = self.pacer.observe(frame_id, capture_ns, process_ms, time.monotonic())
        if level != self.pipeline.quality_level:
            self.pipeline.set_quality(level)
        return self.pipeline.quality.name

    def configure(self, options: Mapping[str, Any]) -> None:
        self.pipeline.configure(self._presets_only(options, self.pipeline.options["preset"]))

    def recheck(self) -> list[str]:
        """Follow model availability; the notes (engine transitions, refused presets) go to the status line."""
        notes, self._notes = self._notes, []
        return [*notes, *self.pipeline.recheck()]

    def in_use(self) -> tuple[str, str, str]:
        options = self.pipeline.options
        if not options["swap_enabled"]:
            return "", "off", "cpu"
        engine = self.pipeline.swapper.engine
        name = engine.engine
        # mesh and the LiteRT models run on the CPU; inswapper reports its onnxruntime session's provider
        provider = getattr(engine, "provider", "CPUExecutionProvider").removesuffix("ExecutionProvider").lower()
        return options["preset"], name, provider

    def process(self, bgra: np.ndarray, out_rgba: np.ndarray, t: float | None = None) -> None:
        self.pipeline.process(bgra, out=out_rgba, t=t)

    @property
    def face_swapped(self) -> bool:
        """Whether the last frame swapped every face it found (the worker's verdict for the cover).

        Fails closed: on top of the pipeline's own answer, the faces the engine swapped must be at
        least the faces its tracker follows (inswapper counts them; mesh reports each face), so one
        face of two that could not be aligned is "not swapped" for every engine."""
        pipeline = self.pipeline
        if not pipeline.face_swapped:
            return False
        engine = getattr(pipeline.swapper, "engine", None)
        tracker = getattr(engine, "tracker", None)
        if tracker is None:
            return True
        if hasattr(engine, "faces_swapped"):
            swapped = int(engine.faces_swapped)
        else:
            swapped = sum(bool(r.swapped) for r in getattr(engine, "last", ()))
        return swapped >= len(tracker.tracks)

    @property
    def swapped_preset(self) -> Any:
        """The preset the last frame swapped in (the one serving, which may not be the one asked for while
        that one fails to load), or None: what the usage log records."""
        if not self.pipeline.face_swapped:
            return None
        return self.pipeline.swapper.engine.watcher.preset


EFFECTS = {"passthrough": Passthrough, "test-pattern": TestPattern, "pipeline": PipelineEffect}


def build_effect(options: Mapping[str, Any], pool: ModelPool) -> Effect:
    kind = EFFECTS[options["effect"]]
    return PipelineEffect(options, pool) if kind is PipelineEffect else kind()
