"""The OBS script: registers the "FaceFusion Live" filter and owns the worker's supervisor.

OBS unloads a script *before* it destroys the script's filters, and refuses to register a source id
twice. So everything C holds a pointer to (the source info struct, the ctypes callbacks, the table of
instances) lives on ``builtins`` and outlives this module; the callbacks are thin trampolines that
look the implementation up at call time, so a reloaded script takes over. No exception may cross
into C: every trampoline catches and logs.
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import json
import os
import subprocess
import sys
import threading
import time
import traceback
from types import SimpleNamespace
from typing import Any

import obspython as obs  # only importable inside OBS

from facefusion_obs.config import FILTER_ID, FILTER_NAME, default_options, locations
from facefusion_obs.obs import libobs, properties, scenes
from facefusion_obs.obs.filter import FaceFusionFilter
from facefusion_obs.obs.supervisor import Supervisor, configured_python

__all__ = ["script_description", "script_load", "script_properties", "script_save", "script_unload",
           "script_update"]

STATS_LOG_EVERY_S = float(os.environ.get("FACEFUSION_OBS_STATS_EVERY", "30"))


def log(message: str) -> None:
    print(f"[facefusion-obs] {message}", flush=True)


# --------------------------------------------------------------------------- the persistent state
def _state() -> SimpleNamespace:
    """The one object that survives script reloads (see module docstring)."""
    state = getattr(builtins, "_facefusion_obs_state", None)
    if state is None:
        state = SimpleNamespace(
            impl=None,
            registered=False,
            instances={},
            next_handle=0,
            supervisor=None,
            keepalive=[],
            api=None,
            gs=None,
            buttons={},
            script_settings=None,
            hotkeys={},
        )
        builtins._facefusion_obs_state = state
    return state


def _supervisor() -> Supervisor | None:
    return _state().supervisor


class Implementation:
    """What the trampolines call. Replaced wholesale when the script is reloaded."""

    def __init__(self, api: SimpleNamespace, gs: SimpleNamespace) -> None:
        self.api, self.gs = api, gs
        self._last_log = 0.0
        self._last_state: dict[int, str] = {}

    def create(self, settings: int, source: int) -> int:
        state = _state()
        options = properties.read_options(self.api, settings, default_options(), log)
        state.next_handle += 1
        state.instances[state.next_handle] = FaceFusionFilter(source, self.api, self.gs, _supervisor, options)
        if state.supervisor is not None:
            state.supervisor.start()  # the worker runs only while at least one filter exists
        return state.next_handle

    def destroy(self, handle: int) -> None:
        state = _state()
        f = state.instances.pop(handle, None)
        if f is not None:
            f.destroy()
        sup = state.supervisor
        if sup is not None and not state.instances:
            # Stopping waits for the worker to exit; never do that on OBS's UI or graphics thread.
            threading.Thread(target=sup.stop, name="ffobs-stop", daemon=True).start()

    def update(self, handle: int, settings: int) -> None:
        f = _state().instances.get(handle)
        if f is not None:
            f.update(properties.read_options(self.api, settings, f.options, log))

    def get_defaults(self, settings: int) -> None:
        properties.set_defaults(self.api, settings)

    def get_properties(self, handle: int) -> int:
        state = _state()
        f = state.instances.get(handle)
        status = f.status() if f is not None else "Worker: not started"
        unavailable = {}
        missing = scenes.missing_models()
        if missing:
            unavailable[("engine", "inswapper")] = (
                f"needs its models first: facefusion-obs models fetch {' '.join(missing)} --accept-license")
        buttons = {"open_presets": ("Open presets folder", state.buttons["open_presets"]),
                   "restart_worker": ("Restart worker", state.buttons["restart_worker"])}
        return properties.build(self.api, self.gs, status, buttons, unavailable)

    def restart_worker(self, props: int, prop: int, data: int) -> bool:
        sup = _supervisor()
        if sup is not None:
            sup.restart("restart requested from the properties dialog")
        return True  # redraw: the status line changes

    def open_presets(self, props: int, prop: int, data: int) -> bool:
        folder = locations().presets_dir
        folder.mkdir(parents=True, exist_ok=True)
        opener = {"win32": None, "darwin": ["open"]}.get(sys.platform, ["xdg-open"])
        try:
            if opener is None:
                os.startfile(folder)  # type: ignore[attr-defined]  # Windows only
            else:
                subprocess.Popen([*opener, str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError as exc:
            log(f"cannot open {folder}: {exc}")
        return False

    # ------------------------------------------------------------------------ scenes and hotkeys
    def apply_scene_mapping(self) -> None:
        """Give every filter in the current scene that scene's preset (its own preset still wins)."""
        current = self._current_scene()
        if current is None:
            return
        name, filters = current
        mapping = scenes.mapping_from_settings(_script_settings_dict())
        choice = scenes.choice_for(mapping, name, properties.preset_names(), log)
        for f in filters:
            f.set_scene_choice(choice)
        log(f"scene {name!r}: preset {choice or '(filters choose)'}")

    def scenes_loaded(self) -> None:
        names = obs.obs_frontend_get_scene_names() or []
        for scene in scenes.stale_scenes(scenes.mapping_from_settings(_script_settings_dict()), names):
            log(f"scene {scene!r} in the preset mapping no longer exists: ignored")
        self.apply_scene_mapping()

    def on_frontend_event(self, event: int) -> None:
        if event == obs.OBS_FRONTEND_EVENT_SCENE_CHANGED:
            self.apply_scene_mapping()
        elif event == obs.OBS_FRONTEND_EVENT_FINISHED_LOADING:
            self.scenes_loaded()

    def on_source_rename(self, calldata: Any) -> None:
        """Keep a renamed scene's mapping: move its key to the new name."""
        settings = _state().script_settings
        source = obs.calldata_source(calldata, "source")
        if settings is None or source is None or obs.obs_scene_from_source(source) is None:
            return
        old, new = obs.calldata_string(calldata, "prev_name"), obs.calldata_string(calldata, "new_name")
        choice = obs.obs_data_get_string(settings, scenes.scene_key(old))
        if choice:
            obs.obs_data_set_string(settings, scenes.scene_key(new), choice)
            obs.obs_data_erase(settings, scenes.scene_key(old))
            log(f"scene renamed {old!r} -> {new!r}: its preset mapping follows")

    def hotkey(self, name: str, pressed: bool) -> None:
        """Apply a hotkey to the filters in the current scene (all filters if none is there)."""
        if not pressed:
            return
        current = self._current_scene()
        targets = (current[1] if current else []) or list(_state().instances.values())
        presets = properties.preset_names()
        for f in targets:
            own = f.options
            if name == "next_preset" or name == "previous_preset":
                current = f.effective_options()["preset"]
                change = {"preset": scenes.cycle_preset(current, presets, 1 if name == "next_preset" else -1)}
            elif name == "toggle_swap":
                change = {"swap_enabled": not own["swap_enabled"]}
            else:  # toggle_matting
                change = {"matting": scenes.toggled_matting(own["matting"], f.last_matting)}
            self._update_settings(f.source, change)
            log(f"hotkey {name}: {change}")

    def _current_scene(self) -> tuple[str, list[FaceFusionFilter]] | None:
        """The current scene's name and our filters whose source is in it (nested scenes included)."""
        scene_source = obs.obs_frontend_get_current_scene()
        if scene_source is None:
            return None
        try:
            scene = self.api.obs_scene_from_source(int(scene_source))
            found = []
            for f in _state().instances.values():
                parent = self.api.obs_filter_get_parent(f.source)
                if parent and self.api.obs_scene_find_source_recursive(scene, self.api.obs_source_get_name(parent)):
                    found.append(f)
            return obs.obs_source_get_name(scene_source), found
        finally:
            obs.obs_source_release(scene_source)

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

    def video_tick(self, handle: int, seconds: float) -> None:
        f = _state().instances.get(handle)
        sup = _supervisor()
        if f is None:
            return
        # Refresh an open properties dialog when the worker's state changes, not every frame.
        current = sup.state if sup is not None else "stopped"
        if self._last_state.get(handle) != current:
            self._last_state[handle] = current
            self.api.obs_source_update_properties(f.source)
        now = time.monotonic()
        if now - self._last_log >= STATS_LOG_EVERY_S:
            self._last_log = now
            for i in _state().instances.values():
                log(f"{i.status()} | {i.cost_summary()}")

    def video_render(self, handle: int, effect: int) -> None:
        f = _state().instances.get(handle)
        if f is not None:
            f.render()


