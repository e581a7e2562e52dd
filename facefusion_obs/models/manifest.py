"""The model manifest: what each model is, where it comes from and which bytes are acceptable.

The manifest is the single source of truth for hashes. It is validated when read, so a typo in a
hand-edited manifest is reported with the field that is wrong instead of surfacing as a failed load.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facefusion_obs.config import MODEL_MANIFEST

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SAFE_FILE = re.compile(r"^[A-Za-z0-9_.-]+$")
SOURCES = ("pypi", "url")
MANIFEST_ENV = "FACEFUSION_OBS_MANIFEST"


class ManifestError(ValueError):
    """The manifest file is malformed; the message names the model and field."""


@dataclass(frozen=True)
class WheelSpec:
    """A pinned wheel that is downloaded for one fixed platform, so every host gets the same bytes."""

    requirement: str
    filename: str
    sha256: str
    size: int
    platform: str
    python_version: str
    license: str


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str
    file: str
    sha256: str | None
    license: str
    size: int | None = None
    runtime: str = ""
    wheel: WheelSpec | None = None
    member: str | None = None
    url: str | None = None
    archive_member: str | None = None
    requires_license_acceptance: bool = False
    license_url: str | None = None
    note: str = ""
    input: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)


def _need(entry: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in entry:
        raise ManifestError(f"{where}: missing field {key!r}")
    value = entry[key]
    if not isinstance(value, kind):
        raise ManifestError(f"{where}: field {key!r} has invalid value {value!r}")
    return value


def _check_sha(value: Any, where: str, *, nullable: bool) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not _SHA256.match(value):
        raise ManifestError(f"{where}: field 'sha256' must be 64 lowercase hex digits, got {value!r}")
    return value


def parse_manifest(data: Any, origin: str = "manifest") -> dict[str, ModelSpec]:
    """Validate manifest JSON and return specs by name."""
    if not isinstance(data, dict) or data.get("version") != 1:
        raise ManifestError(f"{origin}: expected an object with \"version\": 1")
    wheels: dict[str, WheelSpec] = {}
    for req, w in _need(data, "wheels", dict, origin).items():
        where = f"{origin}: wheel {req!r}"
        if not isinstance(w, dict):
            raise ManifestError(f"{where}: must be an object")
        wheels[req] = WheelSpec(
            requirement=req, filename=_need(w, "filename", str, where),
            sha256=_check_sha(w.get("sha256"), where, nullable=False) or "",
            size=_need(w, "size", int, where), platform=_need(w, "platform", str, where),
            python_version=_need(w, "python_version", str, where), license=_need(w, "license", str, where))
    specs: dict[str, ModelSpec] = {}
    for entry in _need(data, "models", list, origin):
        if not isinstance(entry, dict):
            raise ManifestError(f"{origin}: every model must be an object, got {entry!r}")
        name = _need(entry, "name", str, origin)
        where = f"{origin}: model {name!r}"
        if name in specs:
            raise ManifestError(f"{where}: listed twice")
        source = _need(entry, "source", str, where)
        if source not in SOURCES:
            raise ManifestError(f"{where}: field 'source' is {source!r}, not one of {SOURCES}")
        file = _need(entry, "file", str, where)
        if not _SAFE_FILE.match(file):
            raise ManifestError(f"{where}: field 'file' {file!r} must be a plain file name")
        size = entry.get("size")
        if size is not None and (not isinstance(size, int) or size <= 0):
            raise ManifestError(f"{where}: field 'size' has invalid value {size!r}")
        common = dict(
            name=name, source=source, file=file, size=size,
            sha256=_check_sha(entry.get("sha256"), where, nullable=(source == "url")),
            license=_need(entry, "license", str, where), runtime=entry.get("runtime", ""),
            note=entry.get("note", ""), input=entry.get("input", {}), outputs=entry.get("outputs", {}),
            license_url=entry.get("license_url"),
            requires_license_acceptance=bool(entry.get("requires_license_acceptance", False)))
        if source == "pypi":
            req = _need(entry, "wheel", str, where)
            if req not in wheels:
                raise ManifestError(f"{where}: field 'wheel' names unknown wheel {req!r}")
            specs[name] = ModelSpec(**common, wheel=wheels[req], member=_need(entry, "member", str, where))
        else:
            url = _need(entry, "url", str, where)
            if not url.startswith(("https://", "http://")):
                raise ManifestError(f"{where}: field 'url' {url!r} is not an http(s) address")
            specs[name] = ModelSpec(**common, url=url, archive_member=entry.get("archive_member"))
    return specs


def load_manifest(path: Path | None = None) -> dict[str, ModelSpec]:
    """Specs by name from ``path``, read afresh: the model pool holds the parsed manifest for as long as
    it runs, so there is no module-level cache to go stale.

    The default is ``$FACEFUSION_OBS_MANIFEST`` when set (a manifest of your own, e.g. the tests' copy
    that vouches for generated stand-ins), else the project's ``config.MODEL_MANIFEST``.
    """
    path = Path(path or os.environ.get(MANIFEST_ENV) or MODEL_MANIFEST)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"model manifest {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"model manifest {path} is not valid JSON: {exc}") from None
    return parse_manifest(data, origin=str(path))
