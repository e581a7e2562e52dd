"""The frame pipeline: BGRA in, straight-alpha RGBA out.

Order matters: the face swap runs first so that matting despills and keys the *swapped* face, and the
swap hands its face mask to the matting as a region that must stay opaque.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from facefusion_obs.config import validate_options
from facefusion_obs.matting import build_matter
from facefusion_obs.runtime.xp import module_of, to_numpy
from facefusion_obs.swap import build_swapper

if TYPE_CHECKING:
    from facefusion_obs.runtime.pool import ModelPool


def compose_rgba(rgb: Any, alpha: Any, out: np.ndarray | None = None) -> Any:
    """Stack RGB (H, W, 3) and alpha (H, W), both uint8, into one contiguous RGBA image.

    With ``out`` (host memory, such as a shared-memory output slot) the result is written there
    directly, so the frame is not assembled once and then copied again.
    """
    if out is None:
        xp = module_of(rgb)
        out = xp.empty((*rgb.shape[:2], 4), dtype=xp.uint8)
    else:
        rgb, alpha = to_numpy(rgb), to_numpy(alpha)
    out[..., :3] = rgb
    out[..., 3] = alpha
    return out


class FramePipeline:
    """One pipeline per stream: it owns the stream's temporal state (tracking, smoothing, matte history).

    Models come from ``pool``, which the caller owns and shares between pipelines, so many channels
    load them once.
    """

    def __init__(self, options: Mapping[str, Any] | None, pool: ModelPool) -> None:
        self.options = validate_options(dict(options or {}))
        self.pool = pool
        self.swapper = build_swapper(self.options, pool)
        self.matter = build_matter(self.options, pool)

    def configure(self, options: Mapping[str, Any]) -> None:
        """Apply changed options live; stages keep their state where the change allows it."""
        self.options = validate_options({**self.options, **options})
        self.swapper.configure(self.options)
        self.matter.configure(self.options)

    def recheck(self) -> list[str]:
        """Follow model availability (a model fetched or removed meanwhile); returns the notes to show."""
        self.swapper.recheck()
        return self.swapper.take_notes()

    def process(self, bgra: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The RGBA result of one BGRA frame, written into ``out`` when one is given."""
        rgb = np.ascontiguousarray(bgra[..., 2::-1])
        face_mask = None
        if self.options["swap_enabled"]:
            rgb, face_mask = self.swapper.process(rgb)
        rgb, alpha = self.matter.process(rgb, opaque=face_mask)
        return compose_rgba(rgb, alpha, out)
