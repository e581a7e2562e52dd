"""The "AI face swap" badge, drawn into the output's pixels while a face is swapped.

Why in the pixels and not as an OBS text source: the badge then travels with the picture into the
stream, the recording and every clip cut from them, and no scene can be built without it. Why
opaque: under the badge the alpha is 255, so it shows over a virtual background even where the
matte made the frame transparent. The badge is a dark plate with rounded corners and white text
(channel order does not matter for grey and white, so the same code serves RGBA and BGRA), sized
relative to the frame height so it is legible at any resolution and never dominates the picture.

Pure and stateless: the badge is drawn anew each frame (well under a millisecond at 1080p), so no
cache has to follow option changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

DEFAULT_TEXT = "AI face swap"
MAX_CHARS = 40
PLATE_RGB = (24, 24, 28)
TEXT_RGB = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX  # Hershey fonts are ASCII only: other characters become "?"
_SUPERSAMPLE = 4  # the plate's rounded corners are drawn this much larger, then area-averaged down


def label_text(text: str) -> str:
    """What the badge says: printable ASCII (others become "?"), at most ``MAX_CHARS``, never empty."""
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in text.strip())[:MAX_CHARS].strip()
    return cleaned or DEFAULT_TEXT


@dataclass(frozen=True)
class Badge:
    """A rendered badge and where it goes: ``rgb`` (h, w, 3) uint8 and its ``coverage`` (h, w)
    float32 in 0..1 (1 inside the plate, fractional on its rounded corners) at ``x``, ``y``."""

    x: int
    y: int
    rgb: np.ndarray
    coverage: np.ndarray

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), exclusive ends: where the badge is in the frame."""
        h, w = self.coverage.shape
        return self.x, self.y, self.x + w, self.y + h


def render_badge(text: str, width: int, height: int, corner: str, size: float) -> Badge | None:
    """The badge for a ``width`` x ``height`` frame: plate height ``size`` x ``height`` (at least 12
    pixels), a margin from the edges, in ``corner``. None when the frame is too small to hold it."""
    text = label_text(text)
    plate_h = max(12, round(size * height))
    margin = max(2, round(plate_h * 0.3))
    pad = max(3, round(plate_h * 0.3))
    thickness = max(1, round(plate_h / 20))
    scale = cv2.getFontScaleFromHeight(FONT, max(4, round(plate_h * 0.48)), thickness)
    (text_w, text_h), _ = cv2.getTextSize(text, FONT, scale, thickness)
    room = width - 2 * margin - 2 * pad
    if text_w > room:  # a long text on a narrow frame: smaller letters, same plate height
        scale *= room / text_w
        (text_w, text_h), _ = cv2.getTextSize(text, FONT, scale, thickness)
    plate_w = text_w + 2 * pad
    if room <= 0 or plate_h + 2 * margin > height or text_h < 4:
        return None
    x = margin if corner.endswith("left") else width - margin - plate_w
    y = margin if corner.startswith("top") else height - margin - plate_h

    big = np.zeros((plate_h * _SUPERSAMPLE, plate_w * _SUPERSAMPLE), np.uint8)
    r = round(plate_h * _SUPERSAMPLE * 0.22)  # corner radius
    bh, bw = big.shape
    cv2.rectangle(big, (r, 0), (bw - 1 - r, bh - 1), 255, -1)
    cv2.rectangle(big, (0, r), (bw - 1, bh - 1 - r), 255, -1)
    for cx, cy in ((r, r), (bw - 1 - r, r), (r, bh - 1 - r), (bw - 1 - r, bh - 1 - r)):
        cv2.circle(big, (cx, cy), r, 255, -1)
    coverage = cv2.resize(big, (plate_w, plate_h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0

    rgb = np.empty((plate_h, plate_w, 3), np.uint8)
    rgb[...] = PLATE_RGB
    baseline_y = (plate_h + text_h) // 2
    cv2.putText(rgb, text, (pad, baseline_y), FONT, scale, TEXT_RGB, thickness, cv2.LINE_AA)
    return Badge(x, y, rgb, coverage)


def draw_label(frame: Any, options: Mapping[str, Any], swapped: bool, cache: dict[tuple, Any] | None = None) -> None:
    """Draw the badge into ``frame`` (H, W, 4 uint8, numpy or cupy) in place, when the ``ai_label``
    option is on and ``swapped`` (a face in this frame is swapped); otherwise leave it untouched.

    ``cache`` (owned by the caller, e.g. one per pipeline) keeps the last rendered badge, so a live
    stream renders it once, not on every frame."""
    if not (swapped and options["ai_label"]):  # validated options (config.OPTIONS holds the defaults)
        return
    height, width = frame.shape[:2]
    key = (options["ai_label_text"], width, height, options["ai_label_corner"], float(options["ai_label_size"]))
    if cache is not None and key in cache:
        badge = cache[key]
    else:
        badge = render_badge(*key)
        if cache is not None:
            cache.clear()  # one badge per stream: the options or the frame size changed
            cache[key] = badge
    if badge is None:
        return
    x0, y0, x1, y1 = badge.box
    region = frame[y0:y1, x0:x1]
    xp: Any = np
    if not isinstance(frame, np.ndarray):  # a frame on the GPU: the small badge goes up, the frame stays
        from facefusion_obs.runtime.xp import module_of

        xp = module_of(frame)
    rgb, coverage = xp.asarray(badge.rgb), xp.asarray(badge.coverage)
    inside = coverage >= 1.0
    xp.copyto(region[..., :3], rgb, where=inside[..., None])  # the plate's interior: exactly the badge
    xp.copyto(region[..., 3], 255, where=inside)
    ys, xs = xp.nonzero((coverage > 0.0) & ~inside)  # the rounded corners' rim (a few pixels): blended
    cov = coverage[ys, xs][:, None]
    region[ys, xs, :3] = (region[ys, xs, :3] * (1.0 - cov) + rgb[ys, xs] * cov + 0.5).astype(xp.uint8)
    region[ys, xs, 3] = xp.maximum(region[ys, xs, 3], (cov[:, 0] * 255.0 + 0.5).astype(xp.uint8))
