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
import os
import threading
import time
import traceback
from types import SimpleNamespace
from typing import Any

import obspython as obs  # only importable inside OBS

from facefusion_obs.config import FILTER_ID, FILTER_NAME, default_options, locations
from facefusion_obs.obs import libobs, properties
from facefusion_obs.obs.filter import FaceFusionFilter
from facefusion_obs.obs.supervisor import Supervisor, configured_python

__all__ = ["script_description", "script_load", "script_unload"]

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
        f = _state().instances.get(handle)
        status = f.status() if f is not None else "Worker: not started"
        return properties.build(
            self.api,
            self.gs,
            status,
            {"restart_worker": ("Restart worker", _state().buttons["restart_worker"])},
        )

    def restart_worker(self, props: int, prop: int, data: int) -> bool:
        sup = _supervisor()
        if sup is not None:
            sup.restart("restart requested from the properties dialog")
        return False

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
    state.buttons["restart_worker"] = libobs.BUTTON_CLICKED(_trampoline("restart_worker", False))
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
        if state.supervisor is None:
            state.supervisor = Supervisor(configured_python(), log=log)
        if state.instances:  # a reload with filters already in the scene
            state.supervisor.start()
    except Exception:
        log(f"script_load failed:\n{traceback.format_exc()}")


def script_unload() -> None:
    try:
        state = _state()
        sup, state.supervisor = state.supervisor, None
        if sup is not None:
            sup.stop(timeout=1.0)
        log("script unloaded: worker stopped; remaining filters pass frames through")
    except Exception:
        log(f"script_unload failed:\n{traceback.format_exc()}")
