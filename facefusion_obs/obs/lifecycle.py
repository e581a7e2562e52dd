"""Filter lifecycle: create, update, destroy, and the per-frame tick and render.

Create and destroy only change the table of live filters and tell the supervisor how many there are
(``Supervisor.set_live``); the supervisor's reconcile thread starts or stops the worker. So none of
these callbacks waits on the worker or on a lock held while it starts or stops.
"""

from __future__ import annotations

import os
import time
from typing import Any

from facefusion_obs.config import default_options
from facefusion_obs.obs import properties
from facefusion_obs.obs.filter import FaceFusionFilter
from facefusion_obs.obs.registration import ScriptState
from facefusion_obs.obs.status import log, timing_summary

STATS_LOG_EVERY_S = float(os.environ.get("FACEFUSION_OBS_STATS_EVERY", "30"))
TIMED_CALLBACKS = ("create", "destroy", "update", "get_properties", "video_tick", "video_render")


class Filters:
    def __init__(self, state: ScriptState) -> None:
        self.state = state
        self.api, self.gs = state.api, state.gs
        self._last_log = 0.0
        self._last_state: dict[int, str] = {}

    def _supervisor(self) -> Any:
        return self.state.supervisor

    def _demand_changed(self) -> None:
        # While the script is unloaded (a scene-collection switch unloads it, then destroys and
        # re-creates every filter) the table still follows OBS, but the worker stays closed until the
        # next load counts the filters again.
        sup = self.state.supervisor
        if sup is not None and self.state.loaded:
            sup.set_live(len(self.state.instances))

    def create(self, settings: int, source: int) -> int:
        state = self.state
        options = properties.read_options(self.api, settings, default_options(), log)
        state.next_handle += 1
        handle = state.next_handle
        state.instances[handle] = FaceFusionFilter(source, self.api, self.gs, self._supervisor, handle, options)
        state.instances[handle].panic = state.panic  # a filter added while the panic key is on is covered too
        self._demand_changed()
        return handle

    def destroy(self, handle: int) -> None:
        f = self.state.instances.pop(handle, None)
        self._last_state.pop(handle, None)
        if f is not None:
            f.destroy()
        self._demand_changed()

    def update(self, handle: int, settings: int) -> None:
        f = self.state.instances.get(handle)
        if f is not None:
            f.update(properties.read_options(self.api, settings, f.options, log))

    def get_defaults(self, settings: int) -> None:
        properties.set_defaults(self.api, settings)

    def video_tick(self, handle: int, seconds: float) -> None:
        f = self.state.instances.get(handle)
        if f is None:
            return
        sup = self.state.supervisor
        # Refresh an open properties dialog when the worker's state or catalog changes, not every frame.
        current = f"{sup.state}:{id(sup.catalog)}" if sup is not None else "stopped"
        if self._last_state.get(handle) != current:
            self._last_state[handle] = current
            self.api.obs_source_update_properties(f.source)
        now = time.monotonic()
        if now - self._last_log >= STATS_LOG_EVERY_S:
            self._last_log = now
            audio = self.state.impl.dialog.audio_status() if self.state.impl is not None else ""
            for i in self.state.instances.values():
                log(f"{i.status()} | {i.cost_summary()}" + (f" | {audio}" if audio else ""))
            log(timing_summary(self.state.timings, TIMED_CALLBACKS))

    def video_render(self, handle: int, effect: int) -> bool:
        """True when the filter drew (itself or a pass-through); False sends the caller to the fallback."""
        f = self.state.instances.get(handle)
        if f is None:
            return False
        f.render()
        return True
