"""Models: the manifest, SHA-256 verification and fetching.

Worker code gets models only through :class:`facefusion_obs.runtime.pool.ModelPool`, which loads them
from bytes checked by :func:`read_verified`. ``model_path(name)`` checks a file in place for the CLI
(``models``, ``doctor``) and tests. Every refusal raises :class:`ModelUnavailable` with the command
that fixes the problem, and a file that fails its check is moved aside.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from facefusion_obs.config import locations
from facefusion_obs.models.errors import FetchError, LicenseNotAccepted, ModelUnavailable
from facefusion_obs.models.manifest import ManifestError, ModelSpec, load_manifest
from facefusion_obs.models.verify import PinsError, load_pins, matches, quarantine, save_pin, sha256_file

__all__ = [
    "EMBEDDED_MODELS", "FetchError", "LicenseNotAccepted", "ManifestError", "ModelSpec",
    "ModelState", "ModelUnavailable", "PinsError", "check_spec", "ensure_embedded_models", "expected_sha256", "fetch",
    "fetch_hint", "get_spec", "model_path", "model_state", "pin", "read_verified", "sha256_file",
]

# The models every installation gets: Apache-2.0, from the package index, needed by the defaults.
EMBEDDED_MODELS = ("face_detection_short_range", "face_detection_full_range_sparse", "face_landmark",
                   "face_mesh_topology",
                   "selfie_segmentation")


def get_spec(name: str) -> ModelSpec:
    specs = load_manifest()
    if name not in specs:
        raise ModelUnavailable(f"unknown model {name!r}; known models: {', '.join(specs)}")
    return specs[name]


def expected_sha256(spec: ModelSpec) -> str | None:
    """The manifest's hash, or the user's pin for a model the manifest cannot vouch for."""
    return spec.sha256 or load_pins().get(spec.name)


def fetch_hint(spec: ModelSpec) -> str:
    """The command that installs ``spec``'s file, licence step included."""
    flag = " --accept-license" if spec.requires_license_acceptance else ""
    return f"facefusion-obs models fetch {spec.name}{flag}"


def _expected_or_refuse(spec: ModelSpec, path: Path) -> str:
    """The hash ``path`` must have; refuses a missing file or one nobody vouches for."""
    if not path.is_file():
        raise ModelUnavailable(f"model {spec.name!r} is not installed ({path} is missing); fetch it with: "
                               f"{fetch_hint(spec)}  (or place the file there by hand)")
    expected = expected_sha256(spec)  # a corrupt pin file raises PinsError, a ModelUnavailable
    if expected is None:
        raise ModelUnavailable(
            f"model {spec.name!r} ({path}) has no published SHA-256, so it is not loaded. If you trust this "
            f"file, pin its hash: facefusion-obs models pin {spec.name} {sha256_file(path)}")
    return expected


def _refuse(spec: ModelSpec, path: Path, expected: str) -> ModelUnavailable:
    bad = quarantine(path)
    return ModelUnavailable(f"model {spec.name!r} failed SHA-256 verification (expected {expected}); the "
                            f"file was moved to {bad}; fetch it again with: {fetch_hint(spec)}")


def read_verified(spec: ModelSpec, models_dir: Path) -> tuple[Path, bytes, str]:
    """(path, bytes, sha256) of ``spec``'s file, read once; the bytes are the ones that were checked."""
    path = Path(models_dir) / spec.file
    expected = _expected_or_refuse(spec, path)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise _refuse(spec, path, expected)
    return path, data, digest


def check_spec(spec: ModelSpec, models_dir: Path) -> Path:
    """Verify ``spec``'s file in place (streamed, for availability and the CLI); returns its path."""
    path = Path(models_dir) / spec.file
    expected = _expected_or_refuse(spec, path)
    if not matches(path, expected):
        raise _refuse(spec, path, expected)
    return path


def model_path(name: str) -> Path:
    """The verified file of model ``name`` in ``locations().models_dir`` (CLI and tests; the worker
    loads through the model pool, which verifies the very bytes it loads).

    Raises ModelUnavailable when it is missing, has no hash to check against, or fails the check
    (in which case the file is moved aside so it can never be loaded).
    """
    return check_spec(get_spec(name), locations().models_dir)


def fetch(name: str, *, accept_license: bool = False, ask: Callable[[str], bool] | None = None,
          force: bool = False, quiet: bool = False) -> Path:
    """Download (if needed) and verify model ``name``; returns its path."""
    from facefusion_obs.models.fetching import fetch_pypi, fetch_url

    spec = get_spec(name)
    dest = locations().models_dir / spec.file
    expected = expected_sha256(spec)
    if dest.is_file() and not force:
        if expected is not None and matches(dest, expected):
            return dest
        if expected is None:
            return dest  # nothing to compare with: model_path will refuse it until a hash is pinned
        quarantine(dest)
    if spec.source == "pypi":
        return fetch_pypi(spec, dest, quiet=quiet)
    return fetch_url(spec, dest, accept_license=accept_license, ask=ask, quiet=quiet)


def ensure_embedded_models(quiet: bool = True) -> dict[str, Path]:
    """Fetch (once) every embedded model; what the installer and the test fixtures call."""
    return {name: fetch(name, quiet=quiet) for name in EMBEDDED_MODELS}


def pin(name: str, sha256: str) -> Path:
    """Record the user's trusted SHA-256 for a model whose manifest entry has none."""
    spec = get_spec(name)
    if spec.sha256 is not None:
        raise ModelUnavailable(f"model {name!r} already has a SHA-256 in the manifest; pins are only for "
                               "models without one")
    return save_pin(name, sha256)


@dataclass(frozen=True)
class ModelState:
    spec: ModelSpec
    path: Path
    state: str  # "ok" | "missing" | "unpinned" | "corrupt"
    detail: str = ""


def model_state(name: str, *, move_bad: bool = False) -> ModelState:
    """Check one model (for ``models list/verify`` and ``doctor``). Raises only PinsError, for a model
    whose hash lives in the user's pin file when that file is unusable: no state would be true then."""
    spec = get_spec(name)
    path = locations().models_dir / spec.file
    if not path.is_file():
        return ModelState(spec, path, "missing", fetch_hint(spec))
    expected = expected_sha256(spec)
    if expected is None:
        return ModelState(spec, path, "unpinned", f"sha256 {sha256_file(path)}; pin it if you trust it")
    if matches(path, expected):
        return ModelState(spec, path, "ok")
    detail = f"SHA-256 is not {expected}"
    if move_bad:
        detail += f"; moved to {quarantine(path)}"
    return ModelState(spec, path, "corrupt", detail)
