"""Per-scene face presets and the hotkeys' effects on a filter's settings. Pure logic, no OBS calls.

The mapping lives in the script's settings (saved with the scene collection) as one key per scene,
``scene_preset:<scene name>``, whose value is a preset name, :data:`SWAP_OFF`, or empty (the
filter decides). A filter's own preset always wins over its scene's.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from facefusion_obs.config import MATTING_MODES

KEY_PREFIX = "scene_preset:"
SWAP_OFF = "::swap-off"


def scene_key(scene: str) -> str:
    return KEY_PREFIX + scene


def mapping_from_settings(settings: Mapping[str, Any]) -> dict[str, str]:
    """scene name -> choice, for every non-empty ``scene_preset:`` key (deleted scenes included)."""
    return {k[len(KEY_PREFIX):]: v for k, v in settings.items()
            if k.startswith(KEY_PREFIX) and isinstance(v, str) and v}


def choice_for(mapping: Mapping[str, str], scene: str, presets: Collection[str] | None,
               log: Callable[[str], None]) -> str | None:
    """The scene's choice, or None. A preset the worker does not list is ignored, with a note;
    with ``presets`` None (no worker has said yet) the choice stands and the worker judges it."""
    choice = mapping.get(scene)
    if choice and choice != SWAP_OFF and presets is not None and choice not in presets:
        log(f"scene {scene!r} is mapped to preset {choice!r}, which no longer exists: ignored")
        return None
    return choice or None


def stale_scenes(mapping: Mapping[str, str], scenes: Collection[str]) -> list[str]:
    """Mapped scenes that no longer exist (deleted, or renamed while the script was not loaded)."""
    return sorted(set(mapping) - set(scenes))


def effective_options(own: Mapping[str, Any], scene_choice: str | None) -> dict[str, Any]:
    """What the worker should use: the filter's options with its scene's preset filled in."""
    options = dict(own)
    if own.get("preset") or scene_choice is None:
        return options
    if scene_choice == SWAP_OFF:
        options["swap_enabled"] = False
    else:
        options["preset"] = scene_choice
    return options


def cycle_preset(current: str, presets: list[str], step: int) -> str:
    """The next (step=1) or previous (step=-1) preset, wrapping around; the first if none is current."""
    if not presets:
        return current
    if current not in presets:
        return presets[0] if step > 0 else presets[-1]
    return presets[(presets.index(current) + step) % len(presets)]


def toggled_matting(current: str, last_on: str) -> str:
    """Off becomes the last mode that was on (chroma by default); anything else becomes off."""
    if current != "off":
        return "off"
    return last_on if last_on in MATTING_MODES and last_on != "off" else "chroma"
