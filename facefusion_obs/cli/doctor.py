"""``facefusion-obs doctor``: what this machine can run, and the next step for whatever is missing.

Each check is real: ``nvidia-smi`` is asked for the GPU and driver, onnxruntime's providers are not just
listed but *started* on a generated stand-in model (a provider can be offered and still fail to load
its CUDA/TensorRT libraries), CuPy is asked for a device, and every model file is hashed against the
manifest. Exit status 0 when the built-in path (mesh engine, embedded models) works, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

OK, WARN, FAIL = "ok", "warn", "fail"
GPU_INSTALL = "reinstall the worker with GPU support: python installer/install.py --gpu"


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    next_step: str = ""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check GPU, driver, onnxruntime, CuPy and models; say what to do next")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.set_defaults(handler=_run)


def check_gpu() -> list[Check]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return [Check("gpu", WARN, "no NVIDIA GPU found (nvidia-smi is not on PATH)",
                      "the mesh engine and matting run on the CPU as they are; for the inswapper engine at "
                      "stream rates use a machine with an NVIDIA GPU and its driver, then " + GPU_INSTALL)]
    try:
        out = subprocess.run([exe, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [Check("gpu", FAIL, f"nvidia-smi could not run: {exc}",
                      "reinstall or update the NVIDIA driver, then run doctor again")]
    lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    if out.returncode != 0 or not lines:
        why = (out.stderr or out.stdout).strip().splitlines()[:1] or [f"exit status {out.returncode}"]
        return [Check("gpu", FAIL, f"nvidia-smi found no usable GPU: {why[0]}",
                      "check that the NVIDIA driver is installed and loaded (reboot after installing it)")]
    checks = []
    for i, line in enumerate(lines):
        parts = [p.strip() for p in line.split(",")]
        name, driver, memory = [*parts, "?", "?", "?"][:3]
        checks.append(Check(f"gpu{i}", OK, f"{name}, driver {driver}, {memory}"))
        major = driver.split(".")[0]
        if major.isdigit() and int(major) < 525:
            checks.append(Check(f"driver{i}", WARN, f"driver {driver} is older than CUDA 12 needs (525+)",
                                "update the NVIDIA driver to 525 or newer"))
    return checks


def _installed(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_onnxruntime(gpu_present: bool) -> list[Check]:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return [Check("onnxruntime", FAIL, "onnxruntime is not installed",
                      "pip install onnxruntime (or " + GPU_INSTALL + ")")]
    from facefusion_obs.runtime import onnx as ort_rt

    cpu_build, gpu_build = _installed("onnxruntime"), _installed("onnxruntime-gpu")
    checks = []
    if cpu_build and gpu_build:
        checks.append(Check("onnxruntime-builds", FAIL,
                            f"both onnxruntime {cpu_build} and onnxruntime-gpu {gpu_build} are installed; "
                            "they overwrite each other's files",
                            "pip uninstall -y onnxruntime onnxruntime-gpu, then " + GPU_INSTALL))
    offered = ort_rt.available_providers()
    build = f"onnxruntime-gpu {gpu_build}" if gpu_build else f"onnxruntime {cpu_build or '?'}"
    wanted = [name for name, _ in ort_rt.select_providers(offered)]
    step = ""
    if gpu_present and ort_rt.CUDA not in offered:
        step = GPU_INSTALL + " (this build has no CUDA provider)"
    checks.append(Check("onnxruntime", OK if not step else WARN,
                        f"{build}; providers offered: {', '.join(offered)}; order used: {' > '.join(wanted)}",
                        step))
    checks.append(check_provider_starts())
    return checks


def probe_graph() -> bytes:
    """A one-convolution ONNX graph built here, only to see which provider starts (not a model)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.full((4, 3, 3, 3), 0.1, np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "provider probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 32, 32])], [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def check_provider_starts() -> Check:
    """Open a probe graph on the chosen providers: the provider that *actually* runs is the truth."""
    from facefusion_obs.runtime import onnx as ort_rt

    wanted = ort_rt.select_providers()
    try:
        _, in_use = ort_rt.create_session(probe_graph(), wanted, label="provider probe")
    except Exception as exc:  # any failure here is the answer the user needs
        return Check("provider", FAIL, f"onnxruntime could not open a test model: {exc}",
                     "reinstall onnxruntime: " + GPU_INSTALL.replace(" --gpu", ""))
    if in_use != wanted[0][0]:
        return Check("provider", WARN, f"{wanted[0][0]} is offered but did not start; running on {in_use}",
                     "install the matching CUDA 12 / cuDNN 9 / TensorRT 10 libraries: " + GPU_INSTALL)
    return Check("provider", OK, f"inference runs on {in_use}")


def check_cupy(gpu_present: bool) -> Check:
    version = _installed("cupy-cuda12x") or _installed("cupy")
    if version is None:
        if gpu_present:
            return Check("cupy", WARN, "CuPy is not installed: pixel work runs on the CPU",
                         "pip install cupy-cuda12x (or " + GPU_INSTALL + ")")
        return Check("cupy", OK, "not installed (not needed without an NVIDIA GPU)")
    from facefusion_obs.runtime.xp import cupy_or_none

    if cupy_or_none() is None:
        return Check("cupy", WARN, f"CuPy {version} is installed but finds no CUDA device",
                     "check the NVIDIA driver (doctor's gpu line) and that CuPy matches CUDA 12")
    return Check("cupy", OK, f"CuPy {version}: pixel work can stay on the GPU")


_ROLE = {"inswapper_128": "the inswapper engine needs it (or its fp16 twin)",
         "inswapper_128_fp16": "faster inswapper on a GPU; inswapper_128 suffices",
         "arcface_w600k_r50": "the inswapper engine needs it",
         "scrfd_det_10g": "not used by this version"}


def _is_standin(path: Path) -> bool:
    """True for a generated test stand-in (its metadata says ``standin=true``): doctor must say so, so a
    test set-up is never mistaken for real weights. Real weights are hundreds of MiB and never parsed."""
    if path.stat().st_size > 64 * 2**20:
        return False
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(p.key == "standin" and p.value == "true" for p in model.metadata_props)


def check_models() -> list[Check]:
    from facefusion_obs.models import EMBEDDED_MODELS, PinsError, load_manifest, model_state

    checks = []
    for name, spec in load_manifest().items():
        embedded = name in EMBEDDED_MODELS
        try:
            state = model_state(name)
        except PinsError as exc:  # the model's hash is in an unusable pin file: say so, check the rest
            checks.append(Check(f"model {name}", FAIL if embedded else WARN, str(exc), exc.fix))
            continue
        if state.state == "ok":
            label = ""
            if spec.source == "url":
                try:
                    label = " (STAND-IN, generated, not the real weights)" if _is_standin(state.path) else ""
                except Exception:  # an unparsable file is simply not a stand-in
                    label = ""
            checks.append(Check(f"model {name}", OK, f"verified {state.path}{label}"))
            continue
        if state.state == "missing":
            hint = state.detail
            if spec.requires_license_acceptance:
                hint += f"  (licence: {spec.license}; see {spec.license_url})"
            detail = "missing" + ("" if embedded else f" (optional: {_ROLE.get(name, 'not used yet')})")
        elif state.state == "unpinned":
            detail = f"present but no SHA-256 to check it against ({state.detail})"
            hint = f"if you trust this file: facefusion-obs models pin {name} SHA256"
        else:
            detail = f"present but corrupt: {state.detail}"
            hint = f"facefusion-obs models fetch {name} --force" + (
                " --accept-license" if spec.requires_license_acceptance else "")
        checks.append(Check(f"model {name}", FAIL if embedded else WARN, detail, hint))
    return checks


def run_checks() -> list[Check]:
    gpu = check_gpu()
    gpu_present = any(c.status == OK for c in gpu)
    return [*gpu, *check_onnxruntime(gpu_present), check_cupy(gpu_present), *check_models()]


def _run(args: argparse.Namespace) -> int:
    checks = run_checks()
    if args.json:
        print(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        marks = {OK: "[ok]  ", WARN: "[warn]", FAIL: "[FAIL]"}
        for c in checks:
            print(f"{marks[c.status]} {c.name}: {c.detail}")
            if c.next_step:
                print(f"        next step: {c.next_step}")
    return 1 if any(c.status == FAIL for c in checks) else 0
