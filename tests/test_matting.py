"""Matting (chroma, off) on small synthetic frames whose alpha is known by construction."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from facefusion_obs.bench.greenscreen import greenscreen_image, make_sequence
from facefusion_obs.config import OptionError
from facefusion_obs.matting import build_matter
from facefusion_obs.matting.keycolor import estimate_key_color, resolve_key_color
from facefusion_obs.runtime import imageops as ops


def _regions(truth: np.ndarray, margin: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Pixels safely screen and safely subject (the truth eroded by ``margin``)."""
    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    screen = cv2.erode((truth == 0).astype(np.uint8), kernel).astype(bool)
    subject = cv2.erode((truth >= 1).astype(np.uint8), kernel).astype(bool)
    return screen, subject


@pytest.fixture(scope="module")
def green() -> tuple[np.ndarray, np.ndarray]:
    return greenscreen_image(180, 320, key="green", seed=3)


def _plain_subject(subject: np.ndarray, rgb: np.ndarray, primary: int) -> np.ndarray:
    """Subject pixels not themselves of the key colour (the astronaut's badge is blue: a blue screen
    rightly keys it; that case belongs to the person prior)."""
    keyish = cv2.dilate((_excess(rgb, primary) >= 10).astype(np.uint8), np.ones((9, 9), np.uint8))
    return subject & ~keyish.astype(bool)


def _excess(rgb: np.ndarray, primary: int) -> np.ndarray:
    f = rgb.astype(np.int32)
    others = [c for c in range(3) if c != primary]
    return np.clip(f[..., primary] - np.maximum(f[..., others[0]], f[..., others[1]]), 0, None)


# ------------------------------------------------------------------------------------------- modes
def test_off_returns_the_frame_and_an_opaque_alpha(green) -> None:
    rgb, _ = green
    out, alpha = build_matter({"matting": "off"}).process(rgb)
    assert out is rgb
    assert alpha.dtype == np.uint8 and alpha.shape == rgb.shape[:2] and (alpha == 255).all()


@pytest.mark.parametrize("key", ["green", "blue"])
def test_chroma_keys_screen_to_zero_and_subject_to_one(key: str) -> None:
    rgb, truth = greenscreen_image(180, 320, key=key, seed=3)
    out, alpha = build_matter({"matting": "chroma", "key_color": key}).process(rgb)
    screen, subject = _regions(truth)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    assert np.percentile(alpha[screen], 99) <= 10, "screen must be transparent"
    assert np.percentile(alpha[screen], 90) == 0
    plain = _plain_subject(subject, rgb, 2 if key == "blue" else 1)
    assert np.percentile(alpha[plain], 1) >= 240, "subject must be opaque"
    assert np.abs(alpha / 255.0 - truth).mean() < 0.02


def test_chroma_despills_edges_and_keeps_skin(green) -> None:
    rgb, truth = green
    out, _alpha = build_matter({"matting": "chroma", "key_color": "green"}).process(rgb)
    edge = (truth > 0.3) & (truth < 1.0)
    before, after = _excess(rgb, 1)[edge].mean(), _excess(out, 1)[edge].mean()
    assert before > 20 and after < 0.05 * before, (before, after)
    # skin (red above green) is untouched by despill: the face's colours come through unchanged
    skin = (truth >= 1) & (rgb[..., 0].astype(int) > rgb[..., 1].astype(int) + 10)
    assert skin.sum() > 200
    assert np.array_equal(out[skin], rgb[skin])


def test_despill_strength_zero_keeps_colour(green) -> None:
    rgb, _ = green
    out, _ = build_matter({"matting": "chroma", "despill": 0.0}).process(rgb)
    assert np.array_equal(out, rgb)


def test_custom_hex_key_colour_keys_the_screen() -> None:
    rgb, truth = greenscreen_image(180, 320, key="green", seed=3)
    screen, subject = _regions(truth)
    picked = "#{:02X}{:02X}{:02X}".format(*np.median(rgb[screen], axis=0).astype(int))
    _, alpha = build_matter({"matting": "chroma", "key_color": picked}).process(rgb)
    assert np.percentile(alpha[screen], 99) <= 10
    assert np.percentile(alpha[_plain_subject(subject, rgb, 1)], 1) >= 240


