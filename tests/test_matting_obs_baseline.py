"""The benchmark's NumPy re-implementation of OBS's Chroma Key v2, checked against its own maths by hand,
plus a smoke run of ``facefusion-obs bench matting --quick``."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from facefusion_obs.bench import obs_chroma
from facefusion_obs.bench.obs_chroma import ObsSettings


def test_key_chroma_of_the_presets() -> None:
    # green 0x00FF00 is (0, 1, 0) linear too: cb = -.338572 + .501961, cr = -.398942 + .501961
    np.testing.assert_allclose(obs_chroma.key_chroma("green"), [0.163389, 0.103019], atol=1e-6)
    # blue 0xFF9900 is RGB (0, 153, 255); OBS linearises it first: .6 -> ((.6 + .055) / 1.055) ** 2.4
    g = ((0.6 + 0.055) / 1.055) ** 2.4
    expected = [-0.338572 * g + 0.439216 + 0.501961, -0.398942 * g - 0.040274 + 0.501961]
    np.testing.assert_allclose(obs_chroma.key_chroma("blue"), expected, atol=1e-6)


def test_uniform_frame_distance_is_the_pixels_own() -> None:
    rgb = np.full((5, 6, 3), (120, 60, 30), np.uint8)
    c = rgb[0, 0] / 255.0
    cb = c @ np.array([-0.100644, -0.338572, 0.439216]) + 0.501961
    cr = c @ np.array([0.439216, -0.398942, -0.040274]) + 0.501961
    key = obs_chroma.key_chroma("green")
    expected = np.hypot(cb - key[0], cr - key[1])
    np.testing.assert_allclose(obs_chroma.chroma_distance(rgb, "green"), expected, atol=1e-5)


def test_box_filter_weights_each_neighbour_one_ninth() -> None:
    """An impulse of key colour in a grey frame: centre and each of the 8 neighbours see 1/9 of it
    (half of one bilinear tap, doubled), pixels two away see nothing."""
    rgb = np.full((7, 7, 3), 128, np.uint8)
    rgb[3, 3] = (0, 255, 0)
    dist = obs_chroma.chroma_distance(rgb, "green")
    grey = obs_chroma.chroma_distance(np.full((7, 7, 3), 128, np.uint8), "green")[0, 0]
    drop = grey - dist
    assert drop[3, 3] == pytest.approx(grey / 9, abs=1e-5)  # the centre's own term is exactly 0
    assert drop[1, 3] == pytest.approx(0.0, abs=1e-6) and drop[3, 5] == pytest.approx(0.0, abs=1e-6)
    neighbours = drop[2:5, 2:5].copy()
    neighbours[1, 1] = 0
    # every neighbour lies under exactly one tap, mixed 50:50 in linear light with grey
    assert (neighbours[neighbours > 0] > 0).sum() == 8
    np.testing.assert_allclose(neighbours[neighbours > 0], neighbours[0, 0], rtol=1e-5)


def test_alpha_and_spill_formulas() -> None:
    rgb = np.zeros((1, 3, 3), np.uint8)
    dist = np.array([[0.40, 0.44, 0.60]], np.float32)
    _colour, alpha = obs_chroma.apply(rgb, dist, ObsSettings("green", 400, 80, 100))
    # saturate((d - .4) / .08) ** 1.5
    np.testing.assert_allclose(alpha[0], [0.0, 0.5 ** 1.5, 1.0], atol=1e-6)
    grey_green = np.full((1, 1, 3), (60, 200, 60), np.uint8)
    out, _ = obs_chroma.apply(grey_green, np.array([[0.4]], np.float32), ObsSettings("green", 400, 80, 100))
    assert np.ptp(out[0, 0]) < 1e-5  # spill 0 at the threshold: fully desaturated (to its luma)


def test_bench_quick_runs_and_reports(tmp_path, capsys, embedded_models) -> None:
    from facefusion_obs.bench import matting

    assert matting.run(argparse.Namespace(quick=True, out=str(tmp_path))) == 0
    report = capsys.readouterr().out
    for needle in ("ours chroma", "ours chroma+person", "OBS chroma key (tuned)", "dtSSD", "frames/s"):
        assert needle in report
    sheet = tmp_path / "matting_contact_sheet.png"
    assert sheet.is_file() and sheet.stat().st_size < 300 * 1024
