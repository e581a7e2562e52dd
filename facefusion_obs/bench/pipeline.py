"""``facefusion-obs bench pipeline``: the whole pipeline, frame in to output slot.

Each configuration (matting off / chroma / chroma+person / person × swap off / mesh / inswapper where
its models are present) runs at 640x360, 1280x720 and 1920x1080 over a generated clip: the demo's
real person (insightface's t1.jpg) swaying in front of an unevenly lit green screen, swapped to the
astronaut preset. Every frame goes the worker's way: written into a real shared-memory input slot,
processed straight out of it into an output slot, and committed. Frames are fed back to back, so the
throughput is the worker's own limit, not the camera's.

The breakdown is the pipeline's ``StageClock``: mean ms per frame of each stage. Stages of the matte
run on the second thread (downscale, segmentation, key, refine), so the stages add up to more than a
frame's latency; ``waited`` is the main thread's wait for that thread, the part of it not hidden.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from facefusion_obs.runtime.pool import ModelPool

SIZES = ((640, 360), (1280, 720), (1920, 1080))
MATTING = ("off", "chroma", "chroma+person", "person")
STAGES = ("convert in", "faces+swap", "detect", "landmarks", "warp", "blend", "downscale", "segmentation",
          "key", "refine", "waited", "refine full-res", "despill", "compose", "slot copy")
TARGETS = {  # (size, matting, swap): (fps at least, p95 ms at most), from the live-at-30-fps issue
    ((1280, 720), "chroma+person", "mesh"): (30.0, 50.0),
    ((1280, 720), "chroma", "off"): (60.0, None),
    ((1920, 1080), "chroma+person", "mesh"): (15.0, None),
}


def _clip(pool: ModelPool, width: int, height: int, frames: int) -> list[np.ndarray]:
    from facefusion_obs.demo.clip import ClipRenderer

    renderer = ClipRenderer(pool, width, height)
    clip = []
    for t in range(frames):
        rgb = renderer.frame(t * 3)[0]  # every third frame of the sway: more motion per frame
        bgra = np.empty((height, width, 4), np.uint8)
        bgra[..., :3], bgra[..., 3] = rgb[..., ::-1], 255
        clip.append(bgra)
    return clip


def _engines(pool: ModelPool) -> list[str]:
    from facefusion_obs.swap import engine_status

    return ["off", "mesh", *(["inswapper"] if engine_status(pool, "inswapper").available else [])]


def measure(pipeline: Any, clip: list[np.ndarray], frames: int, warmup: int = 8) -> dict[str, Any]:
    """Latency per frame (ms), throughput and the stage means, through a real FrameChannel."""
    from facefusion_obs.ipc import shm
    from facefusion_obs.ipc.frames import FrameChannel

    height, width = clip[0].shape[:2]
    channel = FrameChannel.create(width, height)
    try:
        def view(memory: memoryview) -> np.ndarray:
            return np.frombuffer(memory, np.uint8).reshape(height, width, 4)

        latencies: list[float] = []
        start = 0.0
        for i in range(warmup + frames):
            if i == warmup:
                pipeline.clock.take()
                start = time.perf_counter()
            t0 = time.perf_counter()
            frame = clip[i % len(clip)]
            channel.input.write(lambda slot, f=frame: view(channel.input.slot_view(slot)).__setitem__(..., f),
                                frame_id=i, capture_ns=time.monotonic_ns())
            lease = channel.input.acquire()
            slot = channel.output.begin_write()
            pipeline.process(view(channel.input.slot_view(lease.slot)), out=view(channel.output.slot_view(slot)))
            channel.output.commit(slot, lease.meta.frame_id, lease.meta.capture_ns)
            channel.input.release()
            if i >= warmup:
                latencies.append((time.perf_counter() - t0) * 1e3)
                engine = getattr(pipeline.swapper, "engine", None)
                for stage, ms in (getattr(engine, "timings", None) or {}).items():
                    if stage in STAGES:
                        pipeline.clock.add(stage, ms)
        wall = time.perf_counter() - start
        stages = pipeline.clock.take()
    finally:
        name = channel.name
        channel.close()
        shm.unlink(name)
    return {"p50": float(np.percentile(latencies, 50)), "p95": float(np.percentile(latencies, 95)),
            "fps": frames / wall, "stages": stages}


def _copy_ms(width: int, height: int) -> float:
    """What writing one BGRA frame into a slot costs here (the 'slot copy' stage: the camera frame
    arriving in shared memory, which OBS's side pays in the real product)."""
    src = np.zeros((height, width, 4), np.uint8)
    dst = np.empty_like(src)
    t0 = time.perf_counter()
    for _ in range(20):
        dst[...] = src
    return (time.perf_counter() - t0) / 20 * 1e3


def run(args: argparse.Namespace) -> int:
    with ModelPool() as pool:
        return _run(args, pool)


def _run(args: argparse.Namespace, pool: ModelPool) -> int:
    from facefusion_obs.bench.faces import astronaut_preset
    from facefusion_obs.pipeline.frame import FramePipeline

    quick = bool(getattr(args, "quick", False))
    sizes = ((1280, 720),) if quick else SIZES
    frames = 20 if quick else 90
    print(f"bench pipeline: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"numpy {np.__version__}; frames fed back to back, {frames} per configuration")
    missed = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["FACEFUSION_OBS_PRESETS"] = str(tmp / "presets")
        preset = astronaut_preset(tmp)
        engines = _engines(pool)
        for width, height in sizes:
            clip = _clip(pool, width, height, 24 if quick else 48)
            copy_ms = _copy_ms(width, height)
            print(f"\n{width}x{height}")
            header = f"  {'matting':<14}{'swap':<10}{'p50 ms':>8}{'p95 ms':>8}{'fps':>7}   stages (ms per frame)"
            print(header)
            for swap in engines:
                for matting in MATTING:
                    options = {"matting": matting, "swap_enabled": swap != "off", "preset": preset,
                               "engine": "mesh" if swap == "off" else swap}
                    pipeline = FramePipeline(options, pool)
                    try:
                        result = measure(pipeline, clip, frames)
                    finally:
                        pipeline.close()
                    stages = {**result["stages"], "slot copy": copy_ms}
                    shown = ", ".join(f"{s} {stages[s]:.1f}" for s in STAGES if stages.get(s, 0.0) >= 0.05)
                    verdict = ""
                    target = TARGETS.get(((width, height), matting, swap))
                    if target:
                        fps_ok = result["fps"] >= target[0]
                        p95_ok = target[1] is None or result["p95"] <= target[1]
                        want = f"≥ {target[0]:.0f} fps" + (f", p95 ≤ {target[1]:.0f} ms" if target[1] else "")
                        verdict = f"   target {want}: {'ok' if fps_ok and p95_ok else 'MISSED'}"
                        if not (fps_ok and p95_ok):
                            missed.append(f"{width}x{height} {matting} {swap}")
                    print(f"  {matting:<14}{swap:<10}{result['p50']:8.1f}{result['p95']:8.1f}"
                          f"{result['fps']:7.1f}   {shown}{verdict}")
    print("\ntargets: " + ("all met" if not missed else "MISSED on " + "; ".join(missed)))
    return 0
