#!/usr/bin/env python3
"""Set up facefusion-obs: the worker's venv, its dependencies, the embedded models, and OBS's config.

    python3 installer/install.py            # worker venv + embedded models + worker.json beside the script
    python3 installer/install.py --gpu      # ... with onnxruntime-gpu, CuPy and TensorRT instead
    python3 installer/install.py --tests    # ... plus what the test suite needs (OBS, Xvfb, test data)

Idempotent: run it again at any time; it only does what is missing. Standard library only, because
it runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from facefusion_obs.config import WORKER_CONFIG_NAME, WorkerSetup, locations, setup_from_file  # noqa: E402

MIN_PYTHON, MAX_PYTHON = (3, 10), (3, 13)
SYSTEM_PACKAGES_FOR_TESTS = {"obs": "obs-studio", "Xvfb": "xvfb"}
_NO_INDEX_HINTS = ("Could not find a version", "Failed to establish a new connection", "Network is unreachable",
                   "Temporary failure in name resolution", "No matching distribution", "ProxyError")


class InstallError(Exception):
    """Printed as one line with what to do next; exit status 1."""


def say(message: str) -> None:
    print(f"[install] {message}", flush=True)


def check_python() -> None:
    version = sys.version_info[:2]
    if not MIN_PYTHON <= version <= MAX_PYTHON:
        raise InstallError(
            f"Python {version[0]}.{version[1]} is not supported: the worker needs Python "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} to {MAX_PYTHON[0]}.{MAX_PYTHON[1]} (onnxruntime and LiteRT wheels). "
            "Run this script with such an interpreter, e.g. 'python3.11 installer/install.py'.")


def venv_python(venv_dir: Path) -> Path:
    return venv_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def ensure_venv(venv_dir: Path) -> Path:
    python = venv_python(venv_dir)
    if python.exists() and subprocess.run([str(python), "-c", "import pip"], capture_output=True).returncode == 0:
        say(f"venv ok: {venv_dir}")
        return python
    say(f"creating venv: {venv_dir}")
    venv.EnvBuilder(with_pip=True, clear=python.exists()).create(venv_dir)
    return python


def pip(python: Path, *args: str) -> None:
    """Run pip in the venv; turn an unreachable package index into a clear message."""
    result = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args],
                            capture_output=True, text=True)
    if result.returncode == 0:
        return
    output = result.stdout + result.stderr
    if any(hint in output for hint in _NO_INDEX_HINTS):
        raise InstallError("cannot reach the package index (PyPI) or it lacks a needed wheel for this platform:\n"
                           + _tail(output) + "\nCheck your network or pip's index settings (pip config list).")
    raise InstallError(f"pip {' '.join(args)} failed:\n{_tail(output)}")


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])


def installed_version(python: Path, package: str) -> str | None:
    result = subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
                            capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def _requirements_module():
    sys.path.insert(0, str(ROOT / "installer"))
    import gpu  # installer/gpu.py

    return gpu


def requirement_plan(python: Path, gpu: bool):  # -> gpu.GpuRequirements
    """What to uninstall first and which lines join the project install, keeping the version in use."""
    requirements = _requirements_module()
    version = installed_version(python, "onnxruntime-gpu") or installed_version(python, "onnxruntime")
    return requirements.gpu_requirements(version) if gpu else requirements.cpu_requirements(version)


def install_arguments(extra_lines: list[str], gpu: bool, tests: bool) -> list[str]:
    """pip's arguments for the project install: exactly one onnxruntime build, through the extras."""
    extras = ["gpu" if gpu else "cpu", *(["test"] if tests else [])]
    return ["install", "--editable", f"{ROOT}[{','.join(extras)}]", *extra_lines]


def install_project(python: Path, gpu: bool, tests: bool) -> None:
    """Remove the other onnxruntime build (if any), then install the project with the chosen one.

    Both steps run on every call, so any sequence of plain and ``--gpu`` runs ends with one build.
    """
    plan = requirement_plan(python, gpu)
    present = [name for name in plan.uninstall if installed_version(python, name) is not None]
    if present:
        say(f"removing {', '.join(present)} (switching onnxruntime to the {'GPU' if gpu else 'CPU'} build)")
        pip(python, "uninstall", "--yes", *present)
    for note in plan.notes:
        say(f"note: {note}")
    say("installing facefusion-obs and the worker's dependencies into the venv")
    pip(python, "--quiet", *install_arguments(plan.install, gpu, tests))


