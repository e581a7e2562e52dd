"""The GPU path's code, exercised here without a GPU.

This machine has no CUDA device, so CuPy cannot run. What CuPy runs is the pure array-module code
(``runtime/imageops`` without its OpenCV fast paths, and every stage written against ``xp``): with
OpenCV switched off, numpy runs exactly that code, and its pixels must match the fast path's. Where
CuPy and a device are present (the GPU machine), the same test also runs the pipeline on CuPy and
compares it with the numpy result.
"""

from __future__ import annotations

import numpy as np

from facefusion_obs.pipeline import frame as frame_module
from facefusion_obs.pipeline.frame import FramePipeline
from facefusion_obs.runtime import imageops
from facefusion_obs.runtime.xp import cupy_or_none


def _clip(pool, n: int = 4) -> list[np.ndarray]:
    from facefusion_obs.demo.clip import ClipRenderer

    renderer = ClipRenderer(pool, 640, 360)
    frames = []
    for t in range(n):
        bgra = np.empty((360, 640, 4), np.uint8)
        bgra[..., :3], bgra[..., 3] = renderer.frame(5 * t)[0][..., ::-1], 255
        frames.append(bgra)
    return frames


def _run(pool, options, frames, xp=None) -> list[np.ndarray]:
    pipeline = FramePipeline(options, pool, xp=xp)
    try:
        outs = []
        for f in frames:
            out = np.empty_like(f)
            pipeline.process(f, out)  # written into a host buffer, as into an output slot
            outs.append(out)
        return outs
    finally:
        pipeline.close()


def _options(tmp_path, monkeypatch):
    from facefusion_obs.bench.faces import astronaut_preset

    monkeypatch.setenv("FACEFUSION_OBS_PRESETS", str(tmp_path / "presets"))
    return {"matting": "chroma+person", "engine": "mesh", "preset": astronaut_preset(tmp_path)}


def test_the_array_module_is_chosen_once_per_pipeline(model_pool, monkeypatch, tmp_path):
    asked = []
    monkeypatch.setattr(frame_module, "cupy_or_none", lambda: asked.append(1))
    pipeline = FramePipeline(_options(tmp_path, monkeypatch), model_pool)
    try:
        for f in _clip(model_pool, 3):
            pipeline.process(f)
        assert asked == [1] and pipeline.xp is np
    finally:
        pipeline.close()


def test_the_device_code_path_gives_the_same_pixels(model_pool, monkeypatch, tmp_path):
    options = _options(tmp_path, monkeypatch)
    frames = _clip(model_pool)
    fast = _run(model_pool, options, frames, xp=np)
    cupy = cupy_or_none()
    device = _run(model_pool, options, frames, xp=cupy) if cupy is not None else None
    monkeypatch.setattr(imageops, "_cv2_for", lambda xp: None)
    pure = _run(model_pool, options, frames, xp=np)
    for reference in (pure, device):
        if reference is None:
            continue
        for a, b in zip(fast, reference, strict=True):
            diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
            assert diff[..., 3].mean() < 0.5 and diff[..., :3].mean() < 0.5, diff.mean(axis=(0, 1))
            assert np.percentile(diff, 99.9) <= 8
    # the swap really happened in both (the comparison is not between two pass-throughs)
    assert np.abs(fast[0].astype(int) - frames[0][..., [2, 1, 0, 3]]).max() > 50