def _trampoline(method: str, fallback: Any) -> Any:
    def call(*args: Any) -> Any:
        try:
            impl = _state().impl
            if impl is None:
                return fallback
            return getattr(impl, method)(*args)
        except Exception:
            log(f"{method} failed:\n{traceback.format_exc()}")
            return fallback

    return call


def _render_trampoline(handle: int, effect: int) -> None:
    # A render that fails must still draw something: skip the filter so the source shows unchanged.
    try:
        impl = _state().impl
        if impl is not None:
            impl.video_render(handle, effect)
            return
    except Exception:
        log(f"video_render failed:\n{traceback.format_exc()}")
    f = _state().instances.get(handle)
    if f is not None:
        with contextlib.suppress(Exception):
            f.api.obs_source_skip_video_filter(f.source)


def _register(state: SimpleNamespace) -> None:
    name = ctypes.create_string_buffer(FILTER_NAME.encode())
    callbacks = {
        "get_name": libobs.GET_NAME(lambda type_data: ctypes.addressof(name)),
        "create": libobs.CREATE(_trampoline("create", None)),
        "destroy": libobs.DESTROY(_trampoline("destroy", None)),
        "get_defaults": libobs.GET_DEFAULTS(_trampoline("get_defaults", None)),
        "get_properties": libobs.GET_PROPERTIES(_trampoline("get_properties", None)),
        "update": libobs.UPDATE(_trampoline("update", None)),
        "video_tick": libobs.VIDEO_TICK(_trampoline("video_tick", None)),
        "video_render": libobs.VIDEO_RENDER(_render_trampoline),
    }
    info = libobs.ObsSourceInfo()
    info.id = FILTER_ID.encode()
    info.type = state.gs.OBS_SOURCE_TYPE_FILTER
    info.output_flags = state.gs.OBS_SOURCE_VIDEO
    for field, fn in callbacks.items():
        setattr(info, field, fn)
    # Buttons outlive any one properties dialog, so their callbacks live here too.
    for button in ("restart_worker", "open_presets"):
        state.buttons[button] = libobs.BUTTON_CLICKED(_trampoline(button, False))
    state.keepalive.extend([name, info, *callbacks.values()])
    state.api.obs_register_source_s(ctypes.byref(info), ctypes.sizeof(info))
    state.registered = True
    log(f"registered filter {FILTER_ID!r} ({FILTER_NAME})")


