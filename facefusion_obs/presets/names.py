"""Preset names double as folder names, so only names that are safe on every OS are accepted."""

from __future__ import annotations

import re

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,62}[A-Za-z0-9_-]$|^[A-Za-z0-9]$")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


class PresetError(ValueError):
    """A preset operation failed; the message names the preset, file or field."""


def validate_name(name: object) -> str:
    """Return ``name`` if it is a safe preset name, else raise PresetError saying why."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise PresetError(
            f"invalid preset name {name!r}: use 1-64 letters, digits, spaces, '_', '-' or '.', starting "
            "with a letter or digit and not ending with a space or '.'")
    if ".." in name or name.split(".")[0].strip().lower() in _WINDOWS_RESERVED:
        raise PresetError(f"invalid preset name {name!r}: reserved or ambiguous as a file name")
    return name
