"""Per-scene presets, property changes and hotkeys, in real OBS with the real mesh pipeline.

One image source with a face ("Face", skimage's astronaut) sits in three scenes. The script's
settings map "Studio A" to preset alice, "Studio B" to bob, "Studio C" to swap off, and a scene that
no longer exists to alice. Presets are made from two faces of insightface's t1.jpg.
"""

from __future__ import annotations

import json
import re
import sys
import time

import numpy as np
import pytest
from PIL import Image

from facefusion_obs.bench.obs_instance import ObsInstance, facefusion_filter, image_source
from facefusion_obs.demo.photos import SAMPLE_CONSENT
from facefusion_obs.obs.scenes import SWAP_OFF, scene_key
from facefusion_obs.presets import PresetStore

pytestmark = pytest.mark.obs
SCENES = ("Studio A", "Studio B", "Studio C")


def _collection(sources: list[dict], script_settings: dict) -> dict:
    item = {"name": "Face", "id": 1, "visible": True, "locked": False, "rot": 0.0, "pos": {"x": 0.0, "y": 0.0},
            "scale": {"x": 1.0, "y": 1.0}, "align": 5, "bounds_type": 0, "bounds": {"x": 0.0, "y": 0.0}}
    scenes = [{"id": "scene", "versioned_id": "scene", "name": name,
               "settings": {"items": [item], "id_counter": 1, "custom_size": False}} for name in SCENES]
    from facefusion_obs.config import PROJECT_ROOT

    return {"name": "scenes", "current_scene": SCENES[0], "current_program_scene": SCENES[0],
            "scene_order": [{"name": n} for n in SCENES], "sources": [*scenes, *sources],
            "modules": {"scripts-tool": [{"path": str(PROJECT_ROOT / "facefusion_obs.py"),
                                          "settings": script_settings}]}}


@pytest.fixture(scope="module")
def obs(tmp_path_factory, request, sample_images_dir, astronaut_rgb, embedded_models):
    root = tmp_path_factory.mktemp("obs-scenes")
    Image.fromarray(astronaut_rgb).save(root / "face.png")
    inst = ObsInstance(root, None, sys.executable, (512, 512), collection="scenes", scene=SCENES[0])
    store = PresetStore(inst.home / ".local/share/facefusion-obs/presets")
    store.add("alice", [sample_images_dir / "t1.jpg"], face_index=0, consent=SAMPLE_CONSENT)
    store.add("bob", [sample_images_dir / "t1.jpg"], face_index=1, consent=SAMPLE_CONSENT)
    face_filter = facefusion_filter(effect="pipeline", engine="mesh", matting="off", preset="")
    mapping = {scene_key("Studio A"): "alice", scene_key("Studio B"): "bob", scene_key("Studio C"): SWAP_OFF,
               scene_key("Deleted scene"): "alice"}
    collection = _collection([image_source("Face", root / "face.png", [face_filter])], mapping)
    (inst.obs_config / "basic" / "scenes" / "scenes.json").write_text(json.dumps(collection))
    inst.start()
    inst.astronaut = astronaut_rgb
    yield inst
    code = inst.stop()
    if not request.session.testsfailed:
        assert code == 0


def _wait_status(obs, pattern: str, timeout: float = 30.0) -> None:
    """Wait for the worker's reported state (logged every second) to match ``pattern``."""
    start = len(obs.log_text())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, obs.log_text()[start:]):
            return
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} not reported within {timeout} s:\n{obs.log_text()[-2000:]}")


def _wait_setting(obs, key: str, value: object, timeout: float = 5.0) -> None:
    """Hotkeys run on OBS's hotkey thread and source updates apply on the next video tick: poll."""
    deadline = time.monotonic() + timeout
    while True:
        settings = obs.ws.call("GetSourceFilter", sourceName="Face", filterName="FaceFusion")["filterSettings"]
        if settings.get(key) == value:
            return
        assert time.monotonic() < deadline, f"filter setting {key!r} is {settings.get(key)!r}, not {value!r}"
        time.sleep(0.05)


