"""STAND-IN insightface models registered through the real SHA-256 path (a helper for issue-5 tests).

The real inswapper/arcface weights are non-commercial and cannot be downloaded where tests run. This
writes the tiny generated stand-ins of ``facefusion_obs.models.standins`` (same input/output contract,
labelled STAND-IN) into a fresh models folder, links the real embedded MediaPipe models beside them, and
points the manifest at a copy that pins the stand-ins' own SHA-256, so ``model_path`` verifies them
exactly as it verifies real downloads.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def install_standins(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Returns model name -> stand-in path; undone by ``monkeypatch`` and ``forget_loaded_models``."""
    from facefusion_obs.config import locations
    from facefusion_obs.models import ensure_embedded_models, standins
    from facefusion_obs.models import manifest as manifest_module

    ensure_embedded_models(quiet=True)
    real_models = locations().models_dir
    models_dir = root / "models"
    models_dir.mkdir()
    for spec in manifest_module.load_manifest().values():
        if spec.name not in standins.STANDIN_NAMES and (real_models / spec.file).is_file():
            (models_dir / spec.file).symlink_to(real_models / spec.file)
    files = standins.write_standins(models_dir)
    manifest = standins.standin_manifest(root / "standin-manifest.json", files)
    monkeypatch.setenv("FACEFUSION_OBS_MODELS", str(models_dir))
    monkeypatch.setattr(manifest_module, "MODEL_MANIFEST", manifest)
    forget_loaded_models()
    return files


def forget_loaded_models() -> None:
    from facefusion_obs.models import manifest as manifest_module
    from facefusion_obs.runtime import onnx as onnx_runtime
    from facefusion_obs.swap import inswapper

    manifest_module._load_cached.cache_clear()
    onnx_runtime.clear_sessions()
    inswapper.clear_models()


def embedded_models_only(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A models folder with the real embedded models and no insightface files at all (as on a fresh
    install), whatever the developer's own models folder holds."""
    from facefusion_obs.config import locations
    from facefusion_obs.models import EMBEDDED_MODELS, ensure_embedded_models, get_spec

    ensure_embedded_models(quiet=True)
    real_models = locations().models_dir
    models_dir = root / "embedded-models"
    models_dir.mkdir()
    for name in EMBEDDED_MODELS:
        file = get_spec(name).file
        (models_dir / file).symlink_to(real_models / file)
    monkeypatch.setenv("FACEFUSION_OBS_MODELS", str(models_dir))
    forget_loaded_models()
    return models_dir