def test_auto_key_colour_finds_a_blue_screen() -> None:
    rgb, truth = greenscreen_image(180, 320, key="blue", seed=3)
    assert estimate_key_color(rgb).primary == 2
    _, alpha = build_matter({"matting": "chroma", "key_color": "auto"}).process(rgb)
    screen, subject = _regions(truth)
    assert np.percentile(alpha[screen], 99) <= 10
    assert np.percentile(alpha[_plain_subject(subject, rgb, 2)], 1) >= 240


@pytest.mark.parametrize("value", ["#808080", "#FFFF00", "#101410"])
def test_unkeyable_colour_is_refused_naming_the_field(value: str) -> None:
    with pytest.raises(OptionError, match=r"key_color.*" + value):
        build_matter({"matting": "chroma", "key_color": value})
    assert resolve_key_color("#20C040").primary == 1


def test_clean_plate_keys_a_vignetted_screen_evenly() -> None:
    """Corners at 45% of the centre's light: one global threshold fails, the plate does not."""
    h, w = 144, 256
    y, x = np.mgrid[0:h, 0:w]
    light = 1.0 - 0.55 * (((x - w / 2) / (w / 2)) ** 2 + ((y - h / 2) / (h / 2)) ** 2) / 2
    screen = (light[..., None] * np.array([40, 190, 70])).astype(np.float32)
    truth = np.zeros((h, w), np.float32)
    truth[40:110, 100:160] = 1.0
    frame = np.where(truth[..., None] > 0, np.array([190, 140, 120], np.float32), screen)
    frame = np.clip(frame + np.random.default_rng(0).normal(0, 2, frame.shape), 0, 255).astype(np.uint8)
    _, alpha = build_matter({"matting": "chroma"}).process(frame)
    bg, fg = _regions(truth, 3)
    assert alpha[bg].max() <= 8, "dark corners must key as cleanly as the bright centre"
    assert alpha[fg].min() >= 250


def test_opaque_hook_forces_regions_solid(green) -> None:
    rgb, truth = green
    opaque = np.zeros(truth.shape, np.float32)
    opaque[:20, :20] = 1.0  # a corner of pure screen
    _, alpha = build_matter({"matting": "chroma"}).process(rgb, opaque=opaque)
    assert (alpha[:20, :20] == 255).all()
    assert alpha[30:40, :20].max() <= 8


# ---------------------------------------------------------------------------------------- temporal
def test_temporal_smoothing_calms_flicker_on_still_frames() -> None:
    seq = make_sequence("green", frames=1, height=120, width=200, seed=4)
    rng = np.random.default_rng(1)
    frames = [np.clip(seq.frames[0] + rng.normal(0, 4, seq.frames[0].shape), 0, 255).astype(np.uint8)
              for _ in range(8)]

    def flicker(strength: float) -> float:
        matter = build_matter({"matting": "chroma", "temporal": strength})
        alphas = [matter.process(f)[1].astype(np.float32) for f in frames]
        return float(np.mean([np.abs(a - b).mean() for a, b in itertools.pairwise(alphas)]))

    assert flicker(0.9) < 0.7 * flicker(0.0)


def test_temporal_smoothing_does_not_lag_a_moving_edge() -> None:
    h, w = 96, 160
    frames = []
    for shift in (0, 0, 0, 12, 24):
        frame = np.zeros((h, w, 3), np.uint8)
        frame[:] = (40, 180, 70)
        frame[20:80, 40 + shift:90 + shift] = (200, 150, 120)
        frames.append(frame)
    smooth = build_matter({"matting": "chroma", "temporal": 1.0})
    for f in frames:
        _, alpha = smooth.process(f)
    _, fresh = build_matter({"matting": "chroma", "temporal": 0.0}).process(frames[-1])
    assert np.abs(alpha.astype(int) - fresh.astype(int)).max() <= 2
    assert alpha[50, 50] <= 3 and alpha[50, 100] >= 252  # the old position is gone at once


def test_reset_forgets_history(green) -> None:
    rgb, _ = green
    matter = build_matter({"matting": "chroma"})
    first = matter.process(rgb)[1]
    matter.process(np.ascontiguousarray(rgb[::-1]))
    matter.reset()
    assert np.array_equal(matter.process(rgb)[1], first)


