"""The properties dialogs: the filter's (status, options, buttons) and the Scripts window's scene list.

Every choice shown comes from the worker's catalog (``Supervisor.catalog``); see ``properties.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import obspython as obs  # only importable inside OBS

from facefusion_obs.config import locations
from facefusion_obs.obs import audiosync, properties, scenes
from facefusion_obs.obs.registration import ScriptState
from facefusion_obs.obs.status import log

AUDIO_SYNC_KEY = "audio_sync_source"  # script setting: the audio source kept in sync ("" = off)


class Dialog:
    def __init__(self, state: ScriptState) -> None:
        self.state = state
        self.api, self.gs = state.api, state.gs

    def _catalog(self) -> dict[str, Any] | None:
        sup = self.state.supervisor
        return sup.catalog if sup is not None else None

    def get_properties(self, handle: int) -> int:
        f = self.state.instances.get(handle)
        status = f.status() if f is not None else "Worker: not started"
        audio = self.audio_status()
        status += f" | {audio}" if audio else ""
        choices = properties.choices_from_catalog(self._catalog(), f.options["preset"] if f is not None else "")
        buttons = {"open_presets": ("Open presets folder", self.state.buttons["open_presets"]),
                   "restart_worker": ("Restart worker", self.state.buttons["restart_worker"])}
        return properties.build(self.api, self.gs, status, buttons, choices)

    def restart_worker(self, props: int, prop: int, data: int) -> bool:
        sup = self.state.supervisor
        if sup is not None:
            sup.restart("restart requested from the properties dialog")
        return True  # redraw: the status line changes

    def open_presets(self, props: int, prop: int, data: int) -> bool:
        setup = self.state.setup
        folder = setup.presets_dir if setup is not None else locations().presets_dir
        opener = {"win32": None, "darwin": ["open"]}.get(sys.platform, ["xdg-open"])
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # faces are personal data
            if opener is None:
                os.startfile(folder)  # type: ignore[attr-defined]  # Windows only
            else:
                subprocess.Popen([*opener, str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError as exc:
            log(f"cannot open {folder}: {exc}")
        return False

    def script_properties(self) -> Any:
        """The Scripts window: a face preset per scene (a filter's own preset still wins)."""
        props = obs.obs_properties_create()
        self._audio_sync_property(props)
        presets = properties.catalog_presets(self._catalog())
        mapping = scenes.mapping_from_settings(script_settings_dict(self.state))
        for scene in obs.obs_frontend_get_scene_names() or []:
            prop = obs.obs_properties_add_list(props, scenes.scene_key(scene), f"Scene: {scene}",
                                               obs.OBS_COMBO_TYPE_LIST, obs.OBS_COMBO_FORMAT_STRING)
            obs.obs_property_list_add_string(prop, "(each filter's own preset)", "")
            obs.obs_property_list_add_string(prop, "Swap off", scenes.SWAP_OFF)
            chosen = mapping.get(scene, "")
            listed = presets if presets is not None else ([chosen] if chosen and chosen != scenes.SWAP_OFF else [])
            for name in listed:
                obs.obs_property_list_add_string(prop, name, name)
            obs.obs_property_set_long_description(
                prop, "Every FaceFusion Live filter in this scene switches to this preset when the scene goes "
                      "live. A filter whose own 'Face preset' is set keeps its own.")
        if presets is None:
            obs.obs_properties_add_text(props, "no_catalog", "The preset list appears once the worker runs "
                                        "(add a FaceFusion Live filter to a source).", obs.OBS_TEXT_INFO)
        elif not presets:
            obs.obs_properties_add_text(props, "no_presets", "No presets yet: run 'facefusion-obs presets add NAME "
                                        "PHOTO --consent \"WHO, WHEN, HOW\"'", obs.OBS_TEXT_INFO)
        return props

    def audio_status(self) -> str:
        """The audio sync part of the status lines ("" when the setting is off)."""
        return audiosync.status_text(self.state.audio, self.state.audio_wanted)  # any thread: no OBS data read

    def _audio_sync_property(self, props: Any) -> None:
        """"Keep audio in sync with": every source that has audio, and the offset in use now."""
        names = []
        sources = obs.obs_enum_sources() or []
        try:
            for source in sources:
                if obs.obs_source_get_output_flags(source) & obs.OBS_SOURCE_AUDIO:
                    names.append(obs.obs_source_get_name(source))
        finally:
            obs.source_list_release(sources)
        prop = obs.obs_properties_add_list(props, AUDIO_SYNC_KEY, "Keep audio in sync with",
                                           obs.OBS_COMBO_TYPE_LIST, obs.OBS_COMBO_FORMAT_STRING)
        obs.obs_property_list_add_string(prop, "(off)", "")
        wanted = script_settings_dict(self.state).get(AUDIO_SYNC_KEY, "")
        wanted = wanted if isinstance(wanted, str) else ""
        for name in sorted(set(names) | ({wanted} if wanted else set())):
            obs.obs_property_list_add_string(prop, name, name)
        obs.obs_property_set_long_description(
            prop, "The face swap delays the video by its processing time. This sets the audio source's sync "
                  "offset to that delay (its own offset plus the measured latency, rounded to a frame), moves it "
                  "only when the latency has changed by more than a frame for a few seconds, and puts the "
                  "old offset back when you choose (off) or unload the script.")
        status = self.audio_status()
        if status:
            obs.obs_properties_add_text(props, "audio_sync_status", status, obs.OBS_TEXT_INFO)


def script_settings_dict(state: ScriptState) -> dict[str, Any]:
    """The script's settings as a dict (the scene mapping lives there)."""
    settings = state.script_settings
    if settings is None:
        return {}
    try:
        data = json.loads(obs.obs_data_get_json(settings) or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
