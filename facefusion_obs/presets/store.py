"""The preset store: one folder per preset, JSON + PNG + ``.npz`` (no pickle), updated atomically.

Layout of ``<presets_dir>/<name>/``::

    preset.json              what is current: revision, source photos, derived files
    source-<i>.r<N>.png      the source photos (re-encoded, at most 2048 px)
    texture.r<N>.png         the primary photo's face crop, for the mesh engine
    thumbnail.r<N>.png       128 px, for the OBS dropdown and ``presets show``
    faces.r<N>.npz           landmarks of every source photo and of the texture
    derived-<key>.r<N>.npz   arrays other engines derive and cache (e.g. ArcFace embeddings)

Every file of a revision is written first, then ``preset.json`` is replaced in one ``os.replace``,
then files no longer referenced are deleted. A reader therefore sees either the old or the new
revision, never a mix; the one thing it can meet is an old file deleted under it, and ``load`` retries.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facefusion_obs.config import locations
from facefusion_obs.presets.analyse import SourcePhoto, analyse_photo, face_texture, read_rgb, thumbnail
from facefusion_obs.presets.names import PresetError, validate_name

FORMAT = 1
META = "preset.json"
_KEY = re.compile(r"^[a-z0-9_]{1,40}$")


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_png(path: Path, rgb: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
        if not ok:
            raise PresetError(f"could not encode {path.name}")
        tmp.write_bytes(buf.tobytes())
    _write_atomic(path, write)


def _read_png(path: Path) -> np.ndarray:
    bgr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise PresetError(f"preset file {path} is not a readable PNG")
    return np.ascontiguousarray(bgr[..., ::-1])


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    for key, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise PresetError(f"array {key!r} has dtype object, which cannot be stored without pickle")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})
    _write_atomic(path, write)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    _write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8"))


@dataclass
class Preset:
    """A loaded preset. ``folder`` is None for a transient preset made from an image path."""

    name: str
    revision: int
    meta: dict[str, Any]
    texture: np.ndarray  # (h, w, 3) RGB uint8
    texture_points: np.ndarray  # (468, 3)
    landmarks: np.ndarray  # (n_sources, 468, 3), in each source photo's pixels
    folder: Path | None = None
    store: PresetStore | None = None
    _sources: list[np.ndarray] | None = field(default=None, repr=False)
    _derived: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    def images(self) -> list[np.ndarray]:
        """The source photos (RGB), for engines that derive their own data (e.g. embeddings)."""
        if self._sources is None:
            assert self.folder is not None
            self._sources = [_read_png(self.folder / s["file"]) for s in self.meta["sources"]]
        return self._sources

    def derived(self, key: str) -> dict[str, np.ndarray] | None:
        if key in self._derived:
            return self._derived[key]
        file = self.meta.get("derived", {}).get(key)
        if file is None or self.folder is None:
            return None
        try:
            self._derived[key] = _read_npz(self.folder / file)
        except FileNotFoundError:
            return None
        return self._derived[key]

    def cached_arrays(self, key: str, compute: Callable[[Preset], Mapping[str, np.ndarray]],
                      ) -> dict[str, np.ndarray]:
        """Arrays derived from this preset, computed once and stored in it as ``.npz`` (no pickle).

        ``key`` should name the model that derived them (e.g. ``arcface_w600k_r50``), so a different
        model never reuses them. A transient or read-only preset just keeps them in memory.
        """
        found = self.derived(key)
        if found is not None:
            return found
        arrays = {k: np.asarray(v) for k, v in compute(self).items()}
        self._derived[key] = arrays
        if self.store is not None:
            # caching is an optimisation: on a read-only store the arrays simply stay in memory
            with contextlib.suppress(OSError, PresetError):
                self.store.put_derived(self.name, key, arrays, revision=self.revision)
        return arrays


class PresetStore:
    """add / list / show / remove / load presets under ``root`` (default ``locations().presets_dir``)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else locations().presets_dir

    def folder(self, name: str) -> Path:
        return self.root / validate_name(name)

    # ------------------------------------------------------------------------------------- reading
    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        out = []
        for p in sorted(self.root.iterdir()):
            if p.is_dir() and (p / META).is_file():
                try:
                    out.append(validate_name(p.name))
                except PresetError:
                    continue
        return out

    def stamp(self, name: str) -> tuple[int, int] | None:
        """Changes whenever the preset is replaced on disk (cheap enough to poll every frame)."""
        try:
            st = (self.folder(name) / META).stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def meta(self, name: str) -> dict[str, Any]:
        path = self.folder(name) / META
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PresetError(f"preset {name!r} does not exist (create it with: facefusion-obs presets "
                              f"add {name!r} IMAGE)") from None
        except json.JSONDecodeError as exc:
            raise PresetError(f"preset {name!r}: {path} is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("name") != name:
            raise PresetError(f"preset {name!r}: {path} is not a format-{FORMAT} preset for this name")
        return data

    def load(self, name: str) -> Preset:
        for attempt in range(3):
            meta = self.meta(name)
            folder = self.folder(name)
            try:
                faces = _read_npz(folder / meta["face_data"])
                texture = _read_png(folder / meta["texture"])
            except FileNotFoundError:
                if attempt == 2:
                    raise PresetError(f"preset {name!r} is incomplete on disk ({folder})") from None
                time.sleep(0.05)  # replaced while we read: read the new revision
                continue
            except (KeyError, ValueError) as exc:
                raise PresetError(f"preset {name!r} is damaged: {exc}") from None
            return Preset(name, int(meta["revision"]), meta, texture, faces["texture_points"],
                          faces["landmarks"], folder, self)
        raise AssertionError("unreachable")

    def show(self, name: str) -> dict[str, Any]:
        meta = self.meta(name)
        folder = self.folder(name)
        return {"name": name, "folder": str(folder), "revision": meta["revision"],
                "created": meta["created"], "updated": meta["updated"],
                "sources": [{k: s[k] for k in ("original", "frontality", "faces_found")}
                            for s in meta["sources"]],
                "primary": meta["primary"], "thumbnail": str(folder / meta["thumbnail"]),
                "derived": sorted(meta.get("derived", {}))}

    # ------------------------------------------------------------------------------------- writing
    def add(self, name: str, images: Iterable[Path | str], *, face_index: int | None = None,
            replace: bool = False) -> Preset:
        """Create (or with ``replace`` overwrite) a preset from one or more photos of one person."""
        validate_name(name)
        paths = [Path(p) for p in images]
        if not paths:
            raise PresetError(f"preset {name!r}: give at least one image")
        photos = [analyse_photo(read_rgb(p), repr(str(p)), face_index) for p in paths]
        folder = self.folder(name)
        exists = (folder / META).is_file()
        if exists and not replace:
            raise PresetError(f"preset {name!r} already exists (use --replace to overwrite it)")
        self.root.mkdir(parents=True, exist_ok=True)
        old = self.meta(name) if exists else None
        revision = (int(old["revision"]) + 1) if old else 1
        if not exists:
            staging = self.root / f".{name}.new-{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            self._write_revision(staging, name, revision, photos, paths, created=None)
            try:
                os.rename(staging, folder)  # appears complete, or not at all
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)
                if (folder / META).is_file():
                    raise PresetError(f"preset {name!r} was created concurrently; try again") from None
                shutil.rmtree(folder, ignore_errors=True)  # a stray folder without preset.json
                return self.add(name, paths, face_index=face_index, replace=replace)
        else:
            self._write_revision(folder, name, revision, photos, paths, created=old["created"])
        return self.load(name)

    def _write_revision(self, folder: Path, name: str, revision: int, photos: list[SourcePhoto],
                        paths: list[Path], created: str | None) -> None:
        primary = max(range(len(photos)), key=lambda i: photos[i].frontality)
        texture, tex_points = face_texture(photos[primary])
        r = f"r{revision}"
        sources = []
        for i, (photo, path) in enumerate(zip(photos, paths, strict=True)):
            file = f"source-{i}.{r}.png"
            _write_png(folder / file, photo.rgb)
            sources.append({"file": file, "original": path.name, "faces_found": photo.faces_found,
                            "frontality": round(photo.frontality, 3)})
        _write_png(folder / f"texture.{r}.png", texture)
        _write_png(folder / f"thumbnail.{r}.png", thumbnail(texture))
        _write_npz(folder / f"faces.{r}.npz", {
            "landmarks": np.stack([p.landmarks for p in photos]), "texture_points": tex_points})
        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        meta = {"format": FORMAT, "name": name, "revision": revision, "created": created or now,
                "updated": now, "primary": primary, "sources": sources, "texture": f"texture.{r}.png",
                "thumbnail": f"thumbnail.{r}.png", "face_data": f"faces.{r}.npz", "derived": {}}
        _write_json(folder / META, meta)
        self._collect(folder, meta)

    def put_derived(self, name: str, key: str, arrays: Mapping[str, np.ndarray], *,
                    revision: int | None = None) -> None:
        """Store arrays derived from the preset under ``key``; refused if the preset moved on to a
        newer revision than the one they were derived from."""
        if not _KEY.match(key):
            raise PresetError(f"derived key {key!r} must be 1-40 of a-z, 0-9, '_'")
        meta = self.meta(name)
        if revision is not None and int(meta["revision"]) != revision:
            raise PresetError(f"preset {name!r} changed (revision {meta['revision']}, not {revision})")
        folder = self.folder(name)
        file = f"derived-{key}.r{meta['revision']}.npz"
        _write_npz(folder / file, arrays)
        meta = {**meta, "derived": {**meta.get("derived", {}), key: file}}
        _write_json(folder / META, meta)

    def remove(self, name: str) -> None:
        folder = self.folder(name)
        if not (folder / META).is_file():
            raise PresetError(f"preset {name!r} does not exist")
        trash = self.root / f".{name}.removed-{os.getpid()}-{time.monotonic_ns()}"
        os.rename(folder, trash)  # gone for readers in one step, then deleted
        shutil.rmtree(trash, ignore_errors=True)

    @staticmethod
    def _collect(folder: Path, meta: Mapping[str, Any]) -> None:
        keep = {META, meta["texture"], meta["thumbnail"], meta["face_data"],
                *(s["file"] for s in meta["sources"]), *meta.get("derived", {}).values()}
        for p in folder.iterdir():
            if p.is_file() and p.name not in keep and not p.name.startswith("."):
                p.unlink(missing_ok=True)


def preset_from_image(path: Path, face_index: int | None = None) -> Preset:
    """A transient preset straight from a photo (for ``--source IMAGE``); nothing is written."""
    photo = analyse_photo(read_rgb(path), repr(str(path)), face_index)
    texture, tex_points = face_texture(photo)
    meta = {"format": FORMAT, "name": path.name, "revision": 0, "primary": 0,
            "sources": [{"original": path.name, "faces_found": photo.faces_found,
                         "frontality": round(photo.frontality, 3)}]}
    return Preset(path.name, 0, meta, texture, tex_points, photo.landmarks[None], None, None,
                  _sources=[photo.rgb])