# -------------------------------------------------------------------------------- script hooks
def script_description() -> str:
    return (
        "<b>FaceFusion Live</b>: live face swap and green-screen matting as a video filter.<br>"
        "Add it to a camera source: right-click the source → Filters → Effect Filters → + → "
        "FaceFusion Live.<br>Worker interpreter: "
        + (configured_python() or f"not configured ({locations().worker_config})")
    )


HOTKEYS = {
    "next_preset": "FaceFusion: next face preset",
    "previous_preset": "FaceFusion: previous face preset",
    "toggle_swap": "FaceFusion: toggle face swap",
    "toggle_matting": "FaceFusion: toggle matting",
}


def _script_settings_dict() -> dict[str, Any]:
    settings = _state().script_settings
    if settings is None:
        return {}
    try:
        return json.loads(obs.obs_data_get_json(settings) or "{}")
    except ValueError:
        return {}


def _python_callback(method: str, *bound: Any) -> Any:
    """An obspython callback that calls the current implementation and never raises."""

    def call(*args: Any) -> None:
        try:
            impl = _state().impl
            if impl is not None:
                getattr(impl, method)(*bound, *args)
        except Exception:
            log(f"{method} failed:\n{traceback.format_exc()}")

    return call


def _register_hotkeys(settings: Any) -> None:
    """Frontend hotkeys (Settings → Hotkeys), with the bindings saved in the script's settings."""
    state = _state()
    for name, description in HOTKEYS.items():
        callback = _python_callback("hotkey", name)
        hotkey_id = obs.obs_hotkey_register_frontend(f"facefusion_obs.{name}", description, callback)
        state.hotkeys[name] = (hotkey_id, callback)
        bindings = obs.obs_data_get_array(settings, f"hotkey.{name}")
        obs.obs_hotkey_load(hotkey_id, bindings)
        obs.obs_data_array_release(bindings)


