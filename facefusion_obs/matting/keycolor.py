"""Which colour the screen is: from the user's option, or estimated from the frame.

The keyer works on a colour difference (the screen's dominant channel minus the larger of the other
two), so what it needs from the key colour is that dominant channel. A colour with no clearly
dominant channel (grey, yellow, magenta) cannot be keyed this way and is refused with a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy

from facefusion_obs.config import OptionError, parse_key_color
from facefusion_obs.runtime.xp import module_of, to_numpy

GREEN = (0, 177, 64)
BLUE = (0, 71, 187)

# the dominant channel must exceed the next one by this share of its value to be a usable key
_MIN_DOMINANCE = 0.2


@dataclass(frozen=True)
class KeyColor:
    """The screen colour (0..255 RGB) and the channel the colour difference is taken on."""

    rgb: tuple[int, int, int]
    primary: int

    @property
    def others(self) -> tuple[int, int]:
        a, b = (c for c in range(3) if c != self.primary)
        return a, b


def key_from_rgb(rgb: tuple[int, int, int], field_name: str = "key_color") -> KeyColor:
    """A KeyColor for an explicit colour, or OptionError naming the field when it is not keyable."""
    ordered = sorted(range(3), key=lambda c: rgb[c], reverse=True)
    top, second = rgb[ordered[0]], rgb[ordered[1]]
    if top < 40 or (top - second) < _MIN_DOMINANCE * top:
        hexcode = "#{:02X}{:02X}{:02X}".format(*rgb)
        raise OptionError(
            f"option {field_name!r}: {hexcode} is not a keyable screen colour (one of red, green or "
            "blue must clearly dominate, as on a green or blue screen)")
    return KeyColor(tuple(int(c) for c in rgb), ordered[0])  # type: ignore[arg-type]


def resolve_key_color(value: Any) -> KeyColor | None:
    """The KeyColor for option ``key_color``; None for ``auto`` (estimated from the first frame)."""
    parsed = parse_key_color(value)
    if parsed == "auto":
        return None
    if parsed == "green":
        return KeyColor(GREEN, 1)
    if parsed == "blue":
        return KeyColor(BLUE, 2)
    return key_from_rgb(parsed)  # type: ignore[arg-type]


def estimate_key_color(rgb: Any) -> KeyColor:
    """Guess the screen colour from the frame's border, where a screen almost always shows.

    Among border pixels, the most common dominant channel wins; the key is the median colour of the
    border pixels dominated by it. Frames with no saturated border fall back to green.
    """
    xp = module_of(rgb)
    h, w = rgb.shape[:2]
    bh, bw = max(1, h // 12), max(1, w // 12)
    border = xp.concatenate([rgb[:bh].reshape(-1, 3), rgb[-bh:].reshape(-1, 3),
                             rgb[:, :bw].reshape(-1, 3), rgb[:, -bw:].reshape(-1, 3)])
    # a few thousand samples on the host are plenty for a median and cheap to move off a GPU
    border = to_numpy(border[:: max(1, border.shape[0] // 4096)]).astype(numpy.int32)
    ranked = border.copy()
    ranked.sort(axis=1)
    saturated = (ranked[:, 2] - ranked[:, 1]) > 0.25 * ranked[:, 2].clip(1)
    if saturated.sum() < 0.2 * border.shape[0]:
        return KeyColor(GREEN, 1)
    dominant = border[saturated].argmax(axis=1)
    counts = [(int((dominant == c).sum()), c) for c in range(3)]
    primary = max(counts)[1]
    colour = border[saturated][dominant == primary]
    median = tuple(int(v) for v in numpy.median(colour, axis=0))
    return KeyColor(median, primary)  # type: ignore[arg-type]
