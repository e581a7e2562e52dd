"""Logging for the OBS side: one prefix, errors logged once per distinct error, callback timings.

A callback that fails on every frame would otherwise print a traceback thirty times a second and
bury OBS's log. Each distinct failure (where, exception type, message, the line that raised) is logged
once with its traceback; repeats are counted and summarised at most once a minute.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass

PREFIX = "[facefusion-obs]"
REPEAT_SUMMARY_EVERY_S = 60.0


def log(message: str) -> None:
    print(f"{PREFIX} {message}", flush=True)


@dataclass
class _Seen:
    count: int
    reported: int  # the count at the last line written
    reported_at: float


class ErrorLog:
    """Counts failures by kind and writes one line per kind, plus a periodic count of repeats."""

    def __init__(self, summary_every_s: float = REPEAT_SUMMARY_EVERY_S) -> None:
        self.summary_every_s = summary_every_s
        self._seen: dict[tuple[str, str, str, str], _Seen] = {}

    def report(self, where: str, exc: BaseException) -> None:
        """Log ``exc`` raised in ``where``: in full the first time, as a count after that."""
        frames = traceback.extract_tb(exc.__traceback__)
        origin = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        key = (where, type(exc).__name__, str(exc)[:200], origin)
        now = time.monotonic()
        seen = self._seen.get(key)
        if seen is None:
            if len(self._seen) >= 256:  # bounded even if every message differs (a counter in the text)
                self._seen.clear()
            self._seen[key] = _Seen(1, 1, now)
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            log(f"{where} failed (logged once; repeats are counted):\n{text.rstrip()}")
            return
        seen.count += 1
        if now - seen.reported_at >= self.summary_every_s:
            log(f"{where} failed {seen.count - seen.reported} more times ({seen.count} in all): "
                f"{type(exc).__name__}: {str(exc)[:200]}")
            seen.reported, seen.reported_at = seen.count, now

    def count(self, where: str) -> int:
        """How often ``where`` failed, all kinds together."""
        return sum(s.count for k, s in self._seen.items() if k[0] == where)


@dataclass
class CallTiming:
    calls: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0

    def add(self, ms: float) -> None:
        self.calls += 1
        self.total_ms += ms
        self.max_ms = max(self.max_ms, ms)


def timing_summary(timings: dict[str, CallTiming], names: tuple[str, ...]) -> str:
    """One line for the log: how long OBS's thread spent in each of our callbacks (max and mean)."""
    parts = [f"{n} max {t.max_ms:.2f} mean {t.total_ms / t.calls:.2f} ms (n={t.calls})"
             for n in names if (t := timings.get(n)) and t.calls]
    return "callback time: " + (", ".join(parts) if parts else "no calls yet")
