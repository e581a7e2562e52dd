"""``facefusion-obs bench swap``: the inswapper path at 1920x1080, per stage, with the models present.

Stages per face: ``align`` (five keypoints from the mesh, similarity fit, 128 warp), ``convert`` (crop to
the NCHW blob and the output back to uint8), ``inference``, ``paste`` (inverse warp of crop and soft mask
over the ROI, blend, face mask); ``frame`` is the per-frame output copy and mask allocation. Target: the
worker's overhead outside inference (frame + align + convert + paste) <= 4 ms per face on this CPU.

It times the real insightface files only, installed and verified; without them it says so in one line
with the fetch command and exits 1 (stand-in models are test scaffolding and live under ``tests/``).
Face tracking runs before the swap and is reported apart (``bench faces`` covers it).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

WIDTH, HEIGHT = 1920, 1080
OVERHEAD = ("frame", "align", "convert", "paste")


def stream_frame() -> np.ndarray:
    """A 1920x1080 webcam-like frame from insightface's t1.jpg (one seated person filling the view)."""
    from facefusion_obs.demo.photos import sample_image

    bgr = cv2.imread(str(sample_image("t1.jpg")))
    crop = bgr[230:620, 330:1024]
    return np.ascontiguousarray(cv2.resize(crop, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)[..., ::-1])


def _measure(engine, frames: list, n: int, to_device) -> dict[str, list[float]]:
    keys = ("track", *OVERHEAD, "inference")
    stages: dict[str, list[float]] = {k: [] for k in keys}
    for i in range(n + 3):
        frame = to_device(frames[i % len(frames)])
        engine.process(frame, i / 30.0)
        if i < 3 or engine.faces_swapped != 1:
            continue  # warm-up, or a frame where tracking lost the face
        for k in keys:
            stages[k].append(engine.timings.get(k, 0.0))
    return stages


def _table(title: str, stages: dict[str, list[float]]) -> float:
    print(title)
    print(f"{'stage':12} {'mean ms':>8} {'p50 ms':>8} {'p95 ms':>8}")
    rows = {k: np.array(v) for k, v in stages.items()}
    for k, a in rows.items():
        print(f"{k:12} {a.mean():8.2f} {np.percentile(a, 50):8.2f} {np.percentile(a, 95):8.2f}")
    overhead = sum(rows[k] for k in OVERHEAD)
    total = overhead + rows["inference"]
    print(f"{'total swap':12} {total.mean():8.2f} {np.percentile(total, 50):8.2f} {np.percentile(total, 95):8.2f}"
          "   (align + convert + inference + paste + frame; tracking not included)")
    print(f"{'overhead':12} {overhead.mean():8.2f} {np.percentile(overhead, 50):8.2f} "
          f"{np.percentile(overhead, 95):8.2f}   (everything outside inference)")
    return float(np.percentile(overhead, 50))


def run(args: argparse.Namespace) -> int:
    """Times the real inswapper models; without them, one line with the fetch command and exit 1."""
    from facefusion_obs.models import ModelUnavailable
    from facefusion_obs.runtime.pool import ModelPool
    from facefusion_obs.swap import engine_status

    with ModelPool() as pool:
        status = engine_status(pool, "inswapper")
        if not status.available:
            print(f"bench swap: the inswapper models are not installed ({', '.join(status.missing)}); "
                  f"fetch them with: {status.fix}")
            return 1
        try:
            return _run(args, pool)
        except ModelUnavailable as exc:
            print(f"bench swap: {exc}")
            return 1


def _run(args: argparse.Namespace, pool: Any) -> int:
    import os

    from facefusion_obs.runtime.xp import cupy_or_none

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = 20 if args.quick else 100
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["FACEFUSION_OBS_PRESETS"] = str(tmp / "presets")
        from facefusion_obs.bench.faces import astronaut_preset
        from facefusion_obs.config import validate_options
        from facefusion_obs.swap.align import align_crop, five_from_mesh
        from facefusion_obs.swap.inswapper import InswapperSwapper

        preset = astronaut_preset(tmp)
        engine = InswapperSwapper(validate_options({"engine": "inswapper", "preset": preset}), pool)
        arcface, swapper = engine.arcface, engine.swapper
        used = {"arcface": f"arcface_w600k_r50 (real, verified: {arcface.path.name})",
                "inswapper": f"{swapper.path.stem} (real, verified)"}
        engine.sync_timings = True
        frame = stream_frame()
        rng = np.random.default_rng(0)
        frames = [np.clip(frame + rng.normal(0, 2.0, frame.shape), 0, 255).astype(np.uint8) for _ in range(6)]
        _, mask = engine.process(frames[0], 0.0)
        if mask is None:
            print("bench swap: no face was swapped in the benchmark frame (check the face models)")
            return 1
        # With stand-ins the swapped pixels mean nothing, so the picture shows what the engine decides:
        # the soft paste mask (the matting's opaque region) over the frame, and the aligned 128 crop.
        overlay = frame.astype(np.float32)
        overlay[..., 1] += (255.0 - overlay[..., 1]) * mask * 0.6
        crop, _ = align_crop(frame, five_from_mesh(engine.tracker.tracks[0].last.landmarks), 128)
        picture = np.hstack([frame, overlay.astype(np.uint8)])[::4, ::4].copy()
        picture[:256, :256] = cv2.resize(crop, (256, 256), interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(out / "inswapper_mask.png"), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f"inswapper swap, one face, {WIDTH}x{HEIGHT}, {n} frames, {cv2.getNumberOfCPUs()} CPU cores")
        print(f"provider: {swapper.provider}")
        for role, what in used.items():
            print(f"{role:10} {what}")
        cpu_overhead = _table("frames on the host (numpy):", _measure(engine, frames, n, lambda f: f))
        cp = cupy_or_none()
        if cp is not None and swapper.device == "cuda":
            _table("frames on the GPU (cupy, IOBinding, synchronised per stage):",
                   _measure(engine, frames, n, cp.asarray))
        else:
            print("GPU: not measured (no CUDA provider with CuPy on this machine); the cupy path is the same "
                  "code, its primitives are tested on numpy")
    verdict = "PASS" if cpu_overhead <= 4.0 else "FAIL"
    print(f"overhead outside inference, p50: {cpu_overhead:.2f} ms per face (target <= 4 ms on CPU): {verdict}")
    print(f"picture: {out / 'inswapper_mask.png'} (soft paste mask in green, aligned 128 crop top-left)")
    return 0
