"""Scenes and hotkeys: the per-scene preset applied on frontend events, renames, and the hotkeys.

The rules (which preset a scene gives, how a hotkey changes a setting) are pure functions in
``scenes.py``; this module connects them to OBS's frontend API. Preset names come from the worker's
catalog, never from the presets folder.

Also here: the panic key ("FaceFusion: cover now", which only flips a flag every filter's render
reads) and the audio sync glue (the rule is ``audiosync.py``; a script timer feeds it the filters'
latency and sets the chosen source's offset).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import obspython as obs  # only importable inside OBS

from facefusion_obs.config import locations
from facefusion_obs.obs import audiosync, libobs, properties, scenes
from facefusion_obs.obs.dialog import AUDIO_SYNC_KEY, script_settings_dict
from facefusion_obs.obs.registration import ScriptState, bound_trampoline
from facefusion_obs.obs.status import log

HOTKEYS = {
    "next_preset": "FaceFusion: next face preset",
    "previous_preset": "FaceFusion: previous face preset",
    "toggle_swap": "FaceFusion: toggle face swap",
    "toggle_matting": "FaceFusion: toggle matting",
    "cover_now": "FaceFusion: cover now",  # the panic key: every filter, every scene; again uncovers
}
AUDIO_TICK_MS = 250


class Frontend:
    def __init__(self, state: ScriptState) -> None:
        self.state = state
        self.api = state.api
        self._saved: tuple[str, int] | bool | None = False  # the audio sync record; False: not read yet

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
            f.set_scene_choice(choice, name)
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
        elif event in (obs.OBS_FRONTEND_EVENT_SCRIPTING_SHUTDOWN, obs.OBS_FRONTEND_EVENT_EXIT):
            self.state.shutting_down = True  # OBS is quitting: see release_audio
            self.release_audio(closing=True)
        elif event == obs.OBS_FRONTEND_EVENT_SCENE_COLLECTION_CLEANUP:
            self.release_audio(closing=True)  # the audio source is about to go: leave it with its own offset

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
        """Apply a hotkey to the filters in the current scene (all filters if none is there); the panic
        key to every filter."""
        if not pressed:
            return
        if name == "cover_now":
            self.toggle_cover()
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

    def toggle_cover(self) -> None:
        """The panic key: cover every filter in every scene from its next frame, or uncover them all.
        Only flags are set here (hotkey thread); each filter's render reads its own."""
        state = self.state
        state.panic = not state.panic
        for f in list(state.instances.values()):
            f.panic = state.panic
        log(f"hotkey cover_now: cover {'ON on every filter' if state.panic else 'off'}")

    # -------------------------------------------------------------------------------- audio sync
    # A script timer fires on OBS's graphics thread; the work is handed to OBS's UI thread, where OBS
    # itself changes audio settings (its widgets follow a source's sync offset), so nothing here races
    # the dialogs, the unload or OBS's shutdown. The setting comes through ``state.audio_wanted`` (read
    # on the UI thread, see ``audio_setting``); the source's own offset is kept in a file of ours.
    def audio_sync_tick(self) -> None:
        """Every ``AUDIO_TICK_MS`` (the script timer): queue one ``audio_sync_ui`` on the UI thread,
        never more than one at a time, without waiting for it."""
        state = self.state
        if state.audio_task is None or state.audio_queued or not state.loaded:
            return
        state.audio_queued = True
        self.api.obs_queue_task(libobs.OBS_TASK_UI, state.audio_task, None, False)

    def audio_sync_ui(self, _param: Any = None) -> None:
        """On the UI thread: follow the chosen audio source and the filters' latency."""
        state = self.state
        state.audio_queued = False
        if not state.loaded:
            return
        wanted = state.audio_wanted
        hold: audiosync.AudioHold | None = state.audio
        if hold is not None and hold.source != wanted:
            self.release_audio()
            hold = None
        saved = self._saved_audio()
        if hold is None and saved is not None and saved[0] != wanted and self._set_offset(saved[0], saved[1]):
            # held when OBS (or the script) closed, and no longer wanted: its own offset back
            self._record(None)
            log(f"audio sync: {saved[0]!r} offset restored to {saved[1] / 1e6:.0f} ms")
            saved = None
        if not wanted:
            return
        if hold is None:
            current = self._get_offset(wanted)
            if current is None:
                return  # not (yet) a source: the status line says so
            base = saved[1] if saved is not None and saved[0] == wanted else current
            frame_ns = int(self.api.obs_get_frame_interval_ns()) or 33_333_333
            hold = state.audio = audiosync.AudioHold(wanted, audiosync.SyncRule(frame_ns, base))
            self._record((wanted, base))
            if current != base:
                self._set_offset(wanted, base)
            log(f"audio sync: keeping {wanted!r} in sync (its own offset {base / 1e6:.0f} ms)")
        hold.latency_ns = self._latency_ns()
        new = hold.rule.update(hold.latency_ns, time.monotonic())
        if new is not None and self._set_offset(wanted, new):
            log(hold.status())

    def release_audio(self, closing: bool = False) -> None:
        """Give the held audio source its own offset back (turned off, another source, unload, exit).

        ``closing`` (unload, exit, collection change): OBS may already have saved the collection with
        our offset in it, so the record stays and the next start restores the source's own offset
        (or keeps building on it) whatever the collection says. While OBS itself shuts down nothing
        is set at all: the collection is saved by then, and OBS's audio widgets are being torn down
        (changing an offset then crashed OBS now and then)."""
        hold, self.state.audio = self.state.audio, None
        if hold is None:
            return
        if self.state.shutting_down:
            log(f"audio sync: OBS is closing; {hold.source!r} gets its own offset back at the next start")
            return
        if not self._set_offset(hold.source, hold.rule.base_ns):
            log(f"audio sync: {hold.source!r} is gone; its own offset is restored when it is back")
            return
        log(f"audio sync: {hold.source!r} offset restored to {hold.rule.base_ns / 1e6:.0f} ms")
        if not closing:
            self._record(None)

    def _latency_ns(self) -> float | None:
        """The largest capture-to-display latency median among filters whose output is flowing."""
        now = time.perf_counter()
        medians = [f.latency.percentile(0.5) for f in list(self.state.instances.values())
                   if f.frames_out.rate(now) > 0]
        return max(medians) * 1e6 if medians else None

    def _get_offset(self, name: str) -> int | None:
        source = self.api.obs_get_source_by_name(name.encode("utf-8"))
        if not source:
            return None
        try:
            return int(self.api.obs_source_get_sync_offset(source))
        finally:
            self.api.obs_source_release(source)

    def _set_offset(self, name: str, offset_ns: int) -> bool:
        source = self.api.obs_get_source_by_name(name.encode("utf-8"))
        if not source:
            return False
        try:
            self.api.obs_source_set_sync_offset(source, int(offset_ns))
            return True
        finally:
            self.api.obs_source_release(source)

    def _saved_path(self) -> Path:
        return locations().config_dir / audiosync.SAVED_FILE

    def _saved_audio(self) -> tuple[str, int] | None:
        """The source held when OBS last closed and its own offset (read once per script load)."""
        if self._saved is False:
            self._saved = audiosync.read_saved(self._saved_path())
        return self._saved  # type: ignore[return-value]

    def _record(self, saved: tuple[str, int] | None) -> None:
        self._saved = saved
        try:
            audiosync.write_saved(self._saved_path(), saved)
        except OSError as exc:
            log(f"audio sync: cannot record the source's own offset in {self._saved_path()}: {exc}")

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


def audio_setting(settings: Any) -> str:
    """The "Keep audio in sync with" choice (UI thread: script load and update)."""
    return (obs.obs_data_get_string(settings, AUDIO_SYNC_KEY) or "") if settings is not None else ""


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
