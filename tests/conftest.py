# --- issue 4 (models, faces, presets): real models and real photos, fetched once from PyPI ---------
import numpy as _np_issue4
import pytest as _pytest_issue4


@_pytest_issue4.fixture(scope="session")
def embedded_models():
    """The four MediaPipe models, fetched from the pinned wheel (cached) and SHA-256-verified."""
    from facefusion_obs.models import ensure_embedded_models

    return ensure_embedded_models(quiet=True)


@_pytest_issue4.fixture(scope="session")
def sample_images_dir():
    """insightface 2.1's data/images (t1.jpg: six people; Tom_Hanks_54745.png), fetched via pip."""
    from facefusion_obs.models.testdata import sample_images_dir

    return sample_images_dir()


@_pytest_issue4.fixture(scope="session")
def astronaut_rgb() -> _np_issue4.ndarray:
    """skimage's astronaut (512x512 RGB, one frontal face)."""
    from skimage import data

    return _np_issue4.ascontiguousarray(data.astronaut())


# --- issue 5 (inswapper, onnxruntime): STAND-IN insightface models registered through the real
# SHA-256 path. The real weights are non-commercial and cannot be downloaded here; these tiny generated
# models have the same input/output names, shapes and emap initializer, and say STAND-IN everywhere.
@_pytest_issue4.fixture()
def isolated_dirs(tmp_path, monkeypatch):
    """Cache, config and data under tmp_path so tests never touch the user's folders."""
    for env, sub in (("XDG_CACHE_HOME", "cache"), ("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data")):
        monkeypatch.setenv(env, str(tmp_path / sub))
    monkeypatch.setenv("FACEFUSION_OBS_PRESETS", str(tmp_path / "presets"))
    return tmp_path


@_pytest_issue4.fixture()
def standin_models(isolated_dirs, monkeypatch):
    """A models folder holding the STAND-IN inswapper/arcface files (plus links to whatever real embedded
    models the project folder already has), and a manifest copy that pins the stand-ins' own SHA-256,
    so ``model_path`` verifies them exactly as it verifies real downloads. Returns name -> path."""
    from facefusion_obs.config import locations
    from facefusion_obs.models import manifest as manifest_module
    from facefusion_obs.models import standins
    from facefusion_obs.runtime import onnx as onnx_runtime

    real_models = locations().models_dir
    models_dir = isolated_dirs / "models"
    models_dir.mkdir()
    for spec in manifest_module.load_manifest().values():
        if spec.name not in standins.STANDIN_NAMES and (real_models / spec.file).is_file():
            (models_dir / spec.file).symlink_to(real_models / spec.file)
    files = standins.write_standins(models_dir)
    manifest = standins.standin_manifest(isolated_dirs / "standin-manifest.json", files)
    monkeypatch.setenv("FACEFUSION_OBS_MODELS", str(models_dir))
    monkeypatch.setattr(manifest_module, "MODEL_MANIFEST", manifest)
    manifest_module._load_cached.cache_clear()
    onnx_runtime.clear_sessions()
    yield files
    manifest_module._load_cached.cache_clear()
    onnx_runtime.clear_sessions()
