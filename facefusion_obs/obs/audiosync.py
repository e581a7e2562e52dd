"""Keep an audio source in sync with the filtered video: when to change its sync offset, and to what.

The filter's output reaches the screen later than the camera's sound by its capture-to-display
latency (each output carries its input's capture time; the filter measures the difference). OBS can
delay a source's audio by a *sync offset*. The streamer picks that source in the Scripts window
("Keep audio in sync with"); the script then sets its offset to the offset it had before (the
streamer's own correction for the camera, usually 0) plus the latency's median, rounded to a whole
frame. Every change is an audible skip or repeat, so the offset moves only when the latency has been
more than a frame away from it for ``HOLD_S`` seconds: jitter and a worker restart never move it.
Turning the setting off, choosing another source or unloading the script puts the old offset back.

The source's own offset is also written to a small file (``SAVED_FILE`` in the config folder) when
the script takes the source over: OBS saves the scene collection *before* scripts unload, so after a
quit the collection holds our offset, and the next start reads the source's own one from the file.
(A file, not the script's settings: those are OBS data, not safe to write from the timer's thread.)

Pure logic and file I/O, standard library only: ``frontend.py`` reads the latency and calls OBS.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

HOLD_S = 3.0  # "for a few seconds": longer than a restart's dip, short enough to follow a quality change
MAX_DELAY_NS = 2_000_000_000  # a latency above this is a stalled measurement, not a delay to copy
SAVED_FILE = "audio_sync.json"  # {"source": name, "offset_ns": its own offset}, while we hold it


def read_saved(path: Path) -> tuple[str, int] | None:
    """The held source and its own offset, or None (no file, or one that is not ours to trust)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    source, offset = data.get("source"), data.get("offset_ns")
    usable = isinstance(offset, int) and not isinstance(offset, bool) and abs(offset) <= 10 * MAX_DELAY_NS
    return (source, offset) if isinstance(source, str) and source and usable else None


def write_saved(path: Path, saved: tuple[str, int] | None) -> None:
    """Record (or with None forget) the held source's own offset; written whole, then renamed."""
    if saved is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"source": saved[0], "offset_ns": int(saved[1])}), encoding="utf-8")
    os.replace(tmp, path)


def round_to_frame(latency_ns: float, frame_ns: int) -> int:
    """``latency_ns`` rounded to a whole number of frames (never negative, at most ``MAX_DELAY_NS``)."""
    frames = round(max(0.0, min(float(MAX_DELAY_NS), latency_ns)) / frame_ns)
    return int(frames * frame_ns)


@dataclass
class SyncRule:
    """The hysteresis for one audio source. ``base_ns`` is the offset it had before we took it over."""

    frame_ns: int
    base_ns: int
    hold_s: float = HOLD_S
    applied_ns: int = field(init=False)  # the offset in use now
    _since: float | None = field(default=None, init=False, repr=False)  # when the latency left the band

    def __post_init__(self) -> None:
        if self.frame_ns <= 0:
            raise ValueError(f"frame interval must be positive, got {self.frame_ns} ns")
        self.applied_ns = self.base_ns

    @property
    def delay_ns(self) -> int:
        """How much of the offset in use is ours (the video's delay we compensate)."""
        return self.applied_ns - self.base_ns

    def update(self, latency_ns: float | None, now: float) -> int | None:
        """Feed the latency's median now (None: no output is flowing). Returns the offset to set, or
        None to keep the one in use."""
        if latency_ns is None or abs(latency_ns - self.delay_ns) <= self.frame_ns:
            self._since = None
            return None
        if self._since is None:
            self._since = now
        if now - self._since < self.hold_s:
            return None
        self._since = None
        target = self.base_ns + round_to_frame(latency_ns, self.frame_ns)
        if target == self.applied_ns:
            return None
        self.applied_ns = target
        return target


@dataclass
class AudioHold:
    """The audio source the script is keeping in sync now, and its rule."""

    source: str
    rule: SyncRule
    latency_ns: float | None = None  # the last latency fed to the rule, for the status line

    def status(self) -> str:
        """One part of the status line: the source and the offset in use."""
        rule = self.rule
        frames = round(rule.delay_ns / rule.frame_ns)
        return (
            f"audio sync: {self.source!r} offset {rule.applied_ns / 1e6:.0f} ms "
            f"(own {rule.base_ns / 1e6:.0f} ms + video delay {frames} frame{'s' if frames != 1 else ''})"
        )


def status_text(hold: AudioHold | None, wanted: str) -> str:
    """The audio part of the status lines; "" when the setting is off."""
    if not wanted:
        return ""
    if hold is None or hold.source != wanted:
        return f"audio sync: {wanted!r} not found (no audio source of that name)"
    return hold.status()
