"""Quality levels the live pipeline steps through under load, cheapest change first.

One table: each level says what it changes and is what the status line names. Level 0 is full
quality; offline runs (``process``, benchmarks) always use it, so their output never depends on the
machine's speed. The worker's pacer (``worker/pacing.py``) decides when to move between levels.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QualityLevel:
    name: str
    matte_rows: int  # the matte's work grid (matting.matter.WORK_HEIGHT at full quality)
    segment_every: int  # run the person segmentation on every n-th frame at most
    detect_every: int  # the face detector's cadence while a face is tracked


QUALITY_LEVELS: tuple[QualityLevel, ...] = (
    QualityLevel("full", 360, 1, 15),
    QualityLevel("matte 270 rows", 270, 1, 15),
    QualityLevel("matte 270 rows, segmentation every 2nd frame", 270, 2, 30),
    QualityLevel("matte 180 rows, segmentation every 3rd frame", 180, 3, 30),
    QualityLevel("matte 120 rows, segmentation every 4th frame", 120, 4, 45),
)