def _shot(obs) -> np.ndarray:
    time.sleep(0.3)  # a few frames through the worker
    return obs.ws.screenshot("Face", 512, 512).astype(int)


def test_switching_scenes_switches_the_preset(obs):
    _wait_status(obs, r"mesh, preset alice")
    alice = _shot(obs)
    obs.ws.call("SetCurrentProgramScene", sceneName="Studio B")
    _wait_status(obs, r"mesh, preset bob")
    bob = _shot(obs)
    obs.ws.call("SetCurrentProgramScene", sceneName="Studio C")
    _wait_status(obs, r"running .*\| off")
    off = _shot(obs)
    original = np.dstack([obs.astronaut, np.full((512, 512), 255, np.uint8)]).astype(int)
    assert np.array_equal(off, original), "swap off: the frame passes untouched"
    for swapped in (alice, bob):
        changed = np.abs(swapped - original).max(axis=2) > 8
        assert 0.01 < changed.mean() < 0.3, "only the face region changes"
    face = (np.abs(alice - original).max(axis=2) > 8) | (np.abs(bob - original).max(axis=2) > 8)
    assert np.abs(alice - bob)[face].mean() > 8, "two presets give two different faces"
    assert "scene 'Deleted scene' in the preset mapping no longer exists: ignored" in obs.log_text()


def test_the_usage_log_names_the_scene_each_preset_was_swapped_in(obs):
    """The OBS side sends the scene with the filter's options; the worker's usage log records it."""
    from facefusion_obs.worker.usage import UsageLog

    usage = UsageLog(obs.home / ".local/share/facefusion-obs/usage/usage.jsonl")
    deadline = time.monotonic() + 10
    while True:  # Studio C swaps nothing: bob's entry ends once the debounce has passed
        ended = [(r["preset"], r["scene"]) for r in (line.record for line in usage.read()) if r["event"] == "end"]
        if ("bob", "Studio B") in ended or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert ended[:2] == [("alice", "Studio A"), ("bob", "Studio B")], ended


def test_filter_own_preset_overrides_the_scene(obs):
    obs.ws.call("SetCurrentProgramScene", sceneName="Studio A")
    _wait_status(obs, r"mesh, preset alice")
    obs.ws.call("SetSourceFilterSettings", sourceName="Face", filterName="FaceFusion",
                filterSettings={"preset": "bob"})
    _wait_status(obs, r"mesh, preset bob")
    obs.ws.call("SetSourceFilterSettings", sourceName="Face", filterName="FaceFusion",
                filterSettings={"preset": ""})
    _wait_status(obs, r"mesh, preset alice")


def test_property_changes_reach_the_worker(obs):
    obs.ws.call("SetSourceFilterSettings", sourceName="Face", filterName="FaceFusion",
                filterSettings={"swap_enabled": False})
    _wait_status(obs, r"running .*\| off")
    obs.ws.call("SetSourceFilterSettings", sourceName="Face", filterName="FaceFusion",
                filterSettings={"swap_enabled": True, "effect": "test-pattern"})
    _wait_status(obs, r"\| test-pattern")
    obs.ws.call("SetSourceFilterSettings", sourceName="Face", filterName="FaceFusion",
                filterSettings={"effect": "pipeline"})
    _wait_status(obs, r"mesh, preset alice")


def test_hotkeys_are_registered_and_work(obs):
    names = obs.ws.call("GetHotkeyList")["hotkeys"]
    for hotkey in ("next_preset", "previous_preset", "toggle_swap", "toggle_matting"):
        assert f"facefusion_obs.{hotkey}" in names
    obs.ws.call("TriggerHotkeyByName", hotkeyName="facefusion_obs.next_preset")
    _wait_status(obs, r"mesh, preset bob")  # alice (from the scene) -> next is bob
    _wait_setting(obs, "preset", "bob")  # the filter's own setting changed, so its dialog shows it
    obs.ws.call("TriggerHotkeyByName", hotkeyName="facefusion_obs.toggle_swap")
    _wait_status(obs, r"running .*\| off")
    obs.ws.call("TriggerHotkeyByName", hotkeyName="facefusion_obs.toggle_matting")
    _wait_setting(obs, "matting", "chroma")
