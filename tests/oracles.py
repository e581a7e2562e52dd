"""Test oracles: what the worker's diagnostic effects must output, computed independently of OBS."""

from __future__ import annotations

import numpy as np

from facefusion_obs.worker.effects import TestPattern


def expected_test_pattern(bgra: np.ndarray) -> np.ndarray:
    """The expected output of the test-pattern effect: inverted RGB and the positional alpha."""
    out = np.empty(bgra.shape, np.uint8)
    TestPattern().process(bgra, out)
    return out
