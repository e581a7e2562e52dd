"""The "AI face swap" badge: where and when its pixels are in the output.

Unit level on synthetic frames (exact geometry, untouched pixels elsewhere), then through the real
frame pipeline with the real MediaPipe models: a swapped astronaut gets the badge, a frame with no
face does not.
"""

from __future__ import annotations

import numpy as np
import pytest

from facefusion_obs.config import LABEL_CORNERS, OptionError, default_options, validate_options
from facefusion_obs.pipeline.label import DEFAULT_TEXT, MAX_CHARS, PLATE_RGB, draw_label, label_text, render_badge

W, H = 640, 360


def _frame(alpha: int = 0) -> np.ndarray:
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
    frame[..., 3] = alpha
    return frame


def _options(**changes) -> dict:
    return validate_options({**default_options(), **changes})


@pytest.mark.parametrize("corner", LABEL_CORNERS)
def test_the_badge_sits_in_the_chosen_corner_and_nothing_else_changes(corner):
    frame = _frame()
    before = frame.copy()
    draw_label(frame, _options(ai_label_corner=corner), swapped=True)
    changed = np.any(frame != before, axis=2)
    ys, xs = np.nonzero(changed)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    left, top = corner.endswith("left"), corner.startswith("top")
    margin = (x0 if left else W - x1), (y0 if top else H - y1)
    assert min(margin) >= 2 and max(margin) <= 0.05 * H, f"hugs the {corner} corner: margins {margin}"
    assert x1 - x0 < W / 2 and y1 - y0 < H / 4, "small"
    badge = render_badge(DEFAULT_TEXT, W, H, corner, 0.06)
    assert badge is not None and (x0, y0, x1, y1) == badge.box
    inside = badge.coverage >= 1.0
    region = frame[y0:y1, x0:x1]
    assert np.all(region[..., 3][inside] == 255), "opaque under the badge, over a transparent matte"
    plate = np.all(region[..., :3] == PLATE_RGB, axis=2)
    assert plate.mean() > 0.5, "a solid plate"
    assert (region[..., :3].min(axis=2) > 200).sum() > 40, "white letters on it"
    assert np.array_equal(frame[~changed], before[~changed])


def test_the_badge_is_sized_by_the_frame_height():
    for height, width in ((360, 640), (720, 1280), (1080, 1920)):
        badge = render_badge(DEFAULT_TEXT, width, height, "bottom-right", 0.06)
        assert badge is not None
        assert badge.coverage.shape[0] == round(0.06 * height)
    small = render_badge(DEFAULT_TEXT, 1280, 720, "top-left", 0.03).coverage.shape
    large = render_badge(DEFAULT_TEXT, 1280, 720, "top-left", 0.12).coverage.shape
    assert abs(large[0] - 4 * small[0]) <= 2 and large[1] > 3 * small[1]


def test_no_badge_unless_a_face_is_swapped_and_the_option_is_on():
    frame = _frame(alpha=255)
    before = frame.copy()
    draw_label(frame, _options(), swapped=False)
    assert np.array_equal(frame, before)
    draw_label(frame, _options(ai_label=False), swapped=True)
    assert np.array_equal(frame, before)


def test_the_text_is_clean_bounded_and_never_empty():
    assert label_text("  ") == DEFAULT_TEXT
    assert label_text("Deepfake – KI") == "Deepfake ? KI"
    assert len(label_text("x" * 300)) == MAX_CHARS
    long = render_badge("A very long disclosure text, " * 3, 192, 144, "bottom-left", 0.06)
    assert long is not None and long.box[2] <= 192 - 2, "a long text shrinks to fit a narrow frame"
    assert render_badge(DEFAULT_TEXT, 16, 12, "top-left", 0.06) is None, "no room: no badge, no error"


def test_the_label_options_are_in_the_one_table():
    options = default_options()
    assert options["ai_label"] is True and options["ai_label_text"] == DEFAULT_TEXT
    assert options["ai_label_corner"] in LABEL_CORNERS and 0 < options["ai_label_size"] < 0.2
    with pytest.raises(OptionError, match="ai_label_corner"):
        validate_options({"ai_label_corner": "middle"})
    with pytest.raises(OptionError, match="ai_label_size"):
        validate_options({"ai_label_size": 0.9})


def test_the_pipeline_labels_a_swapped_face_and_only_then(model_pool, astronaut_rgb, tmp_path, monkeypatch):
    from facefusion_obs.bench.faces import astronaut_preset
    from facefusion_obs.pipeline.frame import FramePipeline

    monkeypatch.setenv("FACEFUSION_OBS_PRESETS", str(tmp_path / "presets"))
    preset = astronaut_preset(tmp_path)
    face = np.ascontiguousarray(np.dstack([astronaut_rgb[..., ::-1], np.full((512, 512), 255, np.uint8)]))
    blank = np.full_like(face, 128)
    corner = "top-left"
    badge = render_badge(DEFAULT_TEXT, 512, 512, corner, 0.06)
    x0, y0, x1, y1 = badge.box
    inside = badge.coverage >= 1.0
    pipeline = FramePipeline({"preset": preset, "matting": "off", "ai_label_corner": corner}, model_pool)
    try:
        for i in range(3):  # frame times, not the wall clock: the tracking is reproducible
            out = pipeline.process(face, t=i / 30)
        assert pipeline.face_swapped
        assert np.all(out[y0:y1, x0:x1, 3][inside] == 255)
        assert (out[y0:y1, x0:x1, :3].min(axis=2) > 200).sum() > 40, "the text is on the plate"
        assert (np.all(out[y0:y1, x0:x1, :3] == PLATE_RGB, axis=2)).mean() > 0.5
        labelled = out.copy()
        for i in range(3, 6):
            out = pipeline.process(blank, t=i / 30)
        assert not pipeline.face_swapped
        assert np.array_equal(out[y0:y1, x0:x1, :3], blank[y0:y1, x0:x1, 2::-1]), "no face, no badge"
        pipeline.configure({"ai_label": False})
        for i in range(6, 8):
            out = pipeline.process(face, t=i / 30)
        assert pipeline.face_swapped
        assert not np.array_equal(out[y0:y1, x0:x1], labelled[y0:y1, x0:x1]), "label off: the picture itself"
        assert (np.all(out[y0:y1, x0:x1, :3] == PLATE_RGB, axis=2)).mean() < 0.05
    finally:
        pipeline.close()


def test_a_stream_renders_its_badge_once_and_again_when_the_options_change():
    cache: dict = {}
    first, second = np.zeros((H, W, 4), np.uint8), np.zeros((H, W, 4), np.uint8)
    draw_label(first, _options(), swapped=True, cache=cache)
    (badge,) = cache.values()
    draw_label(second, _options(), swapped=True, cache=cache)
    assert np.array_equal(first, second) and next(iter(cache.values())) is badge
    draw_label(second, _options(ai_label_corner="top-left"), swapped=True, cache=cache)
    assert len(cache) == 1 and next(iter(cache.values())) is not badge
