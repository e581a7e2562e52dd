"""Per-stream face tracking that keeps up with a moving head and never hands on a torn face.

Each frame, for each tracked face:
1. **Predict.** Pyramidal Lucas-Kanade optical flow carries a subset of the last frame's landmarks
   (inner face points, on a grey window around the face at 360 rows a frame, checked forward and
   backward) into this
   frame; a RANSAC similarity fitted to them is the face's motion, and the landmark crop is framed on
   the landmarks moved by it, so the model sees the face where it is now, not where it was.
2. **Correct.** The landmark model runs on that crop. When its answer and the prediction disagree,
   it runs again on its own framing; if it still disagrees with itself, the detector runs.
3. **Smooth.** A One-Euro filter on frame time (the capture or video timestamp, never the wall
   clock) whose state is carried by the flow's motion first, so only what the flow did not explain
   is smoothed; its cutoff rises with speed, so fast motion is followed and a still face stays calm.
4. **Gate.** A consistency check decides, per face and frame, whether the face may be swapped:
   landmark presence, a jump in position or scale the flow does not support, a jump in the share of
   folded mesh triangles (a torn mesh). A face that fails is passed through; when the model loses a
   face that the flow still follows cleanly (every point tracked, forward and backward), the last good
   face is carried by the flow for up to ``HOLD_FRAMES`` frames, then faded out over ``FADE_FRAMES``.
   A face hidden by an occluder breaks the flow, so nothing stale is pasted on the occluder.

The detector runs when there are fewer faces than asked for and one was lost recently, when the
model disagrees with itself, and every ``detect_every`` frames (to pick up newcomers). A face that
comes back is detected on the frame it reappears and its landmarks are refined at once (a second pass
on their own framing), so it is swapped from its first tracked frame.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from facefusion_obs.faces.detector import FULL_RANGE, SHORT_RANGE, Detection, FaceDetector
from facefusion_obs.faces.landmarker import FaceLandmarker, Roi, roi_from_detection, roi_from_landmarks
from facefusion_obs.faces.smoothing import OneEuroFilter, carry

# Below these changes the crop is kept as it was: re-framing a still face on every frame feeds the
# landmark noise back into the next crop and is the main source of shimmer.
ROI_HOLD_SHIFT = 0.04  # of the crop size
ROI_HOLD_SCALE = 0.06
ROI_HOLD_ANGLE = np.deg2rad(3.0)

# MediaPipe's face outline: left out of the flow, since half of each of its patches is background
FACE_OVAL = frozenset(
    (
        10,
        338,
        297,
        332,
        284,
        251,
        389,
        356,
        454,
        323,
        361,
        288,
        397,
        365,
        379,
        378,
        400,
        377,
        152,
        148,
        176,
        149,
        150,
        136,
        172,
        58,
        132,
        93,
        234,
        127,
        162,
        21,
        54,
        103,
        67,
        109,
    )
)
FLOW_POINTS = np.array([i for i in range(0, 468, 9) if i not in FACE_OVAL], np.int64)
FLOW_ROWS = 360  # the flow runs as if the frame were 360 rows high: cheap, and a 720p head still spans ~100 px
LK_PARAMS: dict[str, Any] = {
    "winSize": (11, 11),
    "maxLevel": 3,
    "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03),
}
FB_MAX = 0.6  # forward-backward error (flow-grid px) beyond which a point's flow is not trusted
MIN_TRACKED = 0.5  # share of flow points that must track for a motion estimate
CLEAN_TRACKED = 0.9  # share that must track (and fit the motion) to carry a face the model lost
STILL_PX = 0.25  # mean predicted shift (frame px) below which the face counts as still: no carrying

AGREE = 0.06  # model vs flow prediction (mean point distance, of the face size)
SELF_AGREE = 0.03  # model vs its own second pass
MAX_JUMP = 0.35  # centre shift per frame (of the face size) that no flow supports: implausible
MAX_SCALE_STEP = 0.25  # scale change per frame, same
MAX_FOLD_STEP = 0.12  # rise in the share of folded triangles in one frame: a torn mesh
MAX_FOLDED = 0.30  # beyond this share the head is turned too far for any mesh (as the mesh engine)
HOLD_FRAMES = 3  # a face the model lost but the flow follows is kept this long at full strength
FADE_FRAMES = 3  # ... then faded out over this many
REDETECT_FRAMES = 60  # after a loss, the detector runs on every frame for this long
SETTLE_PASSES = 2  # extra landmark passes, each on the last one's framing, for a face to settle
SEEK_EVERY = 5  # with fewer faces than asked for, the detector looks for more this often (frames)
MAX_UNCONFIRMED = 3  # frames a track may go unconfirmed before it ends
# How far (of the face size) a detection's eyes and mouth may sit from the landmark model's before the
# two are taken to see different faces. Either detector's keypoints of a real, still face can sit ~15%
# off (the astronaut photo: 14% with the short-range model), so a tighter bound refuses real faces.
KEYPOINT_TOLERANCE = 0.2


@dataclass
class Face:
    """One tracked face in one frame: ``landmarks`` (468, 3) smoothed frame pixels (z in the same
    scale), the ones to draw. ``swap`` is the consistency check's verdict (False: pass this face
    through, ``reason`` says why); ``opacity`` < 1 while a lost face fades out."""

    track_id: int
    landmarks: np.ndarray
    raw_landmarks: np.ndarray
    roi: Roi
    presence: float
    detected: bool = False  # True on the frame a detection (re)started it
    swap: bool = True
    reason: str = ""
    opacity: float = 1.0
    coasting: int = 0  # frames the flow has carried it since the model last confirmed it
    disagreement: float = 0.0  # model vs flow prediction this frame (of the face size)

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
    raw: np.ndarray | None = None  # the model's last accepted landmarks (what the flow carries)
    folded: float = 0.0
    lost: int = 0  # frames since the model last confirmed the face
    unconfirmed: int = 0  # frames in a row the model's answer could not be confirmed
    confirm: bool = False  # this frame needs the detector's confirmation
    detection: Detection | None = None  # the detection that confirms this frame (or started the track)
    patch: _Patch | None = None  # the last frame's grey window around the face


@dataclass
class _Patch:
    """A grey window of one frame around a face: where the next frame's flow starts."""

    grey: np.ndarray
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels
    scale: float  # grey pixels per frame pixel
    frame_shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class _Flow:
    motion: np.ndarray  # 2x3 similarity, frame pixels, last frame -> this one
    clean: bool  # nearly every point tracked and fits the motion


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(rb - lt, 0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2])) - inter
    return inter / union if union > 0 else 0.0