def write_worker_config(python: Path) -> list[Path]:
    """Record the worker beside the OBS script (this checkout), and user-wide only where none is yet.

    The OBS script looks beside itself first (``config.worker_setup``), so a second checkout never
    repoints the first; the user-wide file serves a script copied out of its checkout.
    """
    here = locations()
    setup = WorkerSetup(str(python.absolute()), here.models_dir, here.presets_dir, "installer")
    written = [ROOT / WORKER_CONFIG_NAME]
    if setup_from_file(here.worker_config, here) is None:
        written.append(here.worker_config)
    for config in written:
        config.parent.mkdir(parents=True, exist_ok=True)
        tmp = config.with_suffix(".tmp")
        tmp.write_text(setup.to_json())
        os.replace(tmp, config)
    say(f"OBS will start the worker with {setup.python} (recorded in {', '.join(map(str, written))})")
    return written


def fetch_embedded_models(python: Path) -> None:
    say("fetching the embedded models (MediaPipe 0.10.21 wheel from the package index, SHA-256 checked)")
    result = subprocess.run([str(python), "-m", "facefusion_obs.cli.main", "models", "fetch"], text=True)
    if result.returncode != 0:
        raise InstallError("fetching the embedded models failed (see above); run "
                           "'.venv/bin/facefusion-obs models fetch' again once the package index is reachable")


def ensure_test_system_packages() -> None:
    missing = [pkg for exe, pkg in SYSTEM_PACKAGES_FOR_TESTS.items() if shutil.which(exe) is None]
    if not missing:
        say("OBS Studio and Xvfb present")
        return
    prefix = [] if os.geteuid() == 0 else (["sudo"] if shutil.which("sudo") else None)
    if prefix is None or shutil.which("apt-get") is None:
        raise InstallError(f"the end-to-end tests need {' and '.join(missing)}; install them with your package "
                           "manager (Debian/Ubuntu: sudo apt-get install obs-studio xvfb)")
    say(f"installing {', '.join(missing)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        if subprocess.run(prefix + argv, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            raise InstallError(f"'{' '.join(argv)}' failed; install {' '.join(missing)} by hand")


def fetch_test_material(python: Path) -> None:
    say("fetching test photos (insightface 2.1 wheel from the package index, SHA-256 checked)")
    code = "from facefusion_obs.demo.photos import sample_images_dir; print(sample_images_dir())"
    if subprocess.run([str(python), "-c", code], stdout=subprocess.DEVNULL).returncode != 0:
        raise InstallError("fetching the test photos failed (see above)")


def print_obs_instructions() -> None:
    script = ROOT / "facefusion_obs.py"
    print(f"""
Done. In OBS Studio (29 or newer):
  1. Tools -> Scripts -> Scripts tab -> + -> choose {script}
     (Windows/macOS only: first set Tools -> Scripts -> Python Settings to a Python 3.10-3.13 install.)
  2. Right-click your camera source -> Filters -> Effect Filters -> + -> "FaceFusion Live".
  3. In the filter: pick a face preset (make one with
     '.venv/bin/facefusion-obs presets add NAME PHOTO --consent "WHO, WHEN, HOW"'),
     and a matting mode if you have a green screen. The status line shows the worker's state.
""")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv", help="where the worker's venv lives")
    parser.add_argument("--gpu", action="store_true", help="install onnxruntime-gpu, CuPy and TensorRT (NVIDIA)")
    parser.add_argument("--tests", action="store_true", help="also install what the test suite needs")
    parser.add_argument("--no-models", action="store_true", help="skip fetching the embedded models")
    args = parser.parse_args(argv)
    try:
        check_python()
        python = ensure_venv(args.venv)
        install_project(python, args.gpu, args.tests)
        write_worker_config(python)
        if not args.no_models:
            fetch_embedded_models(python)
        if args.tests:
            ensure_test_system_packages()
            fetch_test_material(python)
        print_obs_instructions()
        return 0
    except InstallError as exc:
        print(f"[install] error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
