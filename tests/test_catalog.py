"""The worker is the one authority on engines and presets, and the dialog shows exactly what it says.

Each test runs the real worker through the real OBS-side Supervisor (a real process, the real control
channel) and turns its ``catalog`` into the dialog's choices with the OBS side's own function, so the
two sides cannot disagree. Only the final ctypes calls that draw the dialog are left to the real-OBS
tests. The insightface models are STAND-INs (tests/standins.py) behind the real SHA-256 gate.
"""

from __future__ import annotations

import shutil
import sys
import time

import pytest
from standin_setup import write_standin_models

from facefusion_obs.demo.photos import SAMPLE_CONSENT
from facefusion_obs.obs.properties import catalog_presets, choices_from_catalog
from facefusion_obs.obs.supervisor import Supervisor


def _catalog_when(sup: Supervisor, predicate, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        catalog = sup.catalog
        if catalog is not None and predicate(catalog):
            return catalog
        time.sleep(0.05)
    raise AssertionError(f"catalog never matched; last: {sup.catalog} ({sup.state}: {sup.detail})")


def _engine(catalog: dict, name: str) -> dict:
    return next(e for e in catalog["engines"] if e["name"] == name)


@pytest.fixture()
def folders(tmp_path, isolated_home, astronaut_rgb, embedded_models):
    """A models folder with only the fp16 inswapper stand-in, and a presets folder holding one good
    preset, one folder whose preset.json is not a preset, and one folder without one."""
    import cv2

    from facefusion_obs.presets import PresetStore

    models_dir, manifest, files = write_standin_models(tmp_path / "m")
    files["inswapper_128"].unlink()  # only inswapper_128_fp16 is left
    presets = tmp_path / "presets"
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2BGR))
    PresetStore(presets).add("astro", [photo], consent=SAMPLE_CONSENT)
    (presets / "broken").mkdir()
    (presets / "broken" / "preset.json").write_text("{not json")
    (presets / "empty").mkdir()
    env = {"FACEFUSION_OBS_MODELS": str(models_dir), "FACEFUSION_OBS_MANIFEST": str(manifest),
           "FACEFUSION_OBS_PRESETS": str(presets)}
    return env, models_dir, files


@pytest.fixture()
def supervisor(folders):
    env = folders[0]
    sup = Supervisor(sys.executable, env=env, log=lambda line: None)
    sup.start()
    yield sup
    sup.stop()


def test_fp16_inswapper_alone_makes_inswapper_available_in_the_dialog(supervisor):
    catalog = _catalog_when(supervisor, lambda c: True)
    assert _engine(catalog, "inswapper")["available"], catalog
    choices = choices_from_catalog(catalog, "")
    assert ("inswapper", "") in choices["engine"]  # offered, not disabled


def test_dialog_lists_exactly_the_presets_the_worker_accepts(supervisor):
    catalog = _catalog_when(supervisor, lambda c: True)
    assert catalog_presets(catalog) == ["astro"]
    values = [v for v, _ in choices_from_catalog(catalog, "")["preset"]]
    assert values == ["", "astro"]  # neither "broken" (bad preset.json) nor "empty"
    # a filter already set to the broken one keeps it, shown disabled with the reason
    kept = dict(choices_from_catalog(catalog, "broken")["preset"])
    assert "not a usable preset" in kept["broken"]


def test_models_folder_changes_are_followed_without_touching_the_dialog(supervisor, folders):
    _, models_dir, files = folders
    _catalog_when(supervisor, lambda c: _engine(c, "inswapper")["available"])
    moved = models_dir.parent / "moved-away.onnx"
    shutil.move(files["inswapper_128_fp16"], moved)
    catalog = _catalog_when(supervisor, lambda c: not _engine(c, "inswapper")["available"], 15)
    engine = _engine(catalog, "inswapper")
    assert "facefusion-obs models fetch" in engine["fix"], engine
    why = dict(choices_from_catalog(catalog, "")["engine"])["inswapper"]
    assert engine["reason"] in why and engine["fix"] in why
    assert dict(choices_from_catalog(catalog, "")["engine"])["mesh"] == ""
    shutil.move(moved, files["inswapper_128_fp16"])  # "fetched" again
    _catalog_when(supervisor, lambda c: _engine(c, "inswapper")["available"], 15)


def test_a_tampered_model_is_not_offered(supervisor, folders):
    _, _, files = folders
    _catalog_when(supervisor, lambda c: _engine(c, "inswapper")["available"])
    path = files["inswapper_128_fp16"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    catalog = _catalog_when(supervisor, lambda c: not _engine(c, "inswapper")["available"], 15)
    assert _engine(catalog, "inswapper")["reason"]


def test_without_a_catalog_nothing_is_lost_or_disabled():
    choices = choices_from_catalog(None, "astro")
    assert all(why == "" for _, why in choices["engine"])
    assert choices["preset"] == [("", ""), ("astro", "")]
    assert catalog_presets(None) is None

