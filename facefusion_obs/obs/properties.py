"""The filter's properties dialog and settings, generated from ``config.OPTIONS``.

Settings that fail validation are refused field by field with a logged reason, and the last good
value of that field stays in force: a typo in a dialog never stops the stream.

What can be chosen comes from the worker's ``catalog`` message (see ``worker/catalog.py``): the
engines that can run (and, for one that cannot, why and the command that fixes it) and the presets
the worker accepts. This side keeps no rules of its own about models or presets, so the dialog and
the worker cannot disagree. Pure functions of the catalog; no OBS calls but through ``api``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from facefusion_obs.config import (
    GROUPS,
    KEY_COLOR_PRESETS,
    OPTIONS,
    OptionError,
)

STATUS_KEY = "status"
KEY_COLOR_CUSTOM = "key_color_custom"  # the colour picker; used when key_color is "custom"
_CUSTOM = "custom"


def _b(text: str) -> bytes:
    return text.encode("utf-8")


Choices = dict[str, list[tuple[str, str]]]  # option -> [(value, why it is disabled or "")]


def choices_from_catalog(catalog: dict[str, Any] | None, current_preset: str) -> Choices:
    """The engine and preset choices the dialog offers, exactly as the worker advertised them.

    Without a catalog (no worker has spoken yet) nothing is disabled and only the filter's own
    preset is listed, so opening the dialog never loses a setting. A chosen preset that the worker
    does not accept stays listed, disabled, so the dialog shows what is set and why it is not used.
    """
    engine = next(o for o in OPTIONS if o.key == "engine")
    if catalog is None:
        return {"engine": [(e, "") for e in engine.choices],
                "preset": [("", ""), *([(current_preset, "")] if current_preset else [])]}
    why = {e["name"]: f"{e['reason']}; fix: {e['fix']}" if e["fix"] else e["reason"]
           for e in catalog["engines"] if not e["available"]}
    presets = [(name, "") for name in catalog["presets"]]
    if current_preset and current_preset not in catalog["presets"]:
        presets.append((current_preset, "not a usable preset: see the status line"))
    return {"engine": [(e, why.get(e, "")) for e in engine.choices], "preset": [("", ""), *presets]}


def catalog_presets(catalog: dict[str, Any] | None) -> list[str] | None:
    """The presets the worker accepts, or None while no worker has said."""
    return None if catalog is None else list(catalog["presets"])


def set_defaults(api: SimpleNamespace, settings: int) -> None:
    for option in OPTIONS:
        key = _b(option.key)
        if option.kind == "bool":
            api.obs_data_set_default_bool(settings, key, option.default)
        elif option.kind == "float":
            api.obs_data_set_default_double(settings, key, option.default)
        elif option.kind == "int":
            api.obs_data_set_default_int(settings, key, option.default)
        else:
            api.obs_data_set_default_string(settings, key, _b(str(option.default)))
    api.obs_data_set_default_int(settings, _b(KEY_COLOR_CUSTOM), 0xFF00FF00)  # opaque green, ABGR


def read_options(
    api: SimpleNamespace, settings: int, previous: dict[str, Any], log: Callable[[str], None]
) -> dict[str, Any]:
    """Settings -> validated options. A field that fails keeps its previous value, and is logged."""
    out = dict(previous)
    for option in OPTIONS:
        key = _b(option.key)
        if option.kind == "bool":
            raw: Any = api.obs_data_get_bool(settings, key)
        elif option.kind == "float":
            raw = api.obs_data_get_double(settings, key)
        elif option.kind == "int":
            raw = api.obs_data_get_int(settings, key)
        else:
            raw = (api.obs_data_get_string(settings, key) or b"").decode("utf-8", "replace")
        if option.kind == "key_color" and raw == _CUSTOM:
            abgr = api.obs_data_get_int(settings, _b(KEY_COLOR_CUSTOM))
            raw = f"#{abgr & 0xFF:02X}{(abgr >> 8) & 0xFF:02X}{(abgr >> 16) & 0xFF:02X}"
        try:
            out[option.key] = option.validate(raw)
        except OptionError as exc:
            log(f"setting refused, keeping {out.get(option.key)!r}: {exc}")
    return out


def build(api: SimpleNamespace, gs: SimpleNamespace, status: str, buttons: dict[str, tuple[str, Any]],
          choices: Choices) -> int:
    """Build the dialog: status first, then one group per ``config.GROUPS``, then buttons.

    ``buttons`` maps a property name to (label, BUTTON_CLICKED callback object kept alive by caller).
    ``choices`` (from ``choices_from_catalog``) lists the engine and preset values, each with why it
    is disabled (shown in place) or "".
    """
    props = api.obs_properties_create()
    # No long description here: OBS 29 would show it in place of the status text.
    api.obs_properties_add_text(props, _b(STATUS_KEY), _b(status), gs.OBS_TEXT_INFO)
    for group in GROUPS:
        sub = api.obs_properties_create()
        for option in (o for o in OPTIONS if o.group == group):
            _add(api, gs, sub, option, choices)
        api.obs_properties_add_group(props, _b(f"group_{group.lower()}"), _b(group), gs.OBS_GROUP_NORMAL, sub)
    for name, (label, callback) in buttons.items():
        api.obs_properties_add_button(props, _b(name), _b(label), callback)
    return props


def _add(api: SimpleNamespace, gs: SimpleNamespace, props: int, option: Any, choices: Choices) -> None:
    key, label = _b(option.key), _b(option.label)
    if option.kind == "bool":
        prop = api.obs_properties_add_bool(props, key, label)
    elif option.kind == "float":
        prop = api.obs_properties_add_float_slider(
            props, key, label, option.minimum, option.maximum, option.step or 0.01
        )
    elif option.kind == "int":
        prop = api.obs_properties_add_int_slider(
            props, key, label, int(option.minimum), int(option.maximum), int(option.step or 1)
        )
    elif option.kind in ("choice", "key_color") or option.key == "preset":
        prop = api.obs_properties_add_list(
            props, key, label, gs.OBS_COMBO_TYPE_LIST, gs.OBS_COMBO_FORMAT_STRING
        )
        if option.key in choices:
            values = choices[option.key]
        elif option.kind == "key_color":
            values = [(v, "") for v in (*KEY_COLOR_PRESETS, _CUSTOM)]
        else:
            values = [(v, "") for v in option.choices]
        for value, why in values:
            index = api.obs_property_list_add_string(
                prop, _b(f"{value} ({why})" if why else value or "(none)"), _b(value))
            if why:
                api.obs_property_list_item_disable(prop, index, True)
        if option.kind == "key_color":
            picker = api.obs_properties_add_color(props, _b(KEY_COLOR_CUSTOM), _b("Custom key colour"))
            api.obs_property_set_long_description(picker, _b("Used when Key colour is 'custom'."))
    elif option.key == "cover_image":  # a file picker: the privacy cover's still image
        prop = api.obs_properties_add_path(props, key, label, gs.OBS_PATH_FILE,
                                           b"Images (*.png *.jpg *.jpeg *.bmp);;All files (*.*)", None)
    else:
        prop = api.obs_properties_add_text(props, key, label, gs.OBS_TEXT_DEFAULT)
    api.obs_property_set_long_description(prop, _b(option.tooltip))