def test_configure_applies_live_and_keeps_state_for_slider_changes(green) -> None:
    rgb, _ = green
    matter = build_matter({"matting": "chroma"})
    matter.process(rgb)
    plate = matter.plate.grid
    matter.configure({"key_softness": 0.3})
    assert matter.plate.grid is plate  # a slider move keeps the learnt plate
    matter.configure({"key_color": "blue"})
    assert matter.plate.grid is None  # a different screen starts afresh


# --------------------------------------------------------------------------- one code path, any xp
def test_pure_array_module_path_matches_the_opencv_fast_path(green, monkeypatch) -> None:
    """cupy runs the pure-xp code; with OpenCV switched off numpy runs exactly that code here."""
    rgb, _ = green
    fast = build_matter({"matting": "chroma"}).process(rgb)
    monkeypatch.setattr(ops, "_cv2_for", lambda xp: None)
    pure = build_matter({"matting": "chroma"}).process(rgb)
    assert np.array_equal(fast[0], pure[0])
    assert np.abs(fast[1].astype(int) - pure[1].astype(int)).max() <= 2


def test_box_mean_and_resize_agree_with_opencv() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((37, 53)).astype(np.float32)
    ref = cv2.boxFilter(x, -1, (7, 7), normalize=True, borderType=cv2.BORDER_REPLICATE)
    np.testing.assert_allclose(ops.box_mean_xp(x, 3), ref, atol=1e-5)
    np.testing.assert_allclose(ops.box_mean(x, 3), ref, atol=1e-6)
    small = rng.random((9, 16, 2)).astype(np.float32)
    ref_up = cv2.resize(small, (64, 36), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(ops.resize_linear_xp(small, 36, 64), ref_up, atol=1e-5)
    np.testing.assert_allclose(ops.block_mean(x[:36, :52], 4),
                               x[:36, :52].reshape(9, 4, 13, 4).mean(axis=(1, 3)), atol=1e-6)


def test_plane_conversions_and_remap_match_the_pure_array_path(monkeypatch) -> None:
    """The frame's way in and out (one fused conversion each) and the mesh warp's sampling."""
    rng = np.random.default_rng(5)
    bgra = rng.integers(0, 256, (37, 53, 4), dtype=np.uint8)
    values = (rng.random((37, 53)) * 300 - 20).astype(np.float32)
    texture = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    mx, my = (rng.random((2, 17, 19)) * [[[29.0]], [[39.0]]]).astype(np.float32)
    mask = rng.random((37, 53)) > 0.97
    rgb = ops.bgra_to_rgb(bgra)
    fast = (rgb, ops.split_planes(rgb), ops.merge_planes([*ops.split_planes(rgb), bgra[..., 3]]),
            ops.to_uint8(values), ops.remap(texture, mx, my), ops.grow(mask, 3), ops.fill_holes(values, mask))
    monkeypatch.setattr(ops, "_cv2_for", lambda xp: None)
    pure = (ops.bgra_to_rgb(bgra), ops.split_planes(rgb), ops.merge_planes([*ops.split_planes(rgb), bgra[..., 3]]),
            ops.to_uint8(values), ops.remap(texture, mx, my), ops.grow(mask, 3), ops.fill_holes(values, mask))
    assert np.array_equal(fast[0], bgra[..., 2::-1]) and np.array_equal(pure[0], fast[0])
    assert all(np.array_equal(a, b) for a, b in zip(fast[1], pure[1], strict=True))
    assert np.array_equal(fast[2], pure[2]) and np.array_equal(fast[2][..., :3], rgb)
    assert np.array_equal(fast[3], pure[3]) and fast[3].min() == 0 and fast[3].max() == 255
    assert fast[4].shape == (17, 19, 3)
    np.testing.assert_allclose(fast[4], pure[4], atol=0.1)
    assert np.array_equal(fast[5], pure[5]) and fast[5].sum() > mask.sum()
    np.testing.assert_allclose(fast[6], pure[6], rtol=1e-4, atol=1e-3)


def test_fill_holes_spreads_known_cells_into_any_hole() -> None:
    values = np.zeros((10, 12), np.float32)
    known = np.zeros((10, 12), bool)
    values[:, 0], known[:, 0] = 5.0, True
    values[:, -1], known[:, -1] = 9.0, True
    filled = ops.fill_holes(values, known)
    assert np.isfinite(filled).all()
    assert filled[:, 0].tolist() == [5.0] * 10 and filled[:, -1].tolist() == [9.0] * 10
    assert filled.min() >= 5.0 - 1e-4 and filled.max() <= 9.0 + 1e-4
    assert filled[5, 2] < filled[5, 9]  # closer to the 5s on the left, to the 9s on the right


# ------------------------------------------------------------------------- dark and saturated objects
def _blue_stage(h: int = 180, w: int = 320, seed: int = 0) -> np.ndarray:
    """A vignetted blue screen with sensor noise, float RGB 0..255 (H, W, 3)."""
    y, x = np.mgrid[0:h, 0:w]
    light = 1.0 - 0.4 * (((x - w / 2) / (w / 2)) ** 2 + ((y - h / 2) / (h / 2)) ** 2) / 2
    return light[..., None] * np.array([23.0, 64.0, 179.0])


def _shoot(stage: np.ndarray, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, 2.2, stage.shape)
    return np.clip(stage + noise, 0, 255).astype(np.uint8)


def _disc(h: int, w: int, cy: int, cx: int, r: int) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, (cx, cy), r, 1, -1)
    return mask.astype(bool)


