"""``facefusion-obs doctor``.

This machine has no NVIDIA GPU. The no-GPU report is checked as it really is; the GPU report is checked
by putting a stand-in ``nvidia-smi`` script on PATH that prints what the real tool prints for
``--query-gpu=name,driver_version,memory.total --format=csv,noheader`` (the doctor runs it as a real
subprocess). onnxruntime and model checks run for real; the inswapper files are generated STAND-INs.
"""

from __future__ import annotations

import json
import os
import stat

from facefusion_obs.cli import doctor
from facefusion_obs.cli.main import main


def _fake_nvidia_smi(folder, output: str, code: int = 0):
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nprintf '%s' '{output}'\nexit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return folder


def test_no_gpu_is_a_warning_with_a_next_step(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    [check] = doctor.check_gpu()
    assert check.status == doctor.WARN and "nvidia-smi" in check.detail
    assert "install.py --gpu" in check.next_step


def test_gpu_and_an_old_driver_are_reported(monkeypatch, tmp_path):
    """Stand-in nvidia-smi (no GPU here): the parsing and the driver rule are what is tested."""
    bin_dir = _fake_nvidia_smi(tmp_path / "bin", "NVIDIA GeForce RTX 3060, 470.82.01, 12288 MiB\\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    checks = doctor.check_gpu()
    assert checks[0].status == doctor.OK and "RTX 3060" in checks[0].detail and "470.82.01" in checks[0].detail
    assert checks[1].status == doctor.WARN and "525" in checks[1].next_step
    broken = _fake_nvidia_smi(tmp_path / "bin2", "NVIDIA-SMI has failed because it could not communicate", 9)
    monkeypatch.setenv("PATH", str(broken))
    [check] = doctor.check_gpu()
    assert check.status == doctor.FAIL and "driver" in check.next_step


def test_onnxruntime_provider_actually_starts_and_a_gpu_without_gpu_build_is_flagged():
    checks = {c.name: c for c in doctor.check_onnxruntime(gpu_present=True)}
    assert checks["provider"].status == doctor.OK and "CPUExecutionProvider" in checks["provider"].detail
    assert checks["onnxruntime"].status == doctor.WARN  # a GPU with the CPU build: say how to fix it
    assert "--gpu" in checks["onnxruntime"].next_step
    assert doctor.check_cupy(gpu_present=False).status == doctor.OK
    cupy = doctor.check_cupy(gpu_present=True)
    assert cupy.status == doctor.WARN and "cupy-cuda12x" in cupy.next_step


def test_models_report_stand_ins_missing_and_corrupt_files(isolated_home, monkeypatch):
    from standin_setup import install_standins

    files = install_standins(isolated_home, monkeypatch)
    data = bytearray(files["arcface_w600k_r50"].read_bytes())
    data[-1] ^= 1
    files["arcface_w600k_r50"].write_bytes(bytes(data))
    files["inswapper_128_fp16"].unlink()
    checks = {c.name: c for c in doctor.check_models()}
    assert checks["model face_landmark"].status == doctor.OK
    assert "STAND-IN" in checks["model inswapper_128"].detail
    fp16 = checks["model inswapper_128_fp16"]
    assert fp16.status == doctor.WARN and "models fetch inswapper_128_fp16" in fp16.next_step
    bad = checks["model arcface_w600k_r50"]
    assert "corrupt" in bad.detail and "models fetch arcface_w600k_r50 --force" in bad.next_step


def test_missing_insightface_models_name_the_licence_step(isolated_home, monkeypatch):
    monkeypatch.setenv("FACEFUSION_OBS_MODELS", str(isolated_home / "no-models"))
    checks = {c.name: c for c in doctor.check_models()}
    swap = checks["model inswapper_128"]
    assert swap.status == doctor.WARN
    assert "facefusion-obs models fetch inswapper_128 --accept-license" in swap.next_step
    assert "non-commercial" in swap.next_step
    assert checks["model face_landmark"].status == doctor.FAIL  # the built-in path needs it


def test_doctor_command_prints_json(capsys):
    code = main(["doctor", "--json"])
    checks = json.loads(capsys.readouterr().out)
    names = {c["name"] for c in checks}
    assert {"gpu", "onnxruntime", "provider", "cupy", "model inswapper_128"} <= names or "gpu0" in names
    assert code in (0, 1) and all(c["status"] in ("ok", "warn", "fail") for c in checks)
    assert all(c["next_step"] for c in checks if c["status"] != "ok")
