"""What a preset's ``preset.json`` and arrays must be. Each check raises ``ValueError`` with the reason;
the store turns it into a PresetDamaged naming the preset and the file.

Checked here, so that nothing damaged reaches an engine: every field's type and range, every file
reference a plain file name inside the preset's folder (never ``../x`` or an absolute path), the
arrays' names, dtypes, shapes and finiteness, and landmarks within reach of their image. A ``consent``
field, where there is one, must be well formed (``consent.check_field``); whether a preset without one
may be used is for its users to decide (the worker and ``process`` refuse it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from facefusion_obs.presets import consent
from facefusion_obs.presets.names import is_file_name

FORMAT = 1
POINTS = 468  # the face mesh's landmarks
MAX_SOURCES = 16  # photos in one preset
MAX_DERIVED = 8  # derived caches in one preset (one per model that derives)
DERIVED_KEY = re.compile(r"[a-z0-9_]{1,40}")
_REACH = 4.0  # landmarks may lie outside their image (a face at the edge), but not past this many sides


def _field(meta: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in meta:
        raise ValueError(f"field {key!r} is missing")
    value = meta[key]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ValueError(f"field {key!r} must be {_kind(kind)}, not {type(value).__name__}")
    if not isinstance(value, kind):
        raise ValueError(f"field {key!r} must be {_kind(kind)}, not {type(value).__name__}")
    return value


def _kind(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    words = {int: "an integer", float: "a number", str: "text", list: "a list", dict: "an object"}
    return " or ".join(dict.fromkeys(words.get(k, k.__name__) for k in kinds))


def _file(meta: Mapping[str, Any], key: str, suffix: str) -> str:
    value = _field(meta, key, str)
    if not is_file_name(value) or not value.endswith(suffix):
        raise ValueError(f"field {key!r} = {value[:100]!r} is not a {suffix} file name inside the preset's folder")
    return value


def check_meta(meta: Any, name: str) -> dict[str, Any]:
    """``meta`` if it is a well-formed format-1 ``preset.json`` for preset ``name``."""
    if not isinstance(meta, dict):
        raise ValueError(f"is not a JSON object but {type(meta).__name__}")
    if meta.get("format") != FORMAT or isinstance(meta.get("format"), bool):
        raise ValueError(f"is not a format-{FORMAT} preset (format {meta.get('format')!r})")
    if _field(meta, "name", str) != name:
        raise ValueError(f"names preset {meta['name'][:100]!r}, not {name!r}")
    if _field(meta, "revision", int) < 0:
        raise ValueError("field 'revision' is negative")
    _field(meta, "created", str)
    _field(meta, "updated", str)
    sources = _field(meta, "sources", list)
    if not 1 <= len(sources) <= MAX_SOURCES:
        raise ValueError(f"field 'sources' must list 1 to {MAX_SOURCES} photos, not {len(sources)}")
    for i, source in enumerate(sources):
        where = f"sources[{i}]"
        if not isinstance(source, dict):
            raise ValueError(f"field {where!r} must be an object")
        try:
            _file(source, "file", ".png")
            _field(source, "original", str)
            if _field(source, "faces_found", int) < 1:
                raise ValueError("field 'faces_found' must be at least 1")
            frontality = _field(source, "frontality", (int, float))
            if not math.isfinite(frontality):
                raise ValueError("field 'frontality' is not finite")
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    primary = _field(meta, "primary", int)
    if not 0 <= primary < len(sources):
        raise ValueError(f"field 'primary' = {primary} is not a source index (0..{len(sources) - 1})")
    _file(meta, "texture", ".png")
    _file(meta, "thumbnail", ".png")
    _file(meta, "face_data", ".npz")
    meta.setdefault("derived", {})  # presets written before derived caches existed have none
    derived = _field(meta, "derived", dict)
    if len(derived) > MAX_DERIVED:
        raise ValueError(f"field 'derived' has {len(derived)} entries, above the limit of {MAX_DERIVED}")
    for key in derived:
        if not DERIVED_KEY.fullmatch(key):
            raise ValueError(f"field 'derived' has an invalid key {key[:100]!r}")
        _file(derived, key, ".npz")
    if meta.get("consent") is not None:  # presets made before consent was recorded have none
        consent.check_field(meta["consent"])
    files = referenced_files(meta)
    if len(set(files)) != len(files) or "preset.json" in files:
        raise ValueError("two fields refer to the same file")
    return meta


def referenced_files(meta: Mapping[str, Any]) -> list[str]:
    """Every file a checked ``preset.json`` refers to."""
    return [meta["texture"], meta["thumbnail"], meta["face_data"], *(s["file"] for s in meta["sources"]),
            *meta["derived"].values()]


def _points(arrays: Mapping[str, np.ndarray], key: str, shape: tuple[int, ...]) -> np.ndarray:
    if key not in arrays:
        raise ValueError(f"array {key!r} is missing")
    value = arrays[key]
    if value.dtype.kind != "f":
        raise ValueError(f"array {key!r} has dtype {value.dtype}, expected floating point")
    if value.shape != shape:
        raise ValueError(f"array {key!r} has shape {value.shape}, expected {shape}")
    if not np.isfinite(value).all():
        raise ValueError(f"array {key!r} holds NaN or infinite values")
    return value


def check_faces(arrays: Mapping[str, np.ndarray], source_sizes: list[tuple[int, int]],
                texture_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(landmarks (n, 468, 3), texture_points (468, 3)) if ``faces.npz`` fits its photos and texture.

    ``source_sizes`` are the photos' (width, height); the texture is ``texture_size`` square.
    """
    unexpected = sorted(set(arrays) - {"landmarks", "texture_points"})
    if unexpected:
        raise ValueError(f"unexpected array {unexpected[0]!r}")
    landmarks = _points(arrays, "landmarks", (len(source_sizes), POINTS, 3))
    points = _points(arrays, "texture_points", (POINTS, 3))
    xy = points[:, :2]
    if xy.min() < 0 or xy.max() > texture_size:
        raise ValueError(f"array 'texture_points' lies outside the {texture_size} px texture")
    for i, (width, height) in enumerate(source_sizes):
        reach = _REACH * max(width, height)
        if np.abs(landmarks[i]).max() > reach:
            raise ValueError(f"array 'landmarks' of photo {i} lies far outside its {width}x{height} image")
    return landmarks, points


def check_derived(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Derived arrays: numeric (no strings, objects or records) and finite."""
    for key, value in arrays.items():
        if value.dtype.kind not in "biuf":
            raise ValueError(f"array {key!r} has dtype {value.dtype}, expected a number type")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise ValueError(f"array {key!r} holds NaN or infinite values")
    return dict(arrays)