def test_dark_objects_of_the_screens_hue_are_kept_opaque() -> None:
    """Navy (45% of the screen's key signal, the screen's own hue), dark blue and a black helmet whose
    visor mirrors the screen: per pixel each reads as "screen mixed with black", like an edge, and
    a key that takes dark for screen punches holes in them. All are solid; the screen around is not."""
    h, w = 180, 320
    stage = _blue_stage(h, w)
    navy, dark_blue, helmet = _disc(h, w, 60, 70, 28), _disc(h, w, 120, 160, 30), _disc(h, w, 60, 250, 32)
    visor = helmet & _disc(h, w, 64, 250, 18)
    stage[navy] = (20, 30, 80)
    stage[dark_blue] = (12, 22, 88)
    stage[helmet] = (9, 9, 10)
    stage[visor] = 0.3 * stage[visor] + 8  # a glossy visor: the screen, dimmed
    truth = (navy | dark_blue | helmet).astype(np.float32)
    matter = build_matter({"matting": "chroma", "key_color": "blue"})
    for t in range(3):
        _, alpha = matter.process(_shoot(stage, t))
    screen, solid = _regions(truth, 6)  # the outline's few pixels are unmixed, as any edge is
    assert alpha[solid].min() >= 245, "dark objects must not be keyed through"
    assert alpha[screen].max() <= 10
    assert np.abs(alpha / 255.0 - truth).mean() < 0.01


def test_a_badge_as_blue_as_the_screen_but_another_hue_stays() -> None:
    """A purple-blue badge on a suit matches the screen's key signal; its red channel does not."""
    h, w = 180, 320
    stage = _blue_stage(h, w)
    suit = np.zeros((h, w), bool)
    suit[40:, 110:230] = True
    badge = _disc(h, w, 100, 170, 14)
    stage[suit] = (225, 120, 60)
    stage[badge] = (110, 72, 180)
    _, alpha = build_matter({"matting": "chroma", "key_color": "blue"}).process(_shoot(stage))
    assert alpha[badge].min() >= 240


def test_thin_dark_strands_and_a_real_hole_keep_their_alpha() -> None:
    """What the dark-object rule must leave alone: a black strand one pixel wide over the screen is
    a mix (not solid), and the screen seen through a mug's handle stays transparent."""
    h, w = 180, 320
    stage = _blue_stage(h, w)
    stage[30:150, 60] = 0.5 * stage[30:150, 60]  # a black hair at 50% over the screen
    ring = _disc(h, w, 90, 220, 30) & ~_disc(h, w, 90, 220, 16)
    stage[ring] = (12, 22, 88)
    hole = _disc(h, w, 90, 220, 12)
    alpha = build_matter({"matting": "chroma", "key_color": "blue", "temporal": 0.0}).process(_shoot(stage))[1]
    strand = alpha[40:140, 60].astype(np.float32) / 255.0
    assert 0.25 < np.median(strand) < 0.8, np.median(strand)
    assert alpha[hole].max() <= 12, "the screen through the handle is screen"
    band = alpha[_regions(ring.astype(np.float32), 2)[1]]  # the mug's wall, 14 px across
    assert np.median(band) >= 245 and np.percentile(band, 5) >= 220
