"""The installer: which onnxruntime build it resolves, where it records the worker, what a wheel carries.

The requirement sets are pip's own resolution (``pip install --dry-run --report``) of the exact
arguments ``install.py`` passes, against the package index, not a re-reading of our lists. TensorRT's
``tensorrt-cu12-libs`` is an sdist that downloads from NVIDIA's server while it builds, which this
offline machine cannot reach; it is left out of the GPU dry run (it depends on no onnxruntime build).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from facefusion_obs.config import PROJECT_ROOT, WORKER_CONFIG_NAME, worker_setup

ONNXRUNTIME_BUILDS = {"onnxruntime", "onnxruntime-gpu"}


def _load(name: str):
    """installer/ is a folder of scripts, not a package on sys.path: load a module from its file."""
    spec = importlib.util.spec_from_file_location(f"installer_{name}", PROJECT_ROOT / "installer" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def installer():
    return _load("install")


def _resolved(arguments: list[str], tmp_path: Path) -> set[str]:
    report = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *arguments,
                             "--dry-run", "--ignore-installed", "--report", str(report)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}


@pytest.mark.parametrize("gpu", [False, True], ids=["plain", "gpu"])
def test_the_resolved_requirements_hold_exactly_one_onnxruntime_build(installer, tmp_path, gpu):
    plan = installer._requirements_module()
    version = "1.22.0"  # a release with CUDA 12 wheels, so the GPU lines pin as they would on a real venv
    lines = plan.gpu_requirements(version, tensorrt=False).install if gpu else plan.cpu_requirements(version).install
    names = _resolved(installer.install_arguments(lines, gpu, tests=True), tmp_path)
    assert names & ONNXRUNTIME_BUILDS == {"onnxruntime-gpu" if gpu else "onnxruntime"}
    assert "facefusion-obs" in names and ("cupy-cuda12x" in names) == gpu


def test_every_run_removes_the_other_build_before_it_installs(installer, monkeypatch, tmp_path):
    """Any order of plain and --gpu runs: the uninstall step names the build that must go."""
    installed: dict[str, str] = {}
    monkeypatch.setattr(installer, "installed_version", lambda _python, name: installed.get(name))
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(installer, "pip", lambda _python, *args: calls.append(args))
    for gpu, before, removed, pinned in (
        (True, {"onnxruntime": "1.22.0"}, ["onnxruntime"], "onnxruntime-gpu[cuda,cudnn]==1.22.0"),
        (True, {"onnxruntime-gpu": "1.22.0"}, [], "onnxruntime-gpu[cuda,cudnn]==1.22.0"),  # again: idempotent
        (False, {"onnxruntime-gpu": "1.22.0", "cupy-cuda12x": "13.3"}, ["onnxruntime-gpu", "cupy-cuda12x"],
         "onnxruntime==1.22.0"),
        (False, {"onnxruntime": "1.22.0"}, [], "onnxruntime==1.22.0"),
        (True, {}, [], "onnxruntime-gpu[cuda,cudnn]>=1.21"),  # a fresh venv
    ):
        installed.clear()
        installed.update(before)
        calls.clear()
        installer.install_project(Path("python"), gpu, tests=False)
        uninstalls = [c for c in calls if c[0] == "uninstall"]
        assert uninstalls == ([("uninstall", "--yes", *removed)] if removed else [])
        [install] = [c for c in calls if "install" in c and c[0] != "uninstall"]
        assert pinned in install and any(a.endswith("[gpu]" if gpu else "[cpu]") for a in install)


def _fake_python(folder: Path) -> Path:
    python = folder / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    return python


def test_a_second_checkout_does_not_repoint_the_first(installer, isolated_home, monkeypatch, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    pythons = {}
    for checkout in (first, second):
        pythons[checkout] = _fake_python(checkout)
        monkeypatch.setattr(installer, "ROOT", checkout)
        installer.write_worker_config(pythons[checkout])
    assert worker_setup(first).python == str(pythons[first])
    assert worker_setup(second).python == str(pythons[second])
    assert worker_setup(first).origin == str(first / WORKER_CONFIG_NAME)
    # the user-wide file, for a script copied away from any checkout, still names the first install
    assert worker_setup(tmp_path / "elsewhere").python == str(pythons[first])


def test_lookup_order_env_then_beside_then_venv_then_user_wide(isolated_home, monkeypatch, tmp_path):
    checkout = tmp_path / "checkout"
    venv_python = _fake_python(checkout)
    assert worker_setup(checkout).python == str(venv_python)  # no file yet: the venv beside the script
    other = _fake_python(tmp_path / "other")
    (checkout / WORKER_CONFIG_NAME).write_text(json.dumps({"python": str(other), "models_dir": "/m",
                                                           "presets_dir": "/p"}))
    setup = worker_setup(checkout)
    assert setup.python == str(other) and setup.env() == {"FACEFUSION_OBS_MODELS": "/m",
                                                          "FACEFUSION_OBS_PRESETS": "/p"}
    monkeypatch.setenv("FACEFUSION_OBS_PRESETS", "/chosen")  # an explicit variable beats a recorded folder
    assert worker_setup(checkout).presets_dir == Path("/chosen")
    monkeypatch.setenv("FACEFUSION_OBS_PYTHON", "/usr/bin/python3")
    assert worker_setup(checkout).origin == "FACEFUSION_OBS_PYTHON"
    monkeypatch.delenv("FACEFUSION_OBS_PYTHON")
    os.remove(other)  # a recorded interpreter that is gone falls through to the venv beside the script
    assert worker_setup(checkout).python == str(venv_python)
    (checkout / WORKER_CONFIG_NAME).write_text("{not json")
    assert worker_setup(checkout).python == str(venv_python)
    assert worker_setup(tmp_path / "nothing-here") is None


def test_a_wheel_carries_the_manifest_and_runs_outside_the_checkout(isolated_home, tmp_path):
    source, wheels = tmp_path / "source", tmp_path / "wheels"
    source.mkdir()  # setuptools writes build/ and *.egg-info beside the sources: keep them out of the checkout
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_ROOT / name, source / name)
    shutil.copytree(PROJECT_ROOT / "facefusion_obs", source / "facefusion_obs",
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", "wheel", "--no-deps",
                    "--wheel-dir", str(wheels), str(source)], check=True, capture_output=True, timeout=600)
    [wheel] = wheels.glob("facefusion_obs-*.whl")
    assert "facefusion_obs/models/manifest.json" in zipfile.ZipFile(wheel).namelist()
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", "install", "--no-deps",
                    "--target", str(target), str(wheel)], check=True, capture_output=True, timeout=600)
    code = ("from facefusion_obs.config import MODEL_MANIFEST, locations; "
            "from facefusion_obs.models.manifest import load_manifest; "
            f"print(MODEL_MANIFEST.is_relative_to({str(target)!r}), len(load_manifest()) > 0, locations().models_dir)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEFUSION_OBS")}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=dict(env, PYTHONPATH=str(target)),
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[:2] == ["True", "True"]
    assert Path(out[2]) == isolated_home / "data" / "facefusion-obs" / "models"  # not a checkout's models/


def test_gpu_requirements_replace_the_cpu_build_and_match_tensorrt():
    gpu = _load("gpu")
    gpu_requirements, cpu_requirements = gpu.gpu_requirements, gpu.cpu_requirements
    req = gpu_requirements("1.22.0", platform="linux")
    assert req.uninstall == ["onnxruntime"]
    assert "onnxruntime-gpu[cuda,cudnn]==1.22.0" in req.install
    assert "onnxruntime" not in req.install and "cupy-cuda12x>=13" in req.install
    assert "tensorrt-cu12-libs>=10.9,<11" in req.install and not req.notes
    uninstall, install = req.pip_commands("python3")
    assert uninstall[:4] == ["python3", "-m", "pip", "uninstall"] and install[3] == "install"
    older = gpu_requirements("1.20.1", platform="win32")
    assert "onnxruntime-gpu==1.20.1" in older.install and "tensorrt-cu12-libs>=10.4,<11" in older.install
    newer = gpu_requirements("1.31.1", platform="linux")
    assert "onnxruntime-gpu[cuda,cudnn]==1.31.1" in newer.install and "doctor" in newer.notes[0]
    assert not any(line.startswith("tensorrt") for line in gpu_requirements("1.22.0", tensorrt=False).install)
    with pytest.raises(ValueError, match="macOS"):
        gpu_requirements("1.22.0", platform="darwin")
    with pytest.raises(ValueError, match=r"1\.16\.3"):
        gpu_requirements("1.16.3", platform="linux")
    assert cpu_requirements("1.22.0").install == ["onnxruntime==1.22.0"]
