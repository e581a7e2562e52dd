"""onnxruntime provider choice, fallback, shared sessions and IOBinding I/O.

This machine has the CPU build of onnxruntime and no GPU. Provider *selection* is tested by
monkeypatching ``available_providers`` (the one call that reads what the installed build offers), so
the GPU builds' lists are exercised without a GPU. Provider *fallback* runs real sessions: asking the
CPU build for TensorRT/CUDA must end on the CPU and say so. Models are the generated STAND-INs of
``tests/standins.py`` (real input/output contracts, no weights), opened the way the model pool
opens them (``standin_setup.open_onnx``).
"""

from __future__ import annotations

import numpy as np
import pytest
import standins
from standin_setup import open_onnx, standin_pool

from facefusion_obs.runtime import onnx as ort_rt

GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_order_on_a_tensorrt_build_is_tensorrt_cuda_cpu_with_fp16_and_caches(isolated_home, monkeypatch):
    monkeypatch.setattr(ort_rt, "available_providers", lambda: list(reversed(GPU_BUILD)))
    chosen = ort_rt.select_providers()
    assert [name for name, _ in chosen] == GPU_BUILD
    trt = chosen[0][1]
    cache = isolated_home / "cache" / "facefusion-obs" / "tensorrt"
    assert trt["trt_fp16_enable"] is True
    assert trt["trt_engine_cache_enable"] and trt["trt_timing_cache_enable"]
    assert trt["trt_engine_cache_path"] == str(cache) == trt["trt_timing_cache_path"]
    assert ort_rt.provider_report()["best"] == "tensorrt"


def test_order_on_cuda_only_and_cpu_only_builds(monkeypatch):
    monkeypatch.setattr(ort_rt, "available_providers",
                        lambda: ["CUDAExecutionProvider", "AzureExecutionProvider", "CPUExecutionProvider"])
    assert [n for n, _ in ort_rt.select_providers()] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort_rt, "available_providers",
                        lambda: ["AzureExecutionProvider", "CPUExecutionProvider"])
    assert [n for n, _ in ort_rt.select_providers()] == ["CPUExecutionProvider"]
    assert ort_rt.provider_report()["best"] == "cpu"
    # even a build that (oddly) lists no CPU provider gets the CPU as the last resort
    assert [n for n, _ in ort_rt.select_providers([])] == ["CPUExecutionProvider"]


def test_gpu_providers_requested_on_the_cpu_build_fall_back_to_cpu_and_report_it(isolated_home, tmp_path):
    """A real session: the CPU build cannot run TensorRT/CUDA, so it must run on, and report, the CPU."""
    path = standins.inswapper_standin(tmp_path / "inswapper_128.onnx")
    session, in_use = ort_rt.create_session(path, ort_rt.select_providers(GPU_BUILD))
    assert in_use == "CPUExecutionProvider"
    assert session.get_providers()[0] == in_use
    assert (isolated_home / "cache" / "facefusion-obs" / "tensorrt").is_dir()  # engine cache made ready


def test_a_provider_that_fails_to_start_is_dropped_for_the_next(tmp_path, monkeypatch):
    """Simulates a GPU build whose TensorRT libraries are missing (session creation raises, as
    onnxruntime-gpu does): the wrapper must retry without it. Only the failing call is simulated; the
    retried session is real."""
    path = standins.arcface_standin(tmp_path / "w600k_r50.onnx")
    real_create = ort_rt._create
    attempts = []

    def create(p, providers):
        attempts.append([n for n, _ in providers])
        if providers[0][0] != "CPUExecutionProvider":
            raise RuntimeError(f"{providers[0][0]}: libnvinfer.so.10 not found")
        return real_create(p, providers)

    monkeypatch.setattr(ort_rt, "_create", create)
    session, in_use = ort_rt.create_session(path, ort_rt.select_providers(GPU_BUILD))
    assert attempts == [GPU_BUILD, GPU_BUILD[1:], GPU_BUILD[2:]]
    assert in_use == "CPUExecutionProvider" and session is not None


def test_an_unreadable_model_names_the_file(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(RuntimeError, match=r"broken\.onnx"):
        ort_rt.create_session(bad, ort_rt.select_providers(["CPUExecutionProvider"]))


def test_the_pool_shares_one_session_per_model_and_io_binding_matches_plain_run(tmp_path):
    pool, _ = standin_pool(tmp_path)
    with pool:
        a = pool.load(ort_rt.OnnxModel, "inswapper_128")
        b = pool.load(ort_rt.OnnxModel, "inswapper_128")
        assert a is b and a.provider == "CPUExecutionProvider" and a.device == "cpu"
        rng = np.random.default_rng(3)
        feeds = {"target": rng.random((1, 3, 128, 128), dtype=np.float32),
                 "source": rng.standard_normal((1, 512)).astype(np.float32)}
        bound = a.run(feeds)[0]
        plain = a.session.run(None, feeds)[0]
        assert bound.shape == (1, 3, 128, 128) and bound.dtype == np.float32
        np.testing.assert_array_equal(bound, plain)
        pool.evict("inswapper_128")  # a changed file: the next load reads and verifies it again
        assert pool.load(ort_rt.OnnxModel, "inswapper_128") is not a


def test_inputs_are_cast_to_the_dtype_the_model_declares(tmp_path):
    """The fp16 inswapper stand-in declares float16 I/O: float32 feeds are cast, float16 comes back."""
    path = standins.inswapper_standin(tmp_path / "inswapper_128_fp16.onnx", fp16=True)
    model = open_onnx(ort_rt.OnnxModel, path)
    model.prepare()
    target = np.full((1, 3, 128, 128), 0.25, np.float32)
    out = model.run({"target": target, "source": np.zeros((1, 512), np.float32)})[0]
    assert out.dtype == np.float16
    # source 0 → sigmoid 0.5 per channel; output = 0.5·0.25 + 0.5·0.5
    np.testing.assert_allclose(out.astype(np.float32), 0.375, atol=1e-3)
    with pytest.raises(RuntimeError, match="prepare"):
        open_onnx(ort_rt.OnnxModel, path).run({"target": target})
