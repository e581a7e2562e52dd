"""The model pool: the one owner of every loaded model in a process.

The worker builds one pool and hands it to every channel's pipeline; ``process``, ``bench`` and ``demo``
build their own. Models are keyed by manifest name, loaded on first use and shared, so many channels
hold one copy of the weights. Nothing about models lives in module globals: a test builds a pool over a
manifest and a models folder of its own instead of patching the product.

Loading reads a file's bytes once, checks their SHA-256 against the manifest (or the user's pin) and
creates the session or interpreter *from those bytes*: what was verified is what runs, whatever happens
to the file afterwards (no same-size/same-mtime tamper, no window between check and load). A file that
fails is moved aside (quarantined) and refused with the command that fixes it.

Every model class has one shape, ONNX and LiteRT alike (insightface ``model_zoo`` style):
``cls(file, session)`` with a :class:`VerifiedFile` and the session the manifest's ``runtime`` names
(an onnxruntime ``InferenceSession``, a :class:`~facefusion_obs.runtime.litert.LiteRTSession`, or the
bytes themselves for ``data``), then ``prepare()``, then ``get(...)``. ``model_name`` names its default
manifest entry.

Availability (:meth:`ModelPool.check`) is what the worker advertises; it is cached per file by its
``stat`` (size, times, inode), so re-checking every second costs a ``stat`` per file and a changed file
is hashed once. Loading never trusts that cache.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from facefusion_obs.config import locations
from facefusion_obs.models import ModelUnavailable, check_spec, fetch_hint, read_verified
from facefusion_obs.models.manifest import ModelSpec, load_manifest


@dataclass(frozen=True)
class VerifiedFile:
    """A model file's bytes whose SHA-256 matched. Models keep ``path`` and ``sha256``, never ``data``."""

    name: str
    path: Path
    sha256: str
    data: bytes


class PooledModel(Protocol):
    model_name: str | None

    def __init__(self, file: VerifiedFile, session: Any) -> None: ...

    def prepare(self) -> Any: ...


M = TypeVar("M")


class ModelPool:
    """Every loaded model of this process, by manifest name. Use as a context manager or call ``close``."""

    def __init__(self, manifest: Path | Mapping[str, ModelSpec] | None = None, models_dir: Path | None = None,
                 *, providers: list[tuple[str, dict[str, Any]]] | None = None) -> None:
        if manifest is None or isinstance(manifest, (str, Path)):
            self.specs: dict[str, ModelSpec] = load_manifest(Path(manifest) if manifest else None)
        else:
            self.specs = dict(manifest)
        self.models_dir = Path(models_dir) if models_dir is not None else locations().models_dir
        self._providers = providers
        self._models: dict[str, Any] = {}
        self._checked: dict[str, tuple[tuple[Any, ...], str]] = {}
        self._lock = threading.RLock()

    # ------------------------------------------------------------------------------------ lookup
    def spec(self, name: str) -> ModelSpec:
        if name not in self.specs:
            raise ModelUnavailable(f"unknown model {name!r}; known models: {', '.join(self.specs)}")
        return self.specs[name]

    def path(self, name: str) -> Path:
        return self.models_dir / self.spec(name).file

    def fetch_hint(self, name: str) -> str:
        return fetch_hint(self.spec(name))

    @property
    def providers(self) -> list[tuple[str, dict[str, Any]]]:
        if self._providers is None:
            from facefusion_obs.runtime.onnx import select_providers

            self._providers = select_providers()
        return self._providers

    # ------------------------------------------------------------------------------- verification
    def verified(self, name: str) -> VerifiedFile:
        """The file's bytes, read once and SHA-256-checked (ModelUnavailable with the fix otherwise)."""
        path, data, digest = read_verified(self.spec(name), self.models_dir)
        return VerifiedFile(name, path, digest, data)

    def check(self, name: str) -> str:
        """'' when ``name`` is installed and verified, otherwise why not (with the command that fixes it).

        Cached per stat of the file; a changed file is hashed again (and quarantined if it is bad).
        """
        try:
            spec = self.spec(name)
        except ModelUnavailable as exc:
            return str(exc)
        path = self.models_dir / spec.file
        try:
            st = path.stat()
            key: tuple[Any, ...] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        except OSError:
            key = ("missing",)
        with self._lock:
            cached = self._checked.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            check_spec(spec, self.models_dir)
            reason = ""
        except ModelUnavailable as exc:
            reason = str(exc)
        with self._lock:
            self._checked[name] = (key, reason)
        return reason

    # ------------------------------------------------------------------------------------ loading
    def load(self, cls: type[M], name: str | None = None) -> M:
        """The shared, prepared instance of ``cls`` for model ``name`` (default ``cls.model_name``)."""
        name = name or getattr(cls, "model_name", None)
        if not name:
            raise TypeError(f"{cls.__name__} has no default model_name; pass the manifest name")
        with self._lock:
            model = self._models.get(name)
            if model is not None:
                if not isinstance(model, cls):
                    raise TypeError(f"model {name!r} is loaded as {type(model).__name__}, not {cls.__name__}")
                return model
            file = self.verified(name)
            session = self._open(self.spec(name).runtime, file)
            model = cls(file, session)  # type: ignore[call-arg]
            del file  # the models keep the path and hash, never the (possibly huge) bytes
            model.prepare()  # type: ignore[attr-defined]
            self._models[name] = model
            return model

    def _open(self, runtime: str, file: VerifiedFile) -> Any:
        if runtime == "onnxruntime":
            from facefusion_obs.runtime.onnx import create_session

            return create_session(file.data, self.providers, label=file.path.name)[0]
        if runtime == "litert":
            from facefusion_obs.runtime.litert import LiteRTSession

            return LiteRTSession(file.data, file.path.name)
        if runtime == "data":
            return file.data
        raise ModelUnavailable(f"model {file.name!r}: the manifest's runtime {runtime!r} is not one of "
                               "onnxruntime, litert, data")

    def loaded(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._models)

    def evict(self, name: str) -> None:
        """Forget a loaded model (its file changed): the next ``load`` reads and verifies it again."""
        with self._lock:
            self._models.pop(name, None)

    def close(self) -> None:
        with self._lock:
            models, self._models = list(self._models.values()), {}
            self._checked.clear()
        for model in models:
            close = getattr(model, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> ModelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

