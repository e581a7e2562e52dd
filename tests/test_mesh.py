"""The mesh swap engine on real photos: the preset is made from insightface's t1.jpg, the stream is
skimage's astronaut (and the reverse), with the real MediaPipe models."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from facefusion_obs.config import validate_options
from facefusion_obs.demo.photos import SAMPLE_CONSENT
from facefusion_obs.faces import FaceLandmarker, roi_from_detection, roi_from_landmarks
from facefusion_obs.faces.topology import MeshTopology
from facefusion_obs.presets import PresetStore
from facefusion_obs.swap import build_swapper
from facefusion_obs.swap.mesh import MeshSwapper, SourceFace, match_colour, rasterize, swap_face


@pytest.fixture
def preset_t1(tmp_path, monkeypatch, sample_images_dir, embedded_models):
    """A preset of the man in the middle of t1.jpg (face 1 by size), in a private preset store."""
    monkeypatch.setenv("FACEFUSION_OBS_PRESETS", str(tmp_path / "presets"))
    PresetStore().add("david", [sample_images_dir / "t1.jpg"], face_index=1, consent=SAMPLE_CONSENT)
    return "david"


def _frame(astronaut_rgb):
    frame = np.full((720, 1280, 3), 90, np.uint8)
    frame[104:616, 384:896] = astronaut_rgb
    return frame


def test_rasterize_covers_exactly_what_opencv_fills():
    rng = np.random.default_rng(3)
    verts = rng.uniform(2, 60, (30, 2))
    tris = np.array([[i, (i + 7) % 30, (i + 13) % 30] for i in range(30)])
    idx, tid, l1, l2 = rasterize(np, verts, tris, 64, 64)
    for t in range(0, 30, 5):  # compare interiors; edges differ by OpenCV's fill convention
        mine = np.zeros(64 * 64, bool)
        mine[idx[tid == t]] = True
        ref = np.zeros((64, 64), np.uint8)
        cv2.fillConvexPoly(ref, np.round(verts[tris[t]] * 16).astype(np.int32), 1, cv2.LINE_8, shift=4)
        inner = cv2.erode(ref, np.ones((3, 3), np.uint8)).ravel().astype(bool)
        outer = cv2.dilate(ref, np.ones((3, 3), np.uint8)).ravel().astype(bool)
        assert mine[inner].all() and not mine[~outer].any()
    # barycentric weights reproduce the pixel position
    pts = verts[tris[tid]]
    pos = pts[:, 0] * (1 - l1 - l2)[:, None] + pts[:, 1] * l1[:, None] + pts[:, 2] * l2[:, None]
    assert np.allclose(pos, np.stack([idx % 64, idx // 64], 1), atol=1e-3)


def test_swap_changes_the_face_only_and_keeps_pose_and_expression(preset_t1, astronaut_rgb, model_pool):
    frame = _frame(astronaut_rgb)
    swapper = MeshSwapper(validate_options({"preset": preset_t1}), model_pool)
    target = None
    for i in range(3):
        out, mask = swapper.process(frame, i / 30)
        target = swapper.tracker.tracks[0].last.landmarks
    assert mask is not None and mask.shape == frame.shape[:2] and mask.dtype == np.float32
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    face = mask > 0.9
    outside = mask == 0
    assert face.sum() > 3000
    assert np.abs(out[face].astype(int) - frame[face]).mean() > 8  # the face changed
    assert np.array_equal(out[outside], frame[outside])  # nothing else did

    # pose and expression are the target's: landmarks found on the output match the target's
    marker = model_pool.load(FaceLandmarker)
    found, presence = marker.get(out, roi_from_landmarks(target))
    found, presence = marker.get(out, roi_from_landmarks(found))
    inter_ocular = np.linalg.norm(target[33, :2] - target[263, :2])
    nme = np.linalg.norm(found[:, :2] - target[:, :2], axis=1).mean() / inter_ocular
    print(f"normalised mean landmark error of the swapped face: {nme:.3f}")
    assert presence > 0.9 and nme < 0.08


def _tint(rgb: np.ndarray) -> np.ndarray:
    """Green over the mean of red and blue, per pixel: how green-cast a colour looks."""
    rgb = rgb.astype(np.float32)
    return rgb[..., 1] / (0.5 * (rgb[..., 0] + rgb[..., 2]) + 1.0)


def test_colour_match_takes_the_shading_locally_and_the_tone_once():
    """Target: skin lit darker on the right and green-cast on the left, as screen light bounces on
    the cheek next to it. The relit source must follow the shading, not the cast."""
    h, w = 120, 160
    skin = np.array([200.0, 150.0, 120.0], np.float32)
    detail = np.random.default_rng(5).normal(0.0, 6.0, (h, w, 1)).astype(np.float32)
    source = np.clip(skin * 0.9 + detail, 0, 255)  # evenly lit, a little darker than the target
    target = np.tile(skin, (h, w, 1))
    target[:, w // 2:] *= 0.6  # shadow on the right
    target[:, :40] += np.array([10.0, 45.0, 15.0], np.float32)  # green bounce light on the left edge
    inside = np.ones((h, w), np.float32)
    out = match_colour(np, source, target, inside, radius=8)

    left, mid, right = out[:, 8:32], out[:, 48:72], out[:, 100:150]
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    # shading is the target's, locally: the shadowed side is about 0.6 of the lit side
    assert 0.5 < (right @ luma).mean() / (mid @ luma).mean() < 0.7
    # the cast is not copied: the left edge is barely greener than the middle, far less than in the target
    target_cast = _tint(target[:, 8:32]).mean() - _tint(target[:, 48:72]).mean()
    swapped_cast = _tint(left).mean() - _tint(mid).mean()
    print(f"cast: target {target_cast:.3f}, relit {swapped_cast:.3f}")
    assert target_cast > 0.15 and abs(swapped_cast) < 0.1 * target_cast
    # the tone is the target's on average: its overall green balance is matched
    assert abs(_tint(out).mean() - _tint(target).mean()) < 0.05


def test_green_bounce_light_on_one_cheek_does_not_turn_the_swapped_cheek_green(preset_t1, astronaut_rgb, model_pool):
    frame = _frame(astronaut_rgb)
    swapper = MeshSwapper(validate_options({"preset": preset_t1}), model_pool)
    swapper.process(frame, 0.0)
    points = swapper.tracker.tracks[0].last.landmarks[:, :2]
    # screen-green light falling off across the face from its left edge, as on a green screen
    x0, x1 = points[:, 0].min(), points[:, 0].max()
    xs = np.arange(frame.shape[1], dtype=np.float32)
    falloff = np.clip(1.0 - (xs - x0) / (0.4 * (x1 - x0)), 0.0, 1.0)[None, :, None]
    lit = np.clip(frame + falloff * np.array([8.0, 60.0, 20.0], np.float32), 0, 255).astype(np.uint8)
    for i in range(1, 3):
        out, mask = swapper.process(lit, i / 30)
    face = mask > 0.9
    cols = np.nonzero(face.any(axis=0))[0]
    third = (cols.max() - cols.min()) // 3
    near, far = face.copy(), face.copy()
    near[:, cols.min() + third:] = False
    far[:, :cols.max() - third] = False
    target_cast = _tint(lit[near]).mean() - _tint(lit[far]).mean()
    swapped_cast = _tint(out[near]).mean() - _tint(out[far]).mean()
    print(f"green cast, near cheek minus far cheek: target {target_cast:.3f}, swapped {swapped_cast:.3f}")
    assert target_cast > 0.1 and swapped_cast < 0.35 * target_cast


def test_open_mouth_of_the_target_is_kept(preset_t1, astronaut_rgb, model_pool):
    """The astronaut smiles with her teeth showing: the mouth opening must stay hers."""
    frame = _frame(astronaut_rgb)
    swapper = MeshSwapper(validate_options({"preset": preset_t1}), model_pool)
    out, mask = swapper.process(frame, 0.0)
    pts = swapper.tracker.tracks[0].last.landmarks[:, :2]
    mouth = model_pool.load(MeshTopology).inner_mouth
    poly = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(poly, [np.round(pts[mouth]).astype(np.int32)], 1)
    core = cv2.erode(poly, np.ones((5, 5), np.uint8)).astype(bool)
    assert core.sum() > 50
    assert mask[core].mean() < 0.35
    assert np.abs(out[core].astype(int) - frame[core]).mean() < 12


def test_frame_without_a_face_passes_unchanged(preset_t1, model_pool):
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8), (0, 0), 5)
    swapper = MeshSwapper(validate_options({"preset": preset_t1}), model_pool)
    out, mask = swapper.process(frame)
    assert out is frame and mask is None


def test_faces_it_cannot_handle_pass_through(astronaut_rgb, embedded_models, model_pool):
    topo = model_pool.load(MeshTopology)
    rng = np.random.default_rng(1)
    src_pts = rng.uniform(10, 200, (468, 2))
    source = SourceFace(astronaut_rgb, src_pts)
    frame = _frame(astronaut_rgb)
    mask = np.zeros(frame.shape[:2], np.float32)
    tiny = src_pts * 0.1 + 300  # a 19-px face
    before = frame.copy()
    result = swap_face(frame, tiny, source, topo.triangles, mask)
    assert not result.swapped and "too small" in result.reason
    folded = src_pts.copy()
    folded[:, 0] = 600 - folded[:, 0]  # mirrored: every triangle folds over
    result = swap_face(frame, folded + np.array([300.0, 200.0]), source, topo.triangles, mask)
    assert not result.swapped and "turned too far" in result.reason
    assert np.array_equal(frame, before) and mask.max() == 0


def test_no_preset_means_pass_through_and_inswapper_falls_back_to_mesh(caplog, tmp_path, monkeypatch,
                                                                      astronaut_rgb, embedded_models):
    monkeypatch.setenv("FACEFUSION_OBS_MODELS", str(tmp_path / "empty-models"))
    (tmp_path / "empty-models").mkdir()
    # the mesh engine needs its embedded files; copy them into the otherwise empty models folder
    for path in embedded_models.values():
        (tmp_path / "empty-models" / path.name).write_bytes(path.read_bytes())
    from facefusion_obs.runtime.pool import ModelPool

    stage = build_swapper(validate_options({}), ModelPool(models_dir=tmp_path / "empty-models"))
    assert stage.engine.engine == "mesh"
    out, mask = stage.process(astronaut_rgb)
    assert out is astronaut_rgb and mask is None
    with caplog.at_level(logging.WARNING):
        stage.configure(validate_options({"engine": "inswapper"}))
    assert stage.engine.engine == "mesh"
    assert "inswapper" in caplog.text and "mesh" in caplog.text


def test_source_may_be_an_image_path(sample_images_dir, astronaut_rgb, embedded_models, model_pool):
    swapper = MeshSwapper(validate_options({"preset": str(sample_images_dir / "Tom_Hanks_54745.png")}), model_pool)
    _out, mask = swapper.process(_frame(astronaut_rgb), 0.0)
    assert mask is not None and mask.max() > 0.9


def _turn(points: np.ndarray, degrees: float) -> np.ndarray:
    """468 3-D landmarks (x, y, depth) turned about the face's vertical axis (orthographic view)."""
    centre = points.mean(axis=0)
    rel, a = points - centre, np.radians(degrees)
    x = centre[0] + rel[:, 0] * np.cos(a) + rel[:, 2] * np.sin(a)
    depth = centre[2] - rel[:, 0] * np.sin(a) + rel[:, 2] * np.cos(a)
    return np.stack([x, points[:, 1], depth], axis=1)


