"""Scenes and hotkeys: the per-scene preset applied on frontend events, renames, and the hotkeys.

The rules (which preset a scene gives, how a hotkey changes a setting) are pure functions in
``scenes.py``; this module connects them to OBS's frontend API. Preset names come from the worker's
catalog, never from the presets folder.
"""

from __future__ import annotations

from typing import Any

import obspython as obs  # only importable inside OBS

from facefusion_obs.obs import properties, scenes
from facefusion_obs.obs.dialog import script_settings_dict
from facefusion_obs.obs.registration import ScriptState, bound_trampoline
from facefusion_obs.obs.status import log

HOTKEYS = {
    "next_preset": "FaceFusion: next face preset",
    "previous_preset": "FaceFusion: previous face preset",
    "toggle_swap": "FaceFusion: toggle face swap",
    "toggle_matting": "FaceFusion: toggle matting",
}


class Frontend:
    def __init__(self, state: ScriptState) -> None:
        self.state = state
        self.api = state.api

    def _presets(self) -> list[str] | None:
        sup = self.state.supervisor
        return properties.catalog_presets(sup.catalog if sup is not None else None)

    # ------------------------------------------------------------------------------------ scenes
    def apply_scene_mapping(self) -> None:
        """Give every filter in the current scene that scene's preset (its own preset still wins)."""
        current = self._current_scene()
        if current is None:
            return
        name, filters = current
        mapping = scenes.mapping_from_settings(script_settings_dict(self.state))
        choice = scenes.choice_for(mapping, name, self._presets(), log)
        for f in filters:
            f.set_scene_choice(choice)
        log(f"scene {name!r}: preset {choice or '(filters choose)'}")

    def scenes_loaded(self) -> None:
        names = obs.obs_frontend_get_scene_names() or []
        for scene in scenes.stale_scenes(scenes.mapping_from_settings(script_settings_dict(self.state)), names):
            log(f"scene {scene!r} in the preset mapping no longer exists: ignored")
        self.apply_scene_mapping()

    def on_frontend_event(self, event: int) -> None:
        if event == obs.OBS_FRONTEND_EVENT_SCENE_CHANGED:
            self.apply_scene_mapping()
        elif event in (obs.OBS_FRONTEND_EVENT_FINISHED_LOADING, obs.OBS_FRONTEND_EVENT_SCENE_COLLECTION_CHANGED):
            self.scenes_loaded()

    def on_source_rename(self, calldata: Any) -> None:
        """Keep a renamed scene's mapping: move its key to the new name."""
        settings = self.state.script_settings
        source = obs.calldata_source(calldata, "source")
        if settings is None or source is None or obs.obs_scene_from_source(source) is None:
            return
        old, new = obs.calldata_string(calldata, "prev_name"), obs.calldata_string(calldata, "new_name")
        choice = obs.obs_data_get_string(settings, scenes.scene_key(old))
        if choice:
            obs.obs_data_set_string(settings, scenes.scene_key(new), choice)
            obs.obs_data_erase(settings, scenes.scene_key(old))
            log(f"scene renamed {old!r} -> {new!r}: its preset mapping follows")

    def _current_scene(self) -> tuple[str, list[Any]] | None:
        """The current scene's name and our filters whose source is in it (nested scenes included)."""
        scene_source = obs.obs_frontend_get_current_scene()
        if scene_source is None:
            return None
        try:
            scene = self.api.obs_scene_from_source(int(scene_source))
            found = []
            for f in self.state.instances.values():
                parent = self.api.obs_filter_get_parent(f.source)
                if parent and self.api.obs_scene_find_source_recursive(scene, self.api.obs_source_get_name(parent)):
                    found.append(f)
            return obs.obs_source_get_name(scene_source), found
        finally:
            obs.obs_source_release(scene_source)

    # ----------------------------------------------------------------------------------- hotkeys
    def hotkey(self, name: str, pressed: bool) -> None:
        """Apply a hotkey to the filters in the current scene (all filters if none is there)."""
        if not pressed:
            return
        current = self._current_scene()
        targets = (current[1] if current else []) or list(self.state.instances.values())
        presets = self._presets() or []
        for f in targets:
            own = f.options
            if name in ("next_preset", "previous_preset"):
                step = 1 if name == "next_preset" else -1
                change = {"preset": scenes.cycle_preset(f.effective_options()["preset"], presets, step)}
            elif name == "toggle_swap":
                change = {"swap_enabled": not own["swap_enabled"]}
            else:  # toggle_matting
                change = {"matting": scenes.toggled_matting(own["matting"], f.last_matting)}
            self._update_settings(f.source, change)
            log(f"hotkey {name}: {change}")

    def _update_settings(self, source: int, change: dict[str, Any]) -> None:
        """Change a filter's settings the way the dialog would, so the dialog shows it too."""
        data = self.api.obs_data_create()
        try:
            for key, value in change.items():
                if isinstance(value, bool):
                    self.api.obs_data_set_bool(data, key.encode(), value)
                else:
                    self.api.obs_data_set_string(data, key.encode(), str(value).encode())
            self.api.obs_source_update(source, data)
        finally:
            self.api.obs_data_release(data)


def register_hotkeys(state: ScriptState, settings: Any) -> None:
    """Frontend hotkeys (Settings → Hotkeys), with the bindings saved in the script's settings."""
    for name, description in HOTKEYS.items():
        callback = bound_trampoline("frontend", "hotkey", name)
        hotkey_id = obs.obs_hotkey_register_frontend(f"facefusion_obs.{name}", description, callback)
        state.hotkeys[name] = (hotkey_id, callback)
        bindings = obs.obs_data_get_array(settings, f"hotkey.{name}")
        obs.obs_hotkey_load(hotkey_id, bindings)
        obs.obs_data_array_release(bindings)


def save_hotkeys(state: ScriptState, settings: Any) -> None:
    for name, (hotkey_id, _) in state.hotkeys.items():
        bindings = obs.obs_hotkey_save(hotkey_id)
        obs.obs_data_set_array(settings, f"hotkey.{name}", bindings)
        obs.obs_data_array_release(bindings)


def unregister_hotkeys(state: ScriptState) -> None:
    for hotkey_id, _ in state.hotkeys.values():
        obs.obs_hotkey_unregister(hotkey_id)
    state.hotkeys.clear()
