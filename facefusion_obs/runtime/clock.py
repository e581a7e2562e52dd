"""Where a frame's time goes: milliseconds per stage, summed over frames, taken as means."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class StageClock:
    """Milliseconds per pipeline stage over the frames since the last ``take`` (for ``bench pipeline``
    and the worker's status). Stages on the second thread are timed there, so the sum of the stages
    may exceed a frame's latency: that overlap is the point."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.frames = 0

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, (time.perf_counter() - t0) * 1e3)

    def add(self, stage: str, ms: float) -> None:
        self.totals[stage] = self.totals.get(stage, 0.0) + ms

    def take(self) -> dict[str, float]:
        """Mean ms per frame of each stage, and start counting again."""
        frames, totals = max(1, self.frames), self.totals
        self.totals, self.frames = {}, 0
        return {stage: ms / frames for stage, ms in totals.items()}