def _hold(old: Roi, new: Roi) -> Roi:
    """Keep the old crop while the face stays well inside it."""
    shift = np.hypot(new.cx - old.cx, new.cy - old.cy) / old.size
    if (
        shift < ROI_HOLD_SHIFT
        and abs(new.size / old.size - 1) < ROI_HOLD_SCALE
        and abs(np.angle(np.exp(1j * (new.angle - old.angle)))) < ROI_HOLD_ANGLE
    ):
        return old
    return new


def _size(points: np.ndarray) -> float:
    xy = points[:, :2]
    return float(max(xy.max(0) - xy.min(0)))


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean landmark distance between two landmark sets, as a share of the face size."""
    return float(np.linalg.norm(a[:, :2] - b[:, :2], axis=1).mean()) / max(_size(b), 1e-6)


def _grey_window(rgb: np.ndarray, box: tuple[int, int, int, int], k: int) -> np.ndarray:
    """The grey of ``rgb`` inside ``box`` (whose sides are multiples of ``k``), shrunk ``k`` times."""
    x0, y0, x1, y1 = box
    grey = cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
    if k == 1:
        return grey
    return cv2.resize(grey, ((x1 - x0) // k, (y1 - y0) // k), interpolation=cv2.INTER_AREA)


def _keypoint_offset(points: np.ndarray, keypoints: np.ndarray) -> float:
    """Mean distance between a detection's eyes and mouth and the same places in the landmarks, as a
    share of the face size: two models' independent views of one face. (BlazeFace's nose keypoint
    sits on the nose's bridge or tip depending on the model, so it is left out.)"""
    xy = points[:, :2]
    marks = np.array([(xy[33] + xy[133]) / 2, (xy[263] + xy[362]) / 2, (xy[13] + xy[14]) / 2])
    return float(np.linalg.norm(marks - keypoints[[0, 1, 3]], axis=1).mean()) / max(_size(points), 1e-6)