def _enclosed_holes(mask: np.ndarray) -> int:
    """Pixels of the blend mask's holes: unblended pixels that the blended face surrounds."""
    solid = (mask > 0.5).astype(np.uint8)
    outside = solid.copy()
    cv2.floodFill(outside, None, (0, 0), 1)
    return int((outside == 0).sum())


@pytest.mark.parametrize("yaw", [-45, -30, 30, 45])
def test_head_turned_up_to_45_degrees_swaps_without_tearing(preset_t1, astronaut_rgb, yaw, model_pool):
    """The astronaut's real 468 landmarks, turned in 3D by ``yaw`` about the face's vertical axis.

    Triangles that turn away are dropped, never drawn folded; the rest must still cover the face with
    no more holes than the same face straight on (the open mouth is one, by design).
    """
    frame = _frame(astronaut_rgb)
    swapper = MeshSwapper(validate_options({"preset": preset_t1}), model_pool)
    # the landmark model's answer on the detection's crop: this test is about the mesh, so its input
    # stays fixed whatever the tracker does to refine a new face
    detection = swapper.tracker.detect(frame)[0]
    points, _ = swapper.tracker.landmarker.get(frame, roi_from_detection(detection))
    source, weights = swapper.source_face(np)
    masks = {}
    for angle in (0, yaw):
        mask = np.zeros(frame.shape[:2], np.float32)
        out = frame.copy()
        result = swap_face(out, _turn(points, angle), source, swapper.topology.triangles, mask, weights)
        assert result.swapped, result.reason
        masks[angle] = mask
    area = (masks[yaw] > 0.5).sum()
    assert area > 0.5 * (masks[0] > 0.5).sum() * np.cos(np.radians(yaw))
    assert _enclosed_holes(masks[yaw]) <= _enclosed_holes(masks[0]) + 0.005 * area, "torn"


def test_head_turned_too_far_passes_through(preset_t1, astronaut_rgb, model_pool):
    frame = _frame(astronaut_rgb)
    swapper = MeshSwapper(validate_options({"preset": preset_t1}), model_pool)
    swapper.process(frame, 0.0)
    points = swapper.tracker.tracks[0].last.landmarks.astype(np.float64)
    turned = _turn(points, 80)
    source, weights = swapper.source_face(np)
    out = frame.copy()
    result = swap_face(out, turned, source, swapper.topology.triangles, np.zeros(frame.shape[:2], np.float32), weights)
    assert not result.swapped and "turned too far" in result.reason
    assert np.array_equal(out, frame)
