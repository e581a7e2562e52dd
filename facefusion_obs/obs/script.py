"""The OBS script hooks: load, unload, settings and the Scripts window. Everything else is delegated.

The OBS side, by job: ``registration`` (the source type and the C trampolines), ``lifecycle`` (filter
create/update/destroy, tick and render), ``filter`` (one filter's per-frame path), ``dialog`` (the
properties dialogs), ``frontend`` (scenes and hotkeys), ``status`` (logging), ``supervisor`` (the
worker process). Standard library only: OBS's embedded Python has no numpy.

Tools → Scripts → Reload runs ``script_unload`` and then this package's ``__init__`` again, but
Python keeps the already-imported modules under ``facefusion_obs/``: Reload re-reads the settings
and the installer's worker.json, and live filters keep running on the code loaded at OBS's start. After
updating the project, restart OBS to run the new code.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import obspython as obs  # only importable inside OBS

from facefusion_obs.config import PROJECT_ROOT, worker_setup
from facefusion_obs.obs import libobs
from facefusion_obs.obs.dialog import Dialog
from facefusion_obs.obs.frontend import (
    AUDIO_TICK_MS,
    Frontend,
    audio_setting,
    register_hotkeys,
    save_hotkeys,
    unregister_hotkeys,
)
from facefusion_obs.obs.lifecycle import Filters
from facefusion_obs.obs.registration import ScriptState, register, script_state, trampoline
from facefusion_obs.obs.status import log
from facefusion_obs.obs.supervisor import Supervisor

__all__ = ["script_description", "script_load", "script_properties", "script_save", "script_unload",
           "script_update"]


def _implementation(state: ScriptState) -> SimpleNamespace:
    """What the trampolines call: ``impl.filters``, ``impl.dialog``, ``impl.frontend``."""
    return SimpleNamespace(filters=Filters(state), dialog=Dialog(state), frontend=Frontend(state))


def _guarded(hook: str, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:
        script_state().errors.report(hook, exc)
        return None


def script_description() -> str:
    setup = worker_setup(PROJECT_ROOT)
    where = f"{setup.python} (from {setup.origin})" if setup is not None else (
        "not configured: run 'python3 installer/install.py'")
    return ("<b>FaceFusion Live</b>: live face swap and green-screen matting as a video filter.<br>"
            "Add it to a camera source: right-click the source → Filters → Effect Filters → + → "
            f"FaceFusion Live.<br>Worker interpreter: {where}")


def _load(settings: Any) -> None:
    state = script_state()
    if state.api is None:
        state.api, state.gs = libobs.load(), libobs.enums(obs)
    state.impl = _implementation(state)
    state.loaded = True
    if not state.registered:
        register(state)
    else:
        log("script reloaded: settings re-read; code changes under facefusion_obs/ take effect when OBS restarts")
    state.script_settings = settings
    obs.obs_frontend_add_event_callback(trampoline("frontend", "on_frontend_event"))
    obs.signal_handler_connect(obs.obs_get_signal_handler(), "source_rename",
                               trampoline("frontend", "on_source_rename"))
    register_hotkeys(state, settings)
    state.audio_wanted = audio_setting(settings)
    if state.audio_timer is None:
        state.audio_timer = trampoline("frontend", "audio_sync_tick")
        state.audio_task = libobs.TASK(trampoline("frontend", "audio_sync_ui"))
    state.audio_queued = False  # a hand-over lost across a reload must not stop the audio sync
    obs.timer_add(state.audio_timer, AUDIO_TICK_MS)
    state.setup = worker_setup(PROJECT_ROOT)
    python = state.setup.python if state.setup is not None else None
    env = state.setup.env() if state.setup is not None else {}
    if state.supervisor is None:
        state.supervisor = Supervisor(python, log=log, env=env)
    else:  # a reload: the next worker start uses what the installer recorded now
        state.supervisor.python, state.supervisor.env = python, dict(env)
    state.supervisor.set_live(len(state.instances))


def _update(settings: Any) -> None:
    state = script_state()
    state.script_settings = settings
    state.audio_wanted = audio_setting(settings)  # the audio sync timer follows within a tick
    if state.impl is not None and state.instances:
        state.impl.frontend.apply_scene_mapping()


def _unload() -> None:
    state = script_state()
    unregister_hotkeys(state)
    if state.audio_timer is not None:
        obs.timer_remove(state.audio_timer)
    if state.impl is not None:  # the audio source gets its own offset back (a failure stops nothing else)
        _guarded("script_unload", state.impl.frontend.release_audio, True)
    state.script_settings = None
    state.loaded = False  # filters pass frames through until a load counts them again
    if state.supervisor is not None:
        state.supervisor.close()  # the reconcile thread stops the worker; nothing here waits for it
    log("script unloaded: worker stopping; remaining filters pass frames through")


def script_load(settings: Any) -> None:
    _guarded("script_load", _load, settings)


def script_properties() -> Any:
    state = script_state()
    if state.impl is None:
        return obs.obs_properties_create()
    return _guarded("script_properties", state.impl.dialog.script_properties) or obs.obs_properties_create()


def script_update(settings: Any) -> None:
    _guarded("script_update", _update, settings)


def script_save(settings: Any) -> None:
    _guarded("script_save", save_hotkeys, script_state(), settings)


def script_unload() -> None:
    _guarded("script_unload", _unload)