def script_load(settings: Any) -> None:
    try:
        state = _state()
        if state.api is None:
            state.api, state.gs = libobs.load(), libobs.enums(obs)
        state.impl = Implementation(state.api, state.gs)
        if not state.registered:
            _register(state)
        else:
            log("script reloaded: the new code serves existing filters")
        state.script_settings = settings
        obs.obs_frontend_add_event_callback(_python_callback("on_frontend_event"))
        obs.signal_handler_connect(obs.obs_get_signal_handler(), "source_rename",
                                   _python_callback("on_source_rename"))
        _register_hotkeys(settings)
        if state.supervisor is None:
            state.supervisor = Supervisor(configured_python(), log=log)
        if state.instances:  # a reload with filters already in the scene
            state.supervisor.start()
    except Exception:
        log(f"script_load failed:\n{traceback.format_exc()}")


def script_properties() -> Any:
    """The Scripts window: a face preset per scene (a filter's own preset still wins)."""
    props = obs.obs_properties_create()
    presets = properties.preset_names()
    for scene in obs.obs_frontend_get_scene_names() or []:
        prop = obs.obs_properties_add_list(props, scenes.scene_key(scene), f"Scene: {scene}",
                                           obs.OBS_COMBO_TYPE_LIST, obs.OBS_COMBO_FORMAT_STRING)
        obs.obs_property_list_add_string(prop, "(each filter's own preset)", "")
        obs.obs_property_list_add_string(prop, "Swap off", scenes.SWAP_OFF)
        for name in presets:
            obs.obs_property_list_add_string(prop, name, name)
        obs.obs_property_set_long_description(
            prop, "Every FaceFusion Live filter in this scene switches to this preset when the scene goes "
                  "live. A filter whose own 'Face preset' is set keeps its own.")
    if not presets:
        obs.obs_properties_add_text(props, "no_presets", "No presets yet: run 'facefusion-obs presets add NAME "
                                    "PHOTO'", obs.OBS_TEXT_INFO)
    return props


def script_update(settings: Any) -> None:
    try:
        state = _state()
        state.script_settings = settings
        if state.impl is not None and state.instances:
            state.impl.apply_scene_mapping()
    except Exception:
        log(f"script_update failed:\n{traceback.format_exc()}")


def script_save(settings: Any) -> None:
    try:
        for name, (hotkey_id, _) in _state().hotkeys.items():
            bindings = obs.obs_hotkey_save(hotkey_id)
            obs.obs_data_set_array(settings, f"hotkey.{name}", bindings)
            obs.obs_data_array_release(bindings)
    except Exception:
        log(f"script_save failed:\n{traceback.format_exc()}")


def script_unload() -> None:
    try:
        state = _state()
        for hotkey_id, _ in state.hotkeys.values():
            obs.obs_hotkey_unregister(hotkey_id)
        state.hotkeys.clear()
        state.script_settings = None
        sup, state.supervisor = state.supervisor, None
        if sup is not None:
            sup.stop(timeout=1.0)
        log("script unloaded: worker stopped; remaining filters pass frames through")
    except Exception:
        log(f"script_unload failed:\n{traceback.format_exc()}")
