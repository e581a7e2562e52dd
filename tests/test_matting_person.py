"""``chroma+person`` and ``person`` with the real MediaPipe selfie model (LiteRT) on a real photo.

The astronaut photograph is cut out with the selfie model itself, composited onto a green screen,
and then dressed in a desaturated green top: a chroma key alone must lose the top, the person prior
must keep it. A grey studio wall beside the screen must go in ``chroma+person`` only.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facefusion_obs.matting import build_matter
from facefusion_obs.matting.segmentation import SelfieSegmenter


@pytest.fixture(scope="module")
def scene(model_pool, astronaut_rgb):
    return make_scene(astronaut_rgb, model_pool.load(SelfieSegmenter))


def make_scene(astronaut_rgb: np.ndarray, segmenter: SelfieSegmenter) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame, person mask, green-top mask) of the composited test scene."""
    photo = cv2.resize(astronaut_rgb, (384, 384), interpolation=cv2.INTER_AREA)
    prob = segmenter.get(photo)
    person = cv2.resize(prob, (384, 384)) > 0.5
    person = cv2.erode(person.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    h, w = 384, 640
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = (40, 175, 70)
    frame[:, :60] = (128, 124, 120)  # a grey wall beyond the left edge of the screen
    left = 170
    region = frame[:, left:left + 384]
    region[person] = photo[person]
    # a desaturated green top on the lower body
    top = np.zeros((h, w), bool)
    top[300:, left:left + 200] = person[300:, :200]  # the suit, left of the helmet she holds
    lum = frame[top].astype(np.float32) @ np.array([0.3, 0.55, 0.15], np.float32)
    frame[top] = np.clip(np.stack([0.4 * lum + 10, 0.8 * lum + 60, 0.45 * lum + 15], -1), 0, 255)
    body = np.zeros((h, w), bool)
    body[:, left:left + 384] = person
    return frame, body, top


def test_segmenter_finds_the_person(scene, model_pool) -> None:
    frame, body, _ = scene
    prob = model_pool.load(SelfieSegmenter).get(frame)
    assert prob.shape == (256, 256) and prob.dtype == np.float32
    small = cv2.resize(body.astype(np.uint8), (256, 256), interpolation=cv2.INTER_NEAREST).astype(bool)
    assert prob[small].mean() > 0.8 and prob[~small].mean() < 0.15


def test_chroma_alone_loses_the_green_top(scene) -> None:
    frame, _, top = scene
    _, alpha = build_matter({"matting": "chroma"}).process(frame)
    assert alpha[top].mean() < 0.6 * 255
    assert alpha[:, :50].mean() > 0.9 * 255  # and keeps the wall: it is not green


def test_chroma_person_keeps_the_green_top_and_drops_the_wall(scene, model_pool) -> None:
    frame, body, top = scene
    rgb, alpha = build_matter({"matting": "chroma+person"}, model_pool).process(frame)
    # the prior is trusted from a few of its cells inside the outline (the key owns the edge itself)
    inner = cv2.erode(top.astype(np.uint8), np.ones((31, 31), np.uint8)).astype(bool)
    assert inner.sum() > 5000
    assert np.percentile(alpha[inner], 5) >= 240, "green clothing on the person stays opaque"
    assert alpha[:, :50].max() <= 10, "the wall beyond the screen is removed"
    screen = ~cv2.dilate(body.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    screen[:, :60] = False
    assert np.percentile(alpha[screen], 99) <= 10
    # the green top keeps its colour (despill spares what the prior saved)
    assert np.abs(rgb[inner].astype(int) - frame[inner].astype(int)).mean() < 6


def test_person_mode_without_a_screen(model_pool, astronaut_rgb) -> None:
    photo = np.ascontiguousarray(astronaut_rgb)
    rgb, alpha = build_matter({"matting": "person"}, model_pool).process(photo)
    assert rgb is photo  # no screen, so nothing to despill
    face = alpha[120:200, 180:270]
    assert face.mean() > 0.9 * 255
    assert alpha[:60, 420:].mean() < 0.1 * 255  # the backdrop behind the shuttle model


def test_a_dark_prop_held_out_stays_while_the_wall_goes(scene, model_pool) -> None:
    """A black helmet held out over the screen, far beyond the person's outline, is "not person" to
    the selfie model, as the wall is; the wall reaches the frame's edge, the helmet is surrounded by
    screen. The prior must cut only the wall, and the key must not read the dark helmet as screen."""
    frame, body, _ = scene
    frame = frame.copy()
    h, w = frame.shape[:2]
    prop = np.zeros((h, w), np.uint8)
    cv2.ellipse(prop, (592, 70), (32, 28), 0, 0, 360, 1, -1)
    prop = prop.astype(bool)
    frame[prop] = (14, 14, 16)
    visor = prop & (np.abs(np.arange(h)[:, None] - 74) < 8) & (np.abs(np.arange(w)[None, :] - 592) < 22)
    frame[visor] = (10, 52, 22)  # the visor mirrors the screen, dimly
    matter = build_matter({"matting": "chroma+person"}, model_pool)
    for _ in range(2):
        _, alpha = matter.process(frame)
    core = cv2.erode(prop.astype(np.uint8), np.ones((13, 13), np.uint8)).astype(bool)
    assert alpha[core].min() >= 245, "the held prop is kept"
    assert alpha[:, :50].max() <= 10, "the wall beyond the screen is removed"
    screen = ~cv2.dilate((body | prop).astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    screen[:, :60] = False
    assert np.percentile(alpha[screen], 99) <= 10


def test_off_screen_tracing_is_the_same_without_opencv() -> None:
    """The labelling pass (numpy + OpenCV) and the geodesic growth any array module runs find the
    same region: what is joined to the border, never what a gap of screen separates from it."""
    from facefusion_obs.matting.person import _reached_from_border

    rng = np.random.default_rng(0)
    free = rng.random((40, 70)) < 0.55
    free[:, 30] = False  # a wall of screen: nothing right of it is reached through it from the left
    fast, slow = _reached_from_border(free), _reached_from_border(free, fast=False)
    assert np.array_equal(fast, slow) and fast.any() and not fast[~free].any()
    island = np.zeros((20, 20), bool)
    island[5:15, 5:15] = True  # a prop in the middle of the screen
    assert not _reached_from_border(island).any() and not _reached_from_border(island, fast=False).any()
