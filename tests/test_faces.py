"""Face detection, landmarks, tracking and smoothing on real photos with the real MediaPipe models."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facefusion_obs.faces import (
    FULL_RANGE,
    SHORT_RANGE,
    FaceDetector,
    FaceLandmarker,
    FaceTracker,
    OneEuroFilter,
    roi_from_detection,
    roi_from_landmarks,
)
from facefusion_obs.faces.detector import ssd_anchors
from facefusion_obs.faces.topology import MeshTopology


@pytest.fixture(scope="module")
def t1(sample_images_dir):
    return np.ascontiguousarray(cv2.imread(str(sample_images_dir / "t1.jpg"))[..., ::-1])


def _frame_720(rgb, scale=1.3):
    """A 1280x720 frame with the photo scaled and centred (the face near the middle)."""
    img = cv2.resize(rgb, None, fx=scale, fy=scale)
    frame = np.full((720, 1280, 3), 90, np.uint8)
    h, w = img.shape[:2]
    y0, x0 = max(0, (h - 720) // 2), max(0, (w - 1280) // 2)
    crop = img[y0:y0 + 720, x0:x0 + 1280]
    oy, ox = (720 - crop.shape[0]) // 2, (1280 - crop.shape[1]) // 2
    frame[oy:oy + crop.shape[0], ox:ox + crop.shape[1]] = crop
    return frame


def test_anchor_layouts_match_the_models(model_pool):
    short = ssd_anchors(128, SHORT_RANGE.strides, SHORT_RANGE.anchors_per_layer)
    full = ssd_anchors(192, FULL_RANGE.strides, FULL_RANGE.anchors_per_layer)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    assert np.allclose(short[0], [0.5 / 16, 0.5 / 16]) and np.allclose(short[512], [0.5 / 8, 0.5 / 8])
    assert np.allclose(short[512:518], short[512])  # six anchors per 16-stride cell
    for detector in (model_pool.load(FaceDetector, SHORT_RANGE.model), model_pool.load(FaceDetector, FULL_RANGE.model)):
        detector.prepare()  # checks anchor count against the model's output


def test_astronaut_face_box_and_keypoints(astronaut_rgb, model_pool):
    found = model_pool.load(FaceDetector, SHORT_RANGE.model).get(astronaut_rgb)
    assert len(found) == 1
    det = found[0]
    x0, y0, x1, y1 = det.box
    assert 160 < x0 < 200 and 60 < y0 < 100 and 250 < x1 < 290 and 150 < y1 < 195 and det.score > 0.8
    right_eye, left_eye, nose, mouth = det.keypoints[:4]
    assert right_eye[0] < left_eye[0]  # the subject's right eye is on the image's left
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]


def test_landmarks_are_sane_and_survive_head_roll(astronaut_rgb, model_pool):
    marker = model_pool.load(FaceLandmarker)
    det = model_pool.load(FaceDetector, SHORT_RANGE.model).get(astronaut_rgb)[0]
    pts, presence = marker.get(astronaut_rgb, roi_from_detection(det))
    pts, presence = marker.get(astronaut_rgb, roi_from_landmarks(pts))
    assert pts.shape == (468, 3) and presence > 0.9
    x0, y0, x1, y1 = det.box
    inside = (pts[:, 0] > x0 - 30) & (pts[:, 0] < x1 + 30) & (pts[:, 1] > y0 - 40) & (pts[:, 1] < y1 + 30)
    assert inside.all()
    assert pts[33, 1] < pts[1, 1] < pts[13, 1] < pts[152, 1]  # eye above nose tip above lips above chin
    assert pts[33, 0] < pts[263, 0]

    # roll the photo 30 degrees: the rotation-aligned crop must find the same landmarks
    centre = (256.0, 256.0)
    m = cv2.getRotationMatrix2D(centre, 30, 1.0)
    rolled = cv2.warpAffine(astronaut_rgb, m, (512, 512), borderMode=cv2.BORDER_REPLICATE)
    det_r = model_pool.load(FaceDetector, SHORT_RANGE.model).get(rolled)[0]
    pr, _ = marker.get(rolled, roi_from_detection(det_r))
    pr, presence_r = marker.get(rolled, roi_from_landmarks(pr))
    expected = pts[:, :2] @ m[:, :2].T + m[:, 2]
    inter_ocular = np.linalg.norm(pts[33, :2] - pts[263, :2])
    nme = np.linalg.norm(pr[:, :2] - expected, axis=1).mean() / inter_ocular
    assert presence_r > 0.9 and nme < 0.05, nme


def test_several_faces_are_tracked(t1, model_pool):
    assert len(model_pool.load(FaceDetector, FULL_RANGE.model).get(t1)) >= 5
    tracker = FaceTracker(model_pool, max_faces=6)
    faces = tracker.process(t1)
    assert len(faces) >= 5
    assert len({f.track_id for f in faces}) == len(faces)
    boxes = np.array([f.box for f in faces])
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    dist = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(len(faces)) * 1e9
    assert dist.min() > 50  # distinct faces, not one face tracked twice


def test_detector_runs_only_when_lost_or_every_n_frames(astronaut_rgb, model_pool):
    frame = _frame_720(astronaut_rgb)
    tracker = FaceTracker(model_pool, detect_every=15)
    ids = {tracker.process(frame, i / 30)[0].track_id for i in range(30)}
    assert tracker.stats["detect_runs"] == 2 and ids == {1}  # frames 0 and 15; one continuous track
    assert tracker.process(np.full_like(frame, 90), 1.0) == []  # face gone: lost
    runs = tracker.stats["detect_runs"]
    faces = tracker.process(frame, 1.1)
    assert tracker.stats["detect_runs"] == runs + 1 and faces and faces[0].detected


def test_still_face_jitter_after_smoothing_is_below_half_a_pixel(astronaut_rgb, model_pool):
    """Target: <= 0.5 px RMS at 720p with sensor noise (sigma 4 of 255) on the same frame."""
    from facefusion_obs.bench.faces import landmark_jitter

    frame = _frame_720(astronaut_rgb, scale=1.4)
    smoothed = landmark_jitter(model_pool, frame, 60, sigma=4.0, smoothing=True)
    raw = landmark_jitter(model_pool, frame, 60, sigma=4.0, smoothing=False)
    print(f"jitter raw {raw:.3f} px RMS, smoothed {smoothed:.3f} px RMS")
    assert smoothed <= 0.5
    assert smoothed < raw


def test_one_euro_calms_noise_but_follows_motion():
    rng = np.random.default_rng(0)
    f = OneEuroFilter()
    # landmark noise on a still face is a few tenths of a pixel (see the jitter test's raw figure)
    still = [f.filter(np.array([[100.0, 100.0]]) + rng.normal(0, 0.3, (1, 2)), i / 30, 200.0)
             for i in range(120)]
    assert np.std(np.array(still[60:])[:, 0, 0]) < 0.5 * 0.3
    f.reset()
    lags = []
    for i in range(60):  # 6 px per frame = 180 px/s, a brisk head movement
        true = np.array([[100.0 + 6 * i, 100.0]])
        lags.append(float(np.abs(f.filter(true, i / 30, 200.0) - true)[0, 0]))
    assert max(lags[20:]) < 3.0  # under half a frame of motion behind


def test_topology_from_the_wheel_keeps_mouth_open_and_closes_eyes(model_pool):
    topo = model_pool.load(MeshTopology)
    assert topo.triangles.shape[1] == 3 and len(topo.triangles) > 852
    assert len(topo.face_oval) == 36 and 13 in topo.inner_mouth and 14 in topo.inner_mouth
    used = {tuple(sorted(t)) for t in topo.triangles.tolist()}
    assert (13, 14, 82) not in used  # nothing spans the mouth opening
    eye = set(topo.eyes[0].tolist())
    assert any(set(t) <= eye for t in topo.triangles.tolist())  # the eye opening is filled
    assert topo.ring[topo.face_oval].max() == 0 and topo.ring[1] >= 4
