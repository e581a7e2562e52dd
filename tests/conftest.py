"""Shared fixtures. Each test module keeps its own specialised fixtures beside its tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # lets tests import their helpers (obs_harness, ipc_peer)


@pytest.fixture()
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every facefusion-obs location at a fresh folder."""
    for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"), ("XDG_CACHE_HOME", "cache")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    return tmp_path


# --- issue 4 (models, faces, presets): real models and real photos, fetched once from PyPI ----------
@pytest.fixture(scope="session")
def embedded_models() -> dict[str, Path]:
    """The MediaPipe models + mesh topology, fetched from the pinned wheel (cached), SHA-256-verified."""
    from facefusion_obs.models import ensure_embedded_models

    return ensure_embedded_models(quiet=True)


@pytest.fixture(scope="session")
def model_pool(embedded_models):
    """One model pool over the real embedded models for the session, as the worker holds one."""
    from facefusion_obs.runtime.pool import ModelPool

    with ModelPool() as pool:
        yield pool


@pytest.fixture(scope="session")
def sample_images_dir() -> Path:
    """insightface 2.1's data/images (t1.jpg: six people; Tom_Hanks_54745.png), fetched with pip."""
    from facefusion_obs.demo.photos import sample_images_dir as fetch_sample_images

    return fetch_sample_images()


@pytest.fixture(scope="session")
def astronaut_rgb():
    """skimage's astronaut (512x512 RGB, one frontal face)."""
    import numpy as np
    from skimage import data

    return np.ascontiguousarray(data.astronaut())
