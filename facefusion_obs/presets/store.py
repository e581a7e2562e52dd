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

Every read goes through ``files`` (limits checked before memory is spent) and ``schema`` (what the
content must be), so a damaged or hostile preset is refused as :class:`PresetDamaged` naming the preset
and the file, and never reaches an engine. Folders are 0700 and files 0600: a preset is a face.

Every preset records the consent of the person pictured (``presets/consent.py``): ``add`` takes the
statement, ``set_consent`` adds one to a preset that has none (made before consent was recorded)
without analysing its photos again. The store keeps presets without one readable, so they can be
shown and given consent; the worker and ``process`` refuse to swap with them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facefusion_obs.config import locations
from facefusion_obs.presets import consent, files, schema
from facefusion_obs.presets.analyse import SourcePhoto, analyse_photo, face_texture, read_rgb, thumbnail
from facefusion_obs.presets.files import BadFile
from facefusion_obs.presets.names import PresetDamaged, PresetError, validate_name

META = "preset.json"
_REVISION = re.compile(r"\.r(\d{1,9})\.")  # in the file names the store writes


@contextlib.contextmanager
def _damage(preset: str, path: Path, *, missing_passes: bool = False) -> Iterator[None]:
    """Turn a problem met while reading ``path`` (a file that fails ``files``' limits, content that fails
    the schema) into PresetDamaged naming the preset and the file. With ``missing_passes`` a missing
    file stays a BadFile, for ``load`` to retry: a newer revision may have replaced it."""
    try:
        yield
    except BadFile as exc:
        if missing_passes and exc.missing:
            raise
        raise PresetDamaged(preset, exc.path, exc.reason) from None
    except PresetError:
        raise
    except ValueError as exc:
        raise PresetDamaged(preset, path, str(exc)) from None


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

    @property
    def consent(self) -> dict[str, str] | None:
        """``{"statement", "recorded"}`` of the person pictured, or None (a preset made before consent)."""
        return consent.of(self.meta)

    def images(self) -> list[np.ndarray]:
        """The source photos (RGB), for engines that derive their own data (e.g. embeddings)."""
        if self._sources is None:
            assert self.folder is not None
            images = []
            for source in self.meta["sources"]:
                path = self.folder / source["file"]
                with _damage(self.name, path):
                    images.append(files.read_png(path))
            self._sources = images
        return self._sources

    def derived(self, key: str) -> dict[str, np.ndarray] | None:
        """Arrays cached under ``key`` (read, checked, with the preset), or None."""
        return self._derived.get(key)

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
        """Every preset folder, damaged ones included (``load`` says what is wrong with them), so a
        damaged preset is reported rather than silently missing."""
        if not self.root.is_dir():
            return []
        out = []
        for p in sorted(self.root.iterdir()):
            if p.is_dir():
                try:
                    out.append(validate_name(p.name))
                except PresetError:  # staging and trash folders start with '.'; others are not ours
                    continue
        return out

    def stamp(self, name: str) -> tuple[int, int] | None:
        """Changes whenever the preset is replaced on disk (cheap enough to poll every frame)."""
        try:
            st = (self.folder(name) / META).stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def meta(self, name: str) -> dict[str, Any]:
        """The preset's ``preset.json``, checked against the schema (its files are not read)."""
        folder = self.folder(name)
        try:
            st = os.lstat(folder)
        except FileNotFoundError:
            raise PresetError(f"preset {name!r} does not exist (create it with: facefusion-obs presets "
                              f"add {name!r} IMAGE)") from None
        except OSError as exc:
            raise PresetDamaged(name, folder, f"cannot be read ({exc.strerror or exc})") from None
        if not stat.S_ISDIR(st.st_mode):  # a link could lead anywhere
            raise PresetDamaged(name, folder, "is not a folder (a link or a file)")
        path = folder / META
        with _damage(name, path):
            return schema.check_meta(files.read_json(path), name)

    def load(self, name: str) -> Preset:
        """The preset with every file read and checked; PresetDamaged names the first bad file."""
        for attempt in range(3):
            meta = self.meta(name)
            try:
                return self._read(name, meta)
            except BadFile as exc:  # missing: an old revision's file deleted under us, so read the new one
                if attempt == 2:
                    raise PresetDamaged(name, exc.path, exc.reason) from None
        raise AssertionError("unreachable")

    def _read(self, name: str, meta: dict[str, Any]) -> Preset:
        folder = self.folder(name)

        def read(file: str, how: Callable[[Path], Any]) -> Any:
            with _damage(name, folder / file, missing_passes=True):
                return how(folder / file)

        # the photos are only verified here (header and checksums); they are decoded when an engine asks
        sizes = [read(s["file"], lambda p: files.png_size(p, files.read_bytes(p))) for s in meta["sources"]]
        read(meta["thumbnail"], lambda p: files.png_size(p, files.read_bytes(p)))
        texture = read(meta["texture"], files.read_png)
        if texture.shape[0] != texture.shape[1]:
            raise PresetDamaged(name, folder / meta["texture"],
                                f"is {texture.shape[1]}x{texture.shape[0]} px, not square")
        landmarks, points = read(meta["face_data"],
                                 lambda p: schema.check_faces(files.read_npz(p), sizes, texture.shape[1]))
        derived = {key: read(file, lambda p: schema.check_derived(files.read_npz(p)))
                   for key, file in meta["derived"].items()}
        return Preset(name, meta["revision"], meta, texture, points, landmarks, folder, self, _derived=derived)

    def show(self, name: str) -> dict[str, Any]:
        """What ``presets show`` prints, once every file has been checked."""
        meta = self.load(name).meta
        folder = self.folder(name)
        return {"name": name, "folder": str(folder), "revision": meta["revision"],
                "created": meta["created"], "updated": meta["updated"],
                "sources": [{k: s[k] for k in ("original", "frontality", "faces_found")}
                            for s in meta["sources"]],
                "primary": meta["primary"], "thumbnail": str(folder / meta["thumbnail"]),
                "derived": sorted(meta["derived"]), "consent": consent.of(meta)}

    # ------------------------------------------------------------------------------------- writing
    def add(self, name: str, images: Iterable[Path | str], *, consent: str, face_index: int | None = None,
            replace: bool = False) -> Preset:
        """Create (or with ``replace`` overwrite) a preset from one or more photos of one person.

        ``consent`` says who agreed to be used, when and how; it is stored with the time (UTC) it was
        recorded. It is required (and checked before any photo is read): a replaced preset may show
        someone else, so a new revision never inherits the old statement.

        ``replace`` also repairs a damaged preset: a fresh revision is written beside whatever is there,
        under file names no damaged ``preset.json`` can refer to, and only then made current.
        """
        validate_name(name)
        agreed = _consent_record(consent)
        paths = [Path(p) for p in images]
        if not paths:
            raise PresetError(f"preset {name!r}: give at least one image")
        photos = [analyse_photo(read_rgb(p), repr(str(p)), face_index) for p in paths]
        folder = self.folder(name)
        if os.path.lexists(folder) and not replace:
            raise PresetError(f"preset {name!r} already exists (use --replace to overwrite it)")
        files.make_private_dir(self.root)
        if folder.is_symlink():
            folder.unlink()  # a damaged preset: the link goes, whatever it points to stays
        if not folder.exists():
            staging = self.root / f".{name}.new-{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            files.make_private_dir(staging)
            self._write_revision(staging, name, 1, photos, paths, created=None, agreed=agreed)
            try:
                os.rename(staging, folder)  # appears complete, or not at all
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)
                raise PresetError(f"preset {name!r} was created concurrently; try again") from None
            return self.load(name)
        if not folder.is_dir():
            raise PresetError(f"preset {name!r}: {folder} is a file, not a preset folder; move it away first")
        files.make_private_dir(folder)
        try:
            old: dict[str, Any] | None = self.meta(name)
        except PresetDamaged:
            old = None  # repaired below
        written = [int(m.group(1)) for p in folder.iterdir() if (m := _REVISION.search(p.name))]
        revision = max([old["revision"] if old else 0, *written]) + 1
        self._write_revision(folder, name, revision, photos, paths, created=old["created"] if old else None,
                             agreed=agreed)
        return self.load(name)

    def _write_revision(self, folder: Path, name: str, revision: int, photos: list[SourcePhoto],
                        paths: list[Path], created: str | None, agreed: dict[str, str]) -> None:
        primary = max(range(len(photos)), key=lambda i: photos[i].frontality)
        texture, tex_points = face_texture(photos[primary])
        r = f"r{revision}"
        sources = []
        for i, (photo, path) in enumerate(zip(photos, paths, strict=True)):
            file = f"source-{i}.{r}.png"
            files.write_png(folder / file, photo.rgb)
            sources.append({"file": file, "original": path.name, "faces_found": photo.faces_found,
                            "frontality": round(photo.frontality, 3)})
        files.write_png(folder / f"texture.{r}.png", texture)
        files.write_png(folder / f"thumbnail.{r}.png", thumbnail(texture))
        files.write_npz(folder / f"faces.{r}.npz", {
            "landmarks": np.stack([p.landmarks for p in photos]), "texture_points": tex_points})
        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        meta = {"format": schema.FORMAT, "name": name, "revision": revision, "created": created or now,
                "updated": now, "primary": primary, "sources": sources, "texture": f"texture.{r}.png",
                "thumbnail": f"thumbnail.{r}.png", "face_data": f"faces.{r}.npz", "derived": {},
                "consent": agreed}
        schema.check_meta(meta, name)  # never write what load would refuse
        files.write_json(folder / META, meta)
        self._collect(folder, meta)

    def set_consent(self, name: str, statement: str, *, replace: bool = False) -> Preset:
        """Record the consent of the person pictured in an existing preset, without analysing its photos
        again (presets made before consent was recorded have none). A statement already recorded is
        only replaced with ``replace``. The revision stays: the face did not change; ``preset.json``
        is replaced in one ``os.replace``, so a running worker picks the consent up on its next poll."""
        agreed = _consent_record(statement)
        meta = self.meta(name)
        self.load(name)  # every file checked: consent is never recorded for a damaged preset
        old = consent.of(meta)
        if old is not None and not replace:
            raise PresetError(f"preset {name!r} already records consent ({old['statement']!r}, recorded "
                              f"{old['recorded']}); add --replace to record a new statement")
        meta = schema.check_meta({**meta, "consent": agreed, "updated": time.strftime("%Y-%m-%dT%H:%M:%S")}, name)
        files.write_json(self.folder(name) / META, meta)
        return self.load(name)

    def put_derived(self, name: str, key: str, arrays: Mapping[str, np.ndarray], *,
                    revision: int | None = None) -> None:
        """Store arrays derived from the preset under ``key``; refused if the preset moved on to a
        newer revision than the one they were derived from."""
        if not isinstance(key, str) or not schema.DERIVED_KEY.fullmatch(key):
            raise PresetError(f"derived key {key!r} must be 1-40 of a-z, 0-9, '_'")
        meta = self.meta(name)
        if revision is not None and meta["revision"] != revision:
            raise PresetError(f"preset {name!r} changed (revision {meta['revision']}, not {revision})")
        derived = {**meta["derived"], key: f"derived-{key}.r{meta['revision']}.npz"}
        if len(derived) > schema.MAX_DERIVED:
            raise PresetError(f"preset {name!r} already holds {schema.MAX_DERIVED} derived caches")
        folder = self.folder(name)
        files.write_npz(folder / derived[key], arrays)
        meta = schema.check_meta({**meta, "derived": derived}, name)
        files.write_json(folder / META, meta)

    def remove(self, name: str) -> None:
        folder = self.folder(name)
        if not os.path.lexists(folder):
            raise PresetError(f"preset {name!r} does not exist")
        trash = self.root / f".{name}.removed-{os.getpid()}-{time.monotonic_ns()}"
        os.rename(folder, trash)  # gone for readers in one step, then deleted
        if trash.is_symlink():
            trash.unlink()
        else:
            shutil.rmtree(trash, ignore_errors=True)

    @staticmethod
    def _collect(folder: Path, meta: Mapping[str, Any]) -> None:
        """Delete what the current ``preset.json`` does not name (an old or damaged revision)."""
        keep = {META, *schema.referenced_files(meta)}
        for p in folder.iterdir():
            if p.name not in keep and not p.name.startswith(".") and (p.is_symlink() or not p.is_dir()):
                p.unlink(missing_ok=True)


def _consent_record(statement: object) -> dict[str, str]:
    """The ``consent`` field for a statement; a missing one says how to give it."""
    if statement is None:
        raise PresetError(f"a preset needs the consent of the person pictured: {consent.HOW}")
    return consent.record(statement)  # type: ignore[arg-type]  # check_statement refuses non-text


def preset_from_image(path: Path, face_index: int | None = None) -> Preset:
    """A transient preset straight from a photo (for ``--source IMAGE``); nothing is written.

    A photo records no consent: its callers gate it (``process --source IMAGE --consent``; the worker
    refuses photos)."""
    photo = analyse_photo(read_rgb(path), repr(str(path)), face_index)
    texture, tex_points = face_texture(photo)
    meta = {"format": schema.FORMAT, "name": path.name, "revision": 0, "primary": 0,
            "sources": [{"original": path.name, "faces_found": photo.faces_found,
                         "frontality": round(photo.frontality, 3)}]}
    return Preset(path.name, 0, meta, texture, tex_points, photo.landmarks[None], None, None,
                  _sources=[photo.rgb])
