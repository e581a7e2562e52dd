"""Keep up with the camera: step the pipeline's quality down under load and back up with headroom.

The load is the time a frame takes over the camera's frame interval, both smoothed. The interval
comes from the frames' own capture timestamps and ids (frames the worker skipped still count), so a
worker that falls behind sees its true input rate, not its own output rate. Hysteresis keeps it from
flapping: a step down needs the load above ``HIGH`` for ``DOWN_AFTER`` frames, a step up needs it
below ``LOW`` for ``UP_AFTER_S`` seconds, and no step follows another within ``SETTLE_S``.
"""

from __future__ import annotations

HIGH = 0.92  # of the frame interval: above this the worker is about to drop frames
LOW = 0.6  # below this a step up (costing up to ~40% more) still fits
DOWN_AFTER = 8  # frames
UP_AFTER_S = 3.0
SETTLE_S = 1.0
SMOOTHING = 0.2  # weight of the newest frame in the moving averages


class Pacer:
    """Per channel. ``observe`` each processed frame; it returns the level to use now."""

    def __init__(self, levels: int) -> None:
        self.levels = levels
        self.level = 0
        self.load = 0.0
        self._interval_ms: float | None = None
        self._last: tuple[int, int] | None = None  # (frame id, capture ns)
        self._high_frames = 0
        self._low_since: float | None = None
        self._changed_at = float("-inf")

    def observe(self, frame_id: int, capture_ns: int, process_ms: float, now: float) -> int:
        last, self._last = self._last, (frame_id, capture_ns)
        if last is None or frame_id <= last[0] or capture_ns <= last[1]:
            return self.level  # a new stream (or a restart): nothing to compare with yet
        interval = (capture_ns - last[1]) / 1e6 / (frame_id - last[0])
        self._interval_ms = interval if self._interval_ms is None else (
            self._interval_ms + SMOOTHING * (interval - self._interval_ms))
        self.load += SMOOTHING * (process_ms / max(self._interval_ms, 1e-3) - self.load)
        self._high_frames = self._high_frames + 1 if self.load > HIGH else 0
        if self.load < LOW:
            self._low_since = now if self._low_since is None else self._low_since
        else:
            self._low_since = None
        if now - self._changed_at < SETTLE_S:
            return self.level
        if self._high_frames >= DOWN_AFTER and self.level < self.levels - 1:
            self._step(+1, now)
        elif self._low_since is not None and now - self._low_since >= UP_AFTER_S and self.level > 0:
            self._step(-1, now)
        return self.level

    def _step(self, direction: int, now: float) -> None:
        self.level += direction
        self._changed_at = now
        self._high_frames, self._low_since = 0, None
