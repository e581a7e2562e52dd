"""A dependency-free progress bar for downloads (stderr, redrawn in place on a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Redraws at most ~10 times a second; on a non-terminal it prints one line per 10 %."""

    def __init__(self, label: str, total: int | None, done: int = 0, stream: TextIO | None = None) -> None:
        self.label, self.total, self.done = label, total, done
        self.stream = stream or sys.stderr
        self._start, self._start_done = time.monotonic(), done
        self._last_draw = 0.0
        self._last_decile = -1
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self._tty and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        self._draw(end="")

    def close(self) -> None:
        self._draw(end="\n", force=True)

    def _draw(self, end: str, force: bool = False) -> None:
        mib = self.done / 2**20
        rate = (self.done - self._start_done) / 2**20 / max(time.monotonic() - self._start, 1e-6)
        if self.total:
            frac = min(self.done / self.total, 1.0)
            if not self._tty and not force:
                decile = int(frac * 10)
                if decile == self._last_decile:
                    return
                self._last_decile = decile
            bar = "#" * int(frac * 30)
            text = f"{self.label} [{bar:<30}] {frac:6.1%} {mib:8.1f}/{self.total / 2**20:.1f} MiB {rate:6.1f} MiB/s"
        else:
            if not self._tty and not force:
                return
            text = f"{self.label} {mib:8.1f} MiB {rate:6.1f} MiB/s"
        self.stream.write(("\r" if self._tty else "") + text + (end if self._tty else "\n"))
        self.stream.flush()
