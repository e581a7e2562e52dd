"""Names and the one error type: preset names double as folder names, and the file names that a
preset's ``preset.json`` refers to must stay inside its folder, so both are checked by full match.

Every pattern here is matched with ``re.fullmatch``: ``$`` would let a trailing newline through.
"""

from __future__ import annotations

import re
from pathlib import Path

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 _.-]{0,62}[A-Za-z0-9_-])?")
# what the store itself writes: source-0.r3.png, faces.r3.npz, derived-arcface_w600k_r50.r3.npz
_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}(?:\.[A-Za-z0-9_-]{1,63}){1,3}")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


class PresetError(ValueError):
    """A preset operation failed; the message names the preset, file or field."""


class PresetDamaged(PresetError):
    """A preset's files on disk are damaged: the message names the preset, the file and what is wrong.

    ``file`` and ``reason`` are kept apart for callers that word their own line (the worker's status).
    """

    def __init__(self, preset: str, file: Path | str, reason: str) -> None:
        self.preset, self.file, self.reason = preset, str(file), reason
        super().__init__(f"preset {preset!r} is damaged: {file}: {reason} (repair it with: "
                         f"facefusion-obs presets add {preset!r} PHOTO... --replace --consent \"WHO, WHEN, HOW\")")


def validate_name(name: object) -> str:
    """Return ``name`` if it is a safe preset name, else raise PresetError saying why."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise PresetError(
            f"invalid preset name {name!r}: use 1-64 letters, digits, spaces, '_', '-' or '.', starting "
            "with a letter or digit and not ending with a space or '.'")
    if ".." in name or name.split(".")[0].strip().lower() in _WINDOWS_RESERVED:
        raise PresetError(f"invalid preset name {name!r}: reserved or ambiguous as a file name")
    return name


def is_file_name(value: object) -> bool:
    """True for a plain file name of the kind the store writes: no folder part, no '..', no absolute
    path, no drive, nothing that could lead a reader outside the preset's folder."""
    return isinstance(value, str) and bool(_FILE.fullmatch(value)) and ".." not in value
