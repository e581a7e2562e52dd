"""Per-stream face tracking: landmarks follow the face from frame to frame, the detector runs only
when a face is lost or every ``detect_every`` frames (to pick up newcomers), and landmarks are
One-Euro smoothed per face.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facefusion_obs.faces.detector import FULL_RANGE, SHORT_RANGE, Detection, FaceDetector
from facefusion_obs.faces.landmarker import FaceLandmarker, Roi, roi_from_detection, roi_from_landmarks
from facefusion_obs.faces.smoothing import OneEuroFilter

# Below these changes the crop is kept as it was: re-framing a still face on every frame feeds the
# landmark noise back into the next crop and is the main source of shimmer.
ROI_HOLD_SHIFT = 0.04  # of the crop size
ROI_HOLD_SCALE = 0.06
ROI_HOLD_ANGLE = np.deg2rad(3.0)


@dataclass
class Face:
    """One tracked face: ``landmarks`` (468, 3) smoothed frame pixels (z in the same scale)."""

    track_id: int
    landmarks: np.ndarray
    raw_landmarks: np.ndarray
    roi: Roi
    presence: float
    detected: bool = False  # True on the frame a detection (re)started it

    @property
    def box(self) -> np.ndarray:
        xy = self.landmarks[:, :2]
        return np.concatenate([xy.min(0), xy.max(0)])

    @property
    def size(self) -> float:
        return float(max(self.box[2:] - self.box[:2]))


@dataclass
class _Track:
    track_id: int
    roi: Roi
    smoother: OneEuroFilter = field(default_factory=OneEuroFilter)
    last: Face | None = None


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(rb - lt, 0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2])) - inter
    return inter / union if union > 0 else 0.0


def _hold(old: Roi, new: Roi) -> Roi:
    """Keep the old crop while the face stays well inside it."""
    shift = np.hypot(new.cx - old.cx, new.cy - old.cy) / old.size
    if (shift < ROI_HOLD_SHIFT and abs(new.size / old.size - 1) < ROI_HOLD_SCALE
            and abs(np.angle(np.exp(1j * (new.angle - old.angle)))) < ROI_HOLD_ANGLE):
        return old
    return new


class FaceTracker:
    """``process(rgb, t) -> list[Face]`` for one stream (it owns the temporal state; the models come
    from ``pool`` and are shared with every other tracker)."""

    def __init__(self, pool: Any, max_faces: int = 1, detect_every: int = 15, min_presence: float = 0.5,
                 smoothing: bool = True) -> None:
        self.max_faces, self.detect_every, self.min_presence = max_faces, detect_every, min_presence
        self.smoothing = smoothing
        self.detector = pool.load(FaceDetector, SHORT_RANGE.model)
        self.far_detector = pool.load(FaceDetector, FULL_RANGE.model)
        self.landmarker = pool.load(FaceLandmarker)
        self.tracks: list[_Track] = []
        self._ids = itertools.count(1)
        self._frame = 0
        self.stats = {"detect_runs": 0}
        self.timings = {"detect": 0.0, "landmarks": 0.0}  # ms, last frame

    def prepare(self) -> FaceTracker:
        """The models are loaded (and verified) when the tracker is built; kept for call sites' chaining."""
        return self

    def reset(self) -> None:
        self.tracks.clear()
        self._frame = 0

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Close faces with the short-range model; the full-range model only when that finds none."""
        self.stats["detect_runs"] += 1
        found = self.detector.get(rgb)
        if not found:
            found = self.far_detector.get(rgb)
        return sorted(found, key=lambda d: -float(np.prod(d.box[2:] - d.box[:2])))

    def process(self, rgb: np.ndarray, t: float | None = None) -> list[Face]:
        t = self._frame / 30.0 if t is None else float(t)
        due = not self.tracks or self._frame % self.detect_every == 0
        self._frame += 1
        fresh: set[int] = set()
        t0 = time.perf_counter()
        if due:
            for det in self.detect(rgb):
                roi = roi_from_detection(det)
                if any(_iou(roi.box(), tr.roi.box()) > 0.3 for tr in self.tracks):
                    continue  # already tracked: the tracked crop is better framed than a detection
                if len(self.tracks) >= self.max_faces:
                    break
                track = _Track(next(self._ids), roi)
                self.tracks.append(track)
                fresh.add(track.track_id)
        t1 = time.perf_counter()
        faces = []
        kept = []
        for track in self.tracks:
            raw, presence = self.landmarker.get(rgb, track.roi)
            if presence < self.min_presence:
                continue  # lost: the next frame runs the detector
            size = float(max(raw[:, :2].max(0) - raw[:, :2].min(0)))
            smooth = track.smoother.filter(raw, t, size) if self.smoothing else raw
            track.roi = _hold(track.roi, roi_from_landmarks(raw))
            face = Face(track.track_id, smooth, raw, track.roi, presence, track.track_id in fresh)
            if any(_iou(face.box, other.box) > 0.5 for other in faces):
                continue  # two tracks converged on one face
            track.last = face
            faces.append(face)
            kept.append(track)
        self.tracks = kept
        self.timings = {"detect": (t1 - t0) * 1e3, "landmarks": (time.perf_counter() - t1) * 1e3}
        return faces
