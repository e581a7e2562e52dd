"""Registration of the "FaceFusion Live" source type and the C trampolines OBS calls.

OBS unloads a script *before* it destroys the script's filters, and refuses to register a source id
twice. So everything C holds a pointer to (the source info struct, the ctypes callbacks, the table of
instances) lives on ``builtins`` and outlives this module; the trampolines stay as small as possible
and look the current implementation up at call time. No exception may cross into C: every trampoline
catches, and hands the failure to the error log (once per distinct error, then counted).
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from facefusion_obs.config import FILTER_ID, FILTER_NAME
from facefusion_obs.obs import libobs
from facefusion_obs.obs.status import CallTiming, ErrorLog, log

BUTTONS = ("restart_worker", "open_presets")


@dataclass
class ScriptState:
    """What survives a script reload: C-visible objects, the live filters and the supervisor.

    ``impl`` is the object the trampolines call (``impl.<part>.<method>``), None only before the first
    load. It stays across an unload: OBS destroys (and after a scene-collection switch re-creates) the
    filters *after* unloading the script, and a destroy that found no implementation would leave a
    freed source in ``instances``. ``loaded`` tells the lifecycle whether the worker may run.
    """

    impl: Any = None
    loaded: bool = False
    registered: bool = False
    instances: dict[int, Any] = field(default_factory=dict)
    next_handle: int = 0
    supervisor: Any = None
    setup: Any = None  # config.WorkerSetup: the worker's interpreter and folders, or None
    keepalive: list[Any] = field(default_factory=list)
    api: Any = None
    gs: Any = None
    buttons: dict[str, Any] = field(default_factory=dict)
    script_settings: Any = None
    hotkeys: dict[str, Any] = field(default_factory=dict)
    panic: bool = False  # "FaceFusion: cover now": every filter draws the cover (filters copy it)
    audio: Any = None  # audiosync.AudioHold: the audio source kept in sync now, or None
    audio_wanted: str = ""  # the "Keep audio in sync with" setting, read on the UI thread
    audio_timer: Any = None  # the trampoline obs.timer_add calls (kept to remove it on unload)
    audio_task: Any = None  # libobs.TASK: the UI-thread half of the audio sync (outlives unloads)
    audio_queued: bool = False  # one audio_task is queued and has not run yet
    shutting_down: bool = False  # OBS announced its exit (OBS_FRONTEND_EVENT_SCRIPTING_SHUTDOWN)
    errors: ErrorLog = field(default_factory=ErrorLog)
    timings: dict[str, CallTiming] = field(default_factory=dict)


def script_state() -> ScriptState:
    """The one object that survives script reloads (see module docstring)."""
    state = getattr(builtins, "_facefusion_obs_state", None)
    if not isinstance(state, ScriptState):  # first load (or one from an older layout)
        state = ScriptState()
        builtins._facefusion_obs_state = state
    return state


def _call(part: str, method: str, args: tuple[Any, ...], fallback: Any) -> Any:
    state = script_state()
    impl = state.impl
    if impl is None:
        return fallback
    t0 = time.perf_counter()
    try:
        return getattr(getattr(impl, part), method)(*args)
    except Exception as exc:
        state.errors.report(method, exc)
        return fallback
    finally:
        state.timings.setdefault(method, CallTiming()).add((time.perf_counter() - t0) * 1e3)


def trampoline(part: str, method: str, fallback: Any = None) -> Callable[..., Any]:
    """A callback for C or obspython that calls ``impl.<part>.<method>`` and never raises."""

    def call(*args: Any) -> Any:
        return _call(part, method, args, fallback)

    return call


def bound_trampoline(part: str, method: str, *bound: Any) -> Callable[..., None]:
    """Like ``trampoline``, with leading arguments fixed (a hotkey's name)."""

    def call(*args: Any) -> None:
        _call(part, method, (*bound, *args), None)

    return call


def _render_trampoline(handle: int, effect: int) -> None:
    # A render that fails, or that finds no implementation, must still draw: skip the filter so the
    # source shows unchanged; unless the streamer's face must stay hidden (privacy on, or the panic
    # key): then that frame draws nothing at all rather than the camera.
    state = script_state()
    drawn = _call("filters", "video_render", (handle, effect), False)
    if drawn:
        return
    f = state.instances.get(handle)
    if f is not None and state.api is not None and not _must_hide(f):
        with contextlib.suppress(Exception):
            state.api.obs_source_skip_video_filter(f.source)


def _must_hide(f: Any) -> bool:
    """Never raises: a filter whose state cannot be read counts as hiding (fails closed)."""
    try:
        return bool(f.options["privacy"] or f.panic)
    except Exception:
        return True


def register(state: ScriptState) -> None:
    """Register the filter type once per OBS process; later loads reuse it."""
    name = ctypes.create_string_buffer(FILTER_NAME.encode())
    callbacks = {
        "get_name": libobs.GET_NAME(lambda type_data: ctypes.addressof(name)),
        "create": libobs.CREATE(trampoline("filters", "create")),
        "destroy": libobs.DESTROY(trampoline("filters", "destroy")),
        "get_defaults": libobs.GET_DEFAULTS(trampoline("filters", "get_defaults")),
        "get_properties": libobs.GET_PROPERTIES(trampoline("dialog", "get_properties")),
        "update": libobs.UPDATE(trampoline("filters", "update")),
        "video_tick": libobs.VIDEO_TICK(trampoline("filters", "video_tick")),
        "video_render": libobs.VIDEO_RENDER(_render_trampoline),
    }
    info = libobs.ObsSourceInfo()
    info.id = FILTER_ID.encode()
    info.type = state.gs.OBS_SOURCE_TYPE_FILTER
    info.output_flags = state.gs.OBS_SOURCE_VIDEO
    for name_, fn in callbacks.items():
        setattr(info, name_, fn)
    # Buttons outlive any one properties dialog, so their callbacks live here too.
    for button in BUTTONS:
        state.buttons[button] = libobs.BUTTON_CLICKED(trampoline("dialog", button, False))
    state.keepalive.extend([name, info, *callbacks.values()])
    state.api.obs_register_source_s(ctypes.byref(info), ctypes.sizeof(info))
    state.registered = True
    log(f"registered filter {FILTER_ID!r} ({FILTER_NAME})")
