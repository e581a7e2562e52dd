"""Per-scene preset mapping and hotkey effects (pure logic; the real-OBS side is test_obs_scenes.py)."""

from facefusion_obs.config import default_options
from facefusion_obs.obs import scenes


def test_mapping_comes_from_scene_keys_only():
    settings = {"scene_preset:A": "alice", "scene_preset:B": "", "hotkey.next_preset": [], "other": "x"}
    assert scenes.mapping_from_settings(settings) == {"A": "alice"}


def test_filter_own_preset_wins_over_its_scene():
    own = default_options()
    assert scenes.effective_options(own, "alice")["preset"] == "alice"
    assert scenes.effective_options({**own, "preset": "bob"}, "alice")["preset"] == "bob"
    off = scenes.effective_options(own, scenes.SWAP_OFF)
    assert off["swap_enabled"] is False and off["preset"] == ""
    assert scenes.effective_options({**own, "preset": "bob"}, scenes.SWAP_OFF)["swap_enabled"] is True
    assert scenes.effective_options(own, None) == own


def test_deleted_presets_and_scenes_are_ignored_with_a_note():
    notes: list[str] = []
    mapping = {"A": "alice", "B": scenes.SWAP_OFF, "Gone": "bob"}
    assert scenes.choice_for(mapping, "A", ["bob"], notes.append) is None
    assert "'alice', which no longer exists" in notes[0]
    assert scenes.choice_for(mapping, "B", [], notes.append) == scenes.SWAP_OFF
    assert scenes.choice_for(mapping, "Unmapped", ["alice"], notes.append) is None
    assert scenes.stale_scenes(mapping, ["A", "B"]) == ["Gone"]
    # before any worker has listed its presets, the mapping stands and the worker judges it
    assert scenes.choice_for(mapping, "A", None, notes.append) == "alice" and len(notes) == 1


def test_hotkey_cycles_and_toggles():
    names = ["alice", "bob", "carol"]
    assert scenes.cycle_preset("bob", names, 1) == "carol"
    assert scenes.cycle_preset("carol", names, 1) == "alice"
    assert scenes.cycle_preset("alice", names, -1) == "carol"
    assert scenes.cycle_preset("", names, 1) == "alice"
    assert scenes.cycle_preset("x", [], 1) == "x"
    assert scenes.toggled_matting("chroma+person", "chroma+person") == "off"
    assert scenes.toggled_matting("off", "chroma+person") == "chroma+person"
    assert scenes.toggled_matting("off", "") == "chroma"

