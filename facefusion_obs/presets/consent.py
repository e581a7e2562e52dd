"""The consent of the person a preset pictures: what is recorded, how it is checked, how it is cited.

A preset is someone's face. ``presets add`` records who agreed, when and how (a statement in the
user's words) together with the time it was recorded (UTC), in the preset's ``preset.json``::

    "consent": {"statement": "Jane Doe, 2026-12-01, signed release form", "recorded": "2026-12-04T19:30:00Z"}

The worker and ``process`` refuse a stored preset without it (presets made before consent existed
included), and ``process --source IMAGE`` takes the same statement for a photo. The usage log cites a
consent by :func:`reference` (the time and a short hash of the statement), not by copying the words.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import unicodedata
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from facefusion_obs.presets.names import PresetError

MIN_CHARS = 10  # "yes" says nothing; "who, when, how" needs a few words
MAX_CHARS = 1000
_RECORDED = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
EXAMPLE = '"Jane Doe, 2026-12-01, signed release form"'
HOW = f'say who agreed, when and how, e.g. --consent {EXAMPLE}'


class ConsentMissing(PresetError):
    """A stored preset records no consent; the message says how to add it (``presets consent``)."""

    def __init__(self, preset: str) -> None:
        self.preset = preset
        super().__init__(f"preset {preset!r} records no consent of the person pictured (presets made before "
                         f"consent was recorded have none); add it with: {fix_command(preset)}")


def fix_command(preset: str) -> str:
    """The command that records consent for an existing preset without analysing its photos again."""
    return f'facefusion-obs presets consent {shlex.quote(preset)} "WHO agreed, WHEN, HOW"'


def utc_now() -> str:
    """Now, as the ``recorded`` field stores it (UTC, ISO 8601, to the second)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _control(text: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text)


def check_statement(statement: object) -> str:
    """``statement`` stripped, if it can stand as a consent statement; PresetError says what to write."""
    if not isinstance(statement, str):
        raise PresetError(f"the consent statement must be text: {HOW}")
    text = statement.strip()
    if len(text) < MIN_CHARS:
        raise PresetError(f"the consent statement {text!r} is too short ({len(text)} characters, at least "
                          f"{MIN_CHARS}): {HOW}")
    if len(text) > MAX_CHARS:
        raise PresetError(f"the consent statement is {len(text)} characters, above the limit of {MAX_CHARS}")
    if _control(text):  # one line of plain text: printed by `presets show` and cited in the log
        raise PresetError("the consent statement must be one line of text (no line breaks or control characters)")
    return text


def record(statement: str, recorded: str | None = None) -> dict[str, str]:
    """The ``consent`` field for ``statement`` (checked), recorded now unless ``recorded`` is given."""
    return {"statement": check_statement(statement), "recorded": recorded or utc_now()}


def check_field(value: Any) -> dict[str, str]:
    """``value`` if it is a well-formed ``consent`` field; ValueError says what is wrong (for the schema)."""
    if not isinstance(value, dict) or set(value) != {"statement", "recorded"}:
        raise ValueError("field 'consent' must be an object with exactly 'statement' and 'recorded'")
    try:
        check_statement(value["statement"])
    except PresetError as exc:
        raise ValueError(f"field 'consent': {exc}") from None
    if value["statement"] != value["statement"].strip():
        raise ValueError("field 'consent': the statement has leading or trailing spaces")
    recorded = value["recorded"]
    if not isinstance(recorded, str) or not _RECORDED.fullmatch(recorded):
        raise ValueError(f"field 'consent': 'recorded' = {str(recorded)[:40]!r} is not a UTC time like "
                         "2026-12-04T19:30:00Z")
    try:
        datetime.strptime(recorded, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise ValueError(f"field 'consent': 'recorded' = {recorded!r} is not a real date and time") from None
    return value


def statement_hash(statement: str) -> str:
    """A short hash of a statement: enough to tell statements apart, not enough to stand in for one."""
    return hashlib.sha256(statement.encode("utf-8")).hexdigest()[:12]


def reference(consent: Mapping[str, str]) -> dict[str, str]:
    """How the usage log cites a consent: when it was recorded and a short hash of the statement."""
    return {"recorded": consent["recorded"], "sha256": statement_hash(consent["statement"])}


def of(meta: Mapping[str, Any]) -> dict[str, str] | None:
    """The consent a preset's (checked) ``preset.json`` records, or None."""
    value = meta.get("consent")
    return value if isinstance(value, dict) else None


def require(name: str, meta: Mapping[str, Any]) -> dict[str, str]:
    """The preset's consent; ConsentMissing (with the command that adds it) when it records none."""
    found = of(meta)
    if found is None:
        raise ConsentMissing(name)
    return found
