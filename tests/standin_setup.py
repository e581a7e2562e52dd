"""STAND-IN insightface models behind the real SHA-256 gate, and model pools built over them.

The real inswapper/arcface weights are non-commercial and cannot be downloaded where tests run. This
writes the tiny generated stand-ins of ``tests/standins.py`` (same input/output contract, labelled
STAND-IN) into a fresh models folder, links the real embedded MediaPipe models beside them, and writes
a copy of the manifest that pins the stand-ins' own SHA-256. A :class:`ModelPool` built over that
manifest and folder verifies them exactly as it verifies real downloads; nothing in the product is
patched. Commands started from a test (``main([...])``) find the same files through the environment
(``FACEFUSION_OBS_MODELS`` and ``FACEFUSION_OBS_MANIFEST``), as a user's own set-up would.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import standins

from facefusion_obs.runtime.pool import ModelPool


def _link_real(models_dir: Path, names: list[str]) -> None:
    from facefusion_obs.config import locations
    from facefusion_obs.models import ensure_embedded_models, get_spec

    ensure_embedded_models(quiet=True)
    real_models = locations().models_dir
    models_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        file = get_spec(name).file
        if (real_models / file).is_file():
            (models_dir / file).symlink_to(real_models / file)


def write_standin_models(root: Path) -> tuple[Path, Path, dict[str, Path]]:
    """(models folder, manifest, model name -> stand-in path) under ``root``."""
    from facefusion_obs.models import load_manifest

    models_dir = root / "models"
    _link_real(models_dir, [n for n in load_manifest() if n not in standins.STANDIN_NAMES])
    files = standins.write_standins(models_dir)
    manifest = standins.standin_manifest(root / "standin-manifest.json", files)
    return models_dir, manifest, files


def install_standins(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Stand-ins for commands run in this test (through the environment); returns name -> path."""
    models_dir, manifest, files = write_standin_models(root)
    monkeypatch.setenv("FACEFUSION_OBS_MODELS", str(models_dir))
    monkeypatch.setenv("FACEFUSION_OBS_MANIFEST", str(manifest))
    return files


def standin_pool(root: Path) -> tuple[ModelPool, dict[str, Path]]:
    """A pool over stand-in insightface models and the real embedded ones (close it when done)."""
    models_dir, manifest, files = write_standin_models(root)
    return ModelPool(manifest, models_dir), files


def embedded_models_only(root: Path, monkeypatch: pytest.MonkeyPatch | None = None) -> Path:
    """A models folder with the real embedded models and no insightface files at all (as on a fresh
    install), whatever the developer's own models folder holds. With ``monkeypatch`` it is also the
    folder of commands run in this test."""
    from facefusion_obs.models import EMBEDDED_MODELS

    models_dir = root / "embedded-models"
    _link_real(models_dir, list(EMBEDDED_MODELS))
    if monkeypatch is not None:
        monkeypatch.setenv("FACEFUSION_OBS_MODELS", str(models_dir))
    return models_dir


def verified_file(path: Path, name: str = ""):
    """A VerifiedFile of ``path`` as the pool would hand it over (tests of one model class alone)."""
    import hashlib

    from facefusion_obs.runtime.pool import VerifiedFile

    data = Path(path).read_bytes()
    return VerifiedFile(name or Path(path).stem, Path(path), hashlib.sha256(data).hexdigest(), data)


def open_onnx(cls, path: Path, providers=None):
    """``cls`` (an OnnxModel) on ``path``, built the way the pool builds it, not yet prepared."""
    from facefusion_obs.runtime.onnx import create_session, select_providers

    file = verified_file(path)
    session, _ = create_session(file.data, providers or select_providers(["CPUExecutionProvider"]))
    return cls(file, session)
