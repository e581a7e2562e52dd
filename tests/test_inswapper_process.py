"""The inswapper engine end to end: the worker's FramePipeline and ``facefusion-obs process``.

inswapper/arcface are generated STAND-INs (real input/output contract, no weights) registered through
the real SHA-256 gate; faces, landmarks and photos are real.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from facefusion_obs.cli.main import main
from facefusion_obs.demo.photos import SAMPLE_CONSENT


@pytest.fixture()
def standin_models(isolated_home, monkeypatch):
    from standin_setup import install_standins

    return install_standins(isolated_home, monkeypatch)


@pytest.fixture()
def pool(standin_models):
    """The worker's pool, over the stand-ins the environment now points at."""
    from facefusion_obs.runtime.pool import ModelPool

    with ModelPool() as pool:
        yield pool


@pytest.fixture()
def photos(isolated_home):
    """A target frame (insightface's t1.jpg, one person framed) and a source photo (skimage's astronaut)."""
    from skimage import data

    from facefusion_obs.demo.photos import sample_image

    bgr = cv2.imread(str(sample_image("t1.jpg")))
    target = isolated_home / "frames" / "frame_0001.png"
    target.parent.mkdir()
    cv2.imwrite(str(target), cv2.resize(bgr[230:620, 330:1024], (960, 540)))
    source = isolated_home / "astronaut.png"
    cv2.imwrite(str(source), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return target, source


def test_frame_pipeline_runs_inswapper_and_keeps_the_face_opaque(pool, photos):
    from facefusion_obs.pipeline.frame import FramePipeline
    from facefusion_obs.presets import PresetStore

    target, source = photos
    PresetStore().add("astro", [source], consent=SAMPLE_CONSENT)
    pipeline = FramePipeline({"engine": "inswapper", "preset": "astro", "matting": "off"}, pool)
    assert pipeline.swapper.engine.engine == "inswapper"
    bgra = cv2.cvtColor(cv2.imread(str(target)), cv2.COLOR_BGR2BGRA)
    rgba = pipeline.process(bgra)
    assert rgba.shape == (540, 960, 4) and np.all(rgba[..., 3] == 255)
    changed = np.any(rgba[..., :3] != bgra[..., 2::-1], axis=2)
    assert 1000 < changed.sum() < 0.2 * changed.size  # the face changed, the rest did not
    # --source IMAGE: a transient preset; its identity is computed in memory and gives the same result
    from_image = FramePipeline({"engine": "inswapper", "preset": str(source), "matting": "off"}, pool)
    np.testing.assert_array_equal(from_image.process(bgra), rgba)


def test_worker_reports_the_engine_and_provider_actually_in_use(pool, photos):
    """What the OBS status line shows comes from here (stand-in models, CPU build of onnxruntime)."""
    from facefusion_obs.config import validate_options
    from facefusion_obs.presets import PresetStore
    from facefusion_obs.worker.effects import PipelineEffect

    PresetStore().add("astro", [photos[1]], consent=SAMPLE_CONSENT)
    effect = PipelineEffect(validate_options({"engine": "inswapper", "preset": "astro"}), pool)
    assert effect.in_use() == ("astro", "inswapper", "cpu")
    effect.configure(validate_options({"engine": "mesh", "preset": "astro"}))
    assert effect.in_use() == ("astro", "mesh", "cpu")
    effect.configure(validate_options({"swap_enabled": False}))
    assert effect.in_use() == ("", "off", "cpu")


def test_process_command_with_inswapper_writes_rgba_frames(standin_models, photos, tmp_path):
    target, source = photos
    out = tmp_path / "out"
    code = main(["process", str(target), str(out), "--source", str(source), "--engine", "inswapper",
                 "--consent", SAMPLE_CONSENT])
    assert code == 0
    written = cv2.imread(str(out / "frame_0001.png"), cv2.IMREAD_UNCHANGED)
    assert written is not None and written.shape == (540, 960, 4)
    changed = np.any(written[..., :3] != cv2.imread(str(target)), axis=2)
    assert changed.sum() > 1000


def test_process_without_inswapper_models_says_how_to_fetch_and_falls_back_to_mesh(
        isolated_home, photos, tmp_path, monkeypatch, caplog):
    from standin_setup import embedded_models_only

    embedded_models_only(isolated_home, monkeypatch)  # MediaPipe's models are there, inswapper's not
    target, source = photos
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        code = main(["process", str(target), str(out), "--source", str(source), "--engine", "inswapper",
                     "--consent", SAMPLE_CONSENT])
    assert code == 0
    assert "using 'mesh' instead" in caplog.text
    assert "facefusion-obs models fetch" in caplog.text and "--accept-license" in caplog.text
    assert "non-commercial" in caplog.text
    written = cv2.imread(str(out / "frame_0001.png"), cv2.IMREAD_UNCHANGED)
    assert written is not None and written.shape == (540, 960, 4)  # the mesh engine still swapped
