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