def _matching_detection(raw: np.ndarray, flow: _Flow | None, detections: list[Detection]) -> Detection | None:
    """The detection that overlaps the track's face (moved by the flow when there is
    one), or None when no detection does."""
    where = roi_from_landmarks(carry(raw, flow.motion) if flow is not None else raw).box()
    best = max(detections, key=lambda d: _iou(roi_from_detection(d).box(), where), default=None)
    if best is None or _iou(roi_from_detection(best).box(), where) < 0.3:
        return None
    return best


def folded_share(points: np.ndarray, triangles: np.ndarray) -> float:
    """Share of mesh triangles whose winding is reversed (folded over) in ``points``."""
    p = points[:, :2]
    a, b, c = p[triangles[:, 0]], p[triangles[:, 1]], p[triangles[:, 2]]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    # MediaPipe's tessellation winds every triangle the same way on a frontal face; the majority sign
    # is that way, so a face seen in a mirror-flipped frame does not count as folded
    sign = 1.0 if (area > 0).sum() >= (area < 0).sum() else -1.0
    return float((area * sign <= 0).mean())


class FaceTracker:
    """``process(rgb, t) -> list[Face]`` for one stream (it owns the temporal state; the models come
    from ``pool`` and are shared with every other tracker). ``t`` is the frame's time in seconds;
    without one, frames are taken to be 1/30 s apart. ``triangles`` (the mesh topology), when given,
    lets the consistency check see a torn mesh."""

    def __init__(
        self,
        pool: Any,
        max_faces: int = 1,
        detect_every: int = 15,
        min_presence: float = 0.5,
        smoothing: bool = True,
        triangles: np.ndarray | None = None,
    ) -> None:
        self.max_faces, self.detect_every, self.min_presence = max_faces, detect_every, min_presence
        self.smoothing = smoothing
        self.triangles = triangles
        self.detector = pool.load(FaceDetector, SHORT_RANGE.model)
        self.far_detector = pool.load(FaceDetector, FULL_RANGE.model)
        self.landmarker = pool.load(FaceLandmarker)
        self.tracks: list[_Track] = []
        self._ids = itertools.count(1)
        self._frame = 0
        self._redetect = 0  # frames left during which the detector runs on every frame
        self._detect_now = False
        self.stats = {"detect_runs": 0, "landmark_runs": 0, "flow_runs": 0}
        self.timings = {"detect": 0.0, "flow": 0.0, "landmarks": 0.0}  # ms, last frame

    def prepare(self) -> FaceTracker:
        """The models are loaded (and verified) when the tracker is built; kept for call sites' chaining."""
        return self

    def reset(self) -> None:
        self.tracks.clear()
        self._frame = 0
        self._redetect = 0
        self._detect_now = False

    def detect(self, rgb: np.ndarray, want: int = 1) -> list[Detection]:
        """Close faces with the short-range model; the full-range model too when that finds fewer than
        ``want`` (its extra faces are added), largest first."""
        self.stats["detect_runs"] += 1
        found = self.detector.get(rgb)
        if len(found) < want:
            near = [roi_from_detection(d).box() for d in found]
            found += [
                d for d in self.far_detector.get(rgb) if all(_iou(roi_from_detection(d).box(), b) < 0.3 for b in near)
            ]
        return sorted(found, key=lambda d: -float(np.prod(d.box[2:] - d.box[:2])))

    def _landmarks(self, rgb: np.ndarray, roi: Roi) -> tuple[np.ndarray, float]:
        self.stats["landmark_runs"] += 1
        return self.landmarker.get(rgb, roi)

    def _patch(self, rgb: np.ndarray, points: np.ndarray) -> _Patch:
        """A grey copy of the window around the face at ``points`` (the face plus 0.75 of its size on
        each side: room for more than half a face of motion per frame), scaled as if the frame were
        FLOW_ROWS high, which the next frame's flow starts from. Its cost follows the face's size, not the frame's."""
        h, w = rgb.shape[:2]
        k = max(1, round(h / FLOW_ROWS))  # a whole factor: OpenCV's area resize is fast only for those
        p = points[FLOW_POINTS, :2]
        lo, hi = p.min(0), p.max(0)
        pad = 0.75 * float(max(hi - lo)) + 32.0
        x0, y0 = np.floor(np.clip(lo - pad, 0, [w, h])).astype(int)
        x1, y1 = np.ceil(np.clip(hi + pad, 0, [w, h])).astype(int)
        x1, y1 = x0 + (x1 - x0) // k * k, y0 + (y1 - y0) // k * k
        box = (int(x0), int(y0), int(x1), int(y1))
        return _Patch(_grey_window(rgb, box, k), box, 1.0 / k)

    def _flow(self, rgb: np.ndarray, track: _Track) -> _Flow | None:
        """The face's motion since the last frame, from LK flow of the mesh points checked both ways
        (forward, then back), between the track's stored window and the same window of this frame."""
        self.stats["flow_runs"] += 1
        before = track.patch
        assert before is not None and track.raw is not None
        x0, y0, x1, y1 = before.box
        if x1 - x0 < 16 or y1 - y0 < 16:
            return None
        scale = before.scale
        now = _grey_window(rgb, before.box, round(1.0 / scale))
        offset = np.array([x0, y0], np.float64)
        p0 = np.ascontiguousarray((track.raw[FLOW_POINTS, :2] - offset) * scale, np.float32).reshape(-1, 1, 2)
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(before.grey, now, p0, None, **LK_PARAMS)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(now, before.grey, p1, None, **LK_PARAMS)
        fb = np.linalg.norm((back - p0).reshape(-1, 2), axis=1)
        good = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb < FB_MAX)
        n = len(p0)
        if good.sum() < max(6, MIN_TRACKED * n):
            return None
        m, inliers = cv2.estimateAffinePartial2D(
            p0[good],
            p1[good],
            method=cv2.RANSAC,
            ransacReprojThreshold=1.0,
            maxIters=200,
            confidence=0.99,
            refineIters=5,
        )
        if m is None or inliers is None or inliers.sum() < max(6, MIN_TRACKED * n):
            return None
        motion = m.astype(np.float64)
        # window grid -> frame: P1 = A P0 + t / scale + o - A o
        motion[:, 2] = motion[:, 2] / scale + offset - motion[:, :2] @ offset
        return _Flow(motion, bool(inliers.sum() >= CLEAN_TRACKED * n))

    def process(self, rgb: np.ndarray, t: float | None = None) -> list[Face]:
        t = self._frame / 30.0 if t is None else float(t)
        short_of = len(self.tracks) < self.max_faces
        due = (
            not self.tracks
            or self._frame % self.detect_every == 0
            or self._detect_now
            or (short_of and (self._redetect > 0 or self._frame % SEEK_EVERY == 0))
        )
        self._frame += 1
        self._redetect = max(0, self._redetect - 1)
        self._detect_now = False
        t0 = time.perf_counter()
        fresh: set[int] = set()
        detections: list[Detection] | None = None
        if due:
            detections = self.detect(rgb, max(1, self.max_faces - len(self.tracks)))
            for det in detections:
                roi = roi_from_detection(det)
                if any(_iou(roi.box(), tr.roi.box()) > 0.3 for tr in self.tracks):
                    continue  # already tracked: the tracked crop is better framed than a detection
                if len(self.tracks) >= self.max_faces:
                    break
                track = _Track(next(self._ids), roi, detection=det)
                self.tracks.append(track)
                fresh.add(track.track_id)
        t1 = time.perf_counter()
        flows: dict[int, _Flow | None] = {}
        for track in self.tracks:
            usable = track.patch is not None and track.raw is not None and track.track_id not in fresh
            if track.patch is not None and track.patch.frame_shape != rgb.shape[:2]:
                usable = False  # the stream changed size: nothing to compare with
            flows[track.track_id] = self._flow(rgb, track) if usable else None
            # the flow lost most of the face (something may cover it), or the model's last answer was
            # not confirmed: the detector, a second and independent model, has to confirm this frame
            track.confirm = track.track_id not in fresh and (flows[track.track_id] is None or track.unconfirmed > 0)
        t2 = time.perf_counter()
        if any(track.confirm for track in self.tracks):
            if detections is None:
                detections = self.detect(rgb)
            for track in self.tracks:
                if track.confirm and track.raw is not None:
                    track.detection = _matching_detection(track.raw, flows[track.track_id], detections)
        t3 = time.perf_counter()
        faces: list[Face] = []
        kept: list[_Track] = []
        for track in self.tracks:
            face = self._follow(track, rgb, t, flows[track.track_id], track.track_id in fresh)
            if face is not None and any(_iou(face.box, other.box) > 0.5 for other in faces):
                continue  # two tracks converged on one face
            if face is not None:
                faces.append(face)
            if track.last is None:
                self._redetect = REDETECT_FRAMES  # lost: look for it (or a newcomer) on every frame
            else:
                kept.append(track)
        self.tracks = kept
        t4 = time.perf_counter()
        for track in kept:  # where the next frame's flow starts
            if track.raw is not None:
                track.patch = self._patch(rgb, track.raw)
                track.patch.frame_shape = rgb.shape[:2]
        t5 = time.perf_counter()
        self.timings = {
            "detect": (t1 - t0 + t3 - t2) * 1e3,
            "flow": (t2 - t1 + t5 - t4) * 1e3,
            "landmarks": (t4 - t3) * 1e3,
        }
        return faces

    def _follow(self, track: _Track, rgb: np.ndarray, t: float, flow: _Flow | None, fresh: bool) -> Face | None:
        """This frame's face of ``track`` (with the gate's verdict), or None when the track ends."""
        pred = carry(track.raw, flow.motion) if flow is not None and track.raw is not None else None
        roi = _hold(track.roi, roi_from_landmarks(pred)) if pred is not None else track.roi
        raw, presence = self._landmarks(rgb, roi)
        confirm = fresh or track.confirm
        if track.unconfirmed > 0:
            pred = None  # carried from an unconfirmed answer: nothing to hold the model to
        disagreement = _distance(raw, pred) if pred is not None else 0.0
        settled = True
        if presence >= self.min_presence and (confirm or disagreement > AGREE):
            # a detection's crop is framed loosely, and a disagreement may be a poorly framed crop: run
            # again on the model's own framing until it stops moving
            settled = False
            for _ in range(SETTLE_PASSES):
                again, presence = self._landmarks(rgb, roi_from_landmarks(raw))
                moved, raw = _distance(again, raw), again
                if moved < SELF_AGREE or presence < self.min_presence:
                    settled = moved < SELF_AGREE
                    break
            disagreement = _distance(raw, pred) if pred is not None else 0.0
        if presence < self.min_presence:
            return self._coast(track, flow, None, presence, f"landmark presence {presence:.2f}")
        if not settled:
            return self._unconfirmed(track, raw, presence, "the landmark model does not settle on the face")
        if confirm:
            if track.detection is None:
                return self._unconfirmed(track, raw, presence, "the detector does not confirm the face")
            off = _keypoint_offset(raw, np.asarray(track.detection.keypoints, np.float64))
            if off > KEYPOINT_TOLERANCE:  # the detector and the landmark model see different faces
                return self._unconfirmed(
                    track, raw, presence, f"landmarks {off:.0%} of the face size from the detection's keypoints"
                )
        if disagreement > AGREE:
            self._detect_now = True  # prediction and model disagree: the detector looks again next frame
            why = f"model and flow disagree by {disagreement:.1%} of the face size"
            if flow is not None and flow.clean:  # the flow follows the face cleanly: the model is misled
                return self._coast(track, flow, raw, presence, why)
            return self._unconfirmed(track, raw, presence, why)
        reason = self._implausible(track, raw, pred)
        if reason:
            self._detect_now = True
            return self._coast(track, flow, raw, presence, reason)
        size = _size(raw)
        motion = None
        moved = (
            pred is not None
            and track.raw is not None
            and float(np.linalg.norm(pred[:, :2] - track.raw[:, :2], axis=1).mean()) >= STILL_PX
        )
        if flow is not None and moved:  # a still face is not carried: flow noise would become jitter
            motion = flow.motion
        smooth = track.smoother.filter(raw, t, size, motion) if self.smoothing else raw
        track.roi = _hold(track.roi, roi_from_landmarks(raw)) if not fresh else roi_from_landmarks(raw)
        track.raw, track.lost, track.unconfirmed = raw, 0, 0
        track.folded = folded_share(smooth, self.triangles) if self.triangles is not None else 0.0
        face = Face(track.track_id, smooth, raw, track.roi, presence, fresh, disagreement=disagreement)
        track.last = face
        return face

    def _unconfirmed(self, track: _Track, raw: np.ndarray, presence: float, reason: str) -> Face | None:
        """The model sees a face but it is not confirmed: pass it through this frame and follow the
        model's answer (the next frame's flow and model may confirm it); after a few frames, end the track."""
        track.unconfirmed += 1
        track.raw, track.roi = raw, roi_from_landmarks(raw)
        track.smoother.reset()  # the next confirmed frame starts afresh, nothing unconfirmed mixed in
        if track.unconfirmed > MAX_UNCONFIRMED:
            track.last = None
        elif track.last is None:  # a new track: a placeholder keeps it alive, never drawn
            track.last = Face(track.track_id, raw, raw, track.roi, presence, swap=False, reason=reason)
        return Face(track.track_id, raw, raw, track.roi, presence, swap=False, reason=reason)

    def _implausible(self, track: _Track, raw: np.ndarray, pred: np.ndarray | None) -> str:
        """Why the model's landmarks cannot be this face in this frame ("" when they can)."""
        ref = pred if pred is not None else track.raw
        if ref is not None:
            size, ref_size = _size(raw), _size(ref)
            shift = float(np.linalg.norm(raw[:, :2].mean(0) - ref[:, :2].mean(0))) / max(ref_size, 1e-6)
            if shift > MAX_JUMP:
                return f"landmarks jumped {shift:.0%} of the face size"
            if abs(np.log(size / max(ref_size, 1e-6))) > np.log1p(MAX_SCALE_STEP):
                return f"face size jumped from {ref_size:.0f} to {size:.0f} px"
        if self.triangles is not None:
            folded = folded_share(raw, self.triangles)
            if folded > MAX_FOLDED:
                return f"head turned too far ({folded:.0%} of the mesh folds over)"
            if track.last is not None and folded - track.folded > MAX_FOLD_STEP:
                return f"mesh tore ({folded:.0%} of its triangles fold over, {track.folded:.0%} a frame ago)"
        return ""

    def _coast(
        self, track: _Track, flow: _Flow | None, raw: np.ndarray | None, presence: float, reason: str
    ) -> Face | None:
        """The model did not confirm the face: carry the last good one along a clean flow for a few
        frames (faded at the end); else end the track, and pass the face through this frame (a face
        the model still sees, ``raw``, is returned with ``swap`` False so the caller knows)."""
        track.lost += 1
        last = track.last
        if last is None or flow is None or not flow.clean or track.lost > HOLD_FRAMES + FADE_FRAMES:
            track.last = None  # nothing certifies the face is still there: never paste a stale one
            if raw is None:
                return None
            return Face(track.track_id, raw, raw, track.roi, presence, swap=False, reason=reason)
        landmarks = carry(last.landmarks, flow.motion)
        track.raw = carry(track.raw, flow.motion) if track.raw is not None else landmarks
        track.smoother.reset()
        fade = max(0, track.lost - HOLD_FRAMES)
        opacity = 1.0 - fade / (FADE_FRAMES + 1)
        track.roi = roi_from_landmarks(landmarks)
        face = Face(
            track.track_id,
            landmarks,
            track.raw,
            track.roi,
            presence,
            swap=True,
            reason=reason,
            opacity=opacity,
            coasting=track.lost,
        )
        track.last = face
        return face
