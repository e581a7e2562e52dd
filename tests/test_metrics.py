"""The benchmark's matting metrics against cases small enough to work out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from facefusion_obs.bench import metrics


def test_mad_and_mse_by_hand() -> None:
    alpha = np.array([[0.0, 0.5], [1.0, 1.0]])
    truth = np.array([[0.0, 1.0], [1.0, 0.0]])
    # |d| = 0, .5, 0, 1  ->  mean .375 ;  d² = 0, .25, 0, 1  ->  mean .3125
    assert metrics.mad(alpha, truth) == pytest.approx(0.375)
    assert metrics.mse(alpha, truth) == pytest.approx(0.3125)


def test_transition_band_is_fractional_truth_grown() -> None:
    truth = np.zeros((7, 7))
    truth[3, 3] = 0.5
    band = metrics.transition_band(truth, grow=1)
    expected = np.zeros((7, 7), bool)
    expected[2:5, 2:5] = True
    assert np.array_equal(band, expected)
    assert not metrics.transition_band(np.ones((5, 5))).any()


def test_sad_sums_inside_the_mask_only() -> None:
    alpha = np.array([[0.2, 0.9], [0.0, 0.4]])
    truth = np.array([[0.0, 1.0], [1.0, 0.4]])
    mask = np.array([[True, True], [False, True]])
    assert metrics.sad(alpha, truth, mask) == pytest.approx(0.2 + 0.1 + 0.0)


def _direct_gradient(image: np.ndarray, sigma: float) -> np.ndarray:
    """The evaluation code's 2-D kernel built element by element, convolved with explicit loops."""
    half = int(np.ceil(sigma * np.sqrt(-2 * np.log(np.sqrt(2 * np.pi) * sigma * 1e-2))))
    size = 2 * half + 1

    def g(x: float) -> float:
        return np.exp(-x * x / (2 * sigma * sigma)) / (sigma * np.sqrt(2 * np.pi))

    hx = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            hx[i, j] = g(i - half) * (-(j - half) * g(j - half) / sigma ** 2)
    hx /= np.sqrt((hx * hx).sum())
    padded = np.pad(image, half, mode="edge")
    gx = np.zeros_like(image)
    gy = np.zeros_like(image)
    for y in range(image.shape[0]):
        for x in range(image.shape[1]):
            window = padded[y:y + size, x:x + size]
            gx[y, x] = (window * hx[::-1, ::-1]).sum()
            gy[y, x] = (window * hx.T[::-1, ::-1]).sum()
    return np.sqrt(gx * gx + gy * gy)


def test_gradient_error_matches_the_direct_definition() -> None:
    truth = np.zeros((12, 12))
    truth[:, 6:] = 1.0  # a vertical step
    alpha = np.clip(np.linspace(-0.5, 1.5, 12)[None, :].repeat(12, 0), 0, 1)  # a ramp instead
    mask = np.ones_like(truth, bool)
    expected = ((_direct_gradient(alpha, 1.4) - _direct_gradient(truth, 1.4)) ** 2).sum()
    assert metrics.gradient_error(alpha, truth, mask) == pytest.approx(expected, rel=1e-6)
    assert metrics.gradient_error(truth, truth, mask) == 0.0
    assert metrics.gradient_error(truth + 0.0, truth, ~mask) == 0.0


def test_connectivity_error_penalises_a_detached_island() -> None:
    truth = np.zeros((5, 5))
    truth[:2, :2] = 1.0
    alpha = truth.copy()
    alpha[4, 4] = 1.0  # not connected to the foreground block
    mask = np.ones_like(truth, bool)
    # levels: block 1, elsewhere 0. At the island pred-level = 1 >= .15 -> phi 0; truth phi 1 -> 1
    assert metrics.connectivity_error(alpha, truth, mask) == pytest.approx(1.0)
    assert metrics.connectivity_error(truth, truth, mask) == 0.0
    # the same fractional value costs nothing when attached to the foreground, and .1 when detached
    truth2 = truth.copy()
    truth2[2, 0] = 0.5
    pred2 = truth2.copy()
    pred2[2, 0] = 0.6  # level .5 there: .1 above it is under the .15 cut-off
    assert metrics.connectivity_error(pred2, truth2, mask) == pytest.approx(0.0)
    truth3 = truth.copy()
    truth3[4, 4] = 0.5
    pred3 = truth3.copy()
    pred3[4, 4] = 0.6  # level 0: phi .4 against the truth's .5
    assert metrics.connectivity_error(pred3, truth3, mask) == pytest.approx(0.1)


def test_dtssd_by_hand() -> None:
    truth = [np.zeros((2, 2))] * 3
    still = [np.full((2, 2), 0.3)] * 3
    flicker = [np.zeros((2, 2)), np.ones((2, 2)), np.zeros((2, 2))]
    assert metrics.dtssd(still, truth) == 0.0  # a constant error is not a temporal error
    assert metrics.dtssd(flicker, truth) == pytest.approx(1.0)  # |Δ| = 1 at every pixel, twice
    half = [np.zeros((2, 2)), np.array([[1.0, 0.0], [0.0, 0.0]])]
    assert metrics.dtssd(half, truth[:2]) == pytest.approx(np.sqrt(0.25))


def test_foreground_error_is_alpha_weighted() -> None:
    truth_colour = np.zeros((1, 2, 3))
    colour = np.zeros((1, 2, 3))
    colour[0, 1] = 0.3
    truth_alpha = np.array([[1.0, 0.5]])
    # errors 0 and .3, weights 1 and .5 -> .15 / 1.5
    assert metrics.foreground_error(colour, truth_colour, truth_alpha) == pytest.approx(0.1)


def test_spill_residual_counts_only_extra_key_colour() -> None:
    truth_colour = np.array([[[0.6, 0.4, 0.3], [0.2, 0.5, 0.2]]])  # skin; a green shirt (excess .3)
    colour = np.array([[[0.6, 0.7, 0.3], [0.2, 0.6, 0.2]]])  # green cast .1 on skin; shirt +.1
    alpha = np.ones((1, 2))
    # skin: excess .1 - 0 ; shirt: .4 - .3 = .1 ; mean .1
    assert metrics.spill_residual(colour, truth_colour, alpha, primary=1) == pytest.approx(0.1)
    assert metrics.spill_residual(truth_colour, truth_colour, alpha, primary=1) == 0.0
