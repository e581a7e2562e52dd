"""``facefusion-obs bench faces``: the mesh swap at 1280x720, per stage, plus landmark jitter.

Target: one face at 1280x720 through faces + swap at >= 30 frames/s on a 2-core CPU, and landmark
jitter <= 0.5 px RMS on a still face with sensor noise after smoothing. Inputs are real photos from
packages (skimage's astronaut as the preset, insightface's t1.jpg as the stream; see ``demo/photos.py``),
not synthetic faces.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from facefusion_obs.runtime.pool import ModelPool

WIDTH, HEIGHT = 1280, 720


def stream_frame() -> np.ndarray:
    """A 1280x720 frame from t1.jpg, framed around one seated person like a webcam would be."""
    from facefusion_obs.demo.photos import sample_image

    bgr = cv2.imread(str(sample_image("t1.jpg")))
    crop = bgr[230:620, 330:1024]  # the man in the middle, in the 1280x886 photo
    return np.ascontiguousarray(cv2.resize(crop, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)[..., ::-1])


def astronaut_preset(root: Path) -> str:
    from facefusion_obs.demo.photos import astronaut_path
    from facefusion_obs.presets import PresetStore

    PresetStore(root / "presets").add("astronaut", [astronaut_path()], replace=True)
    return "astronaut"


def noisy(frame: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    n = rng.normal(0.0, sigma, frame.shape).astype(np.float32)
    return np.clip(frame.astype(np.float32) + n, 0, 255).astype(np.uint8)


def landmark_jitter(pool: ModelPool, frame: np.ndarray, frames: int, sigma: float = 4.0,
                    smoothing: bool = True) -> float:
    """RMS (px) of the landmarks around their mean, same frame repeated with Gaussian sensor noise."""
    from facefusion_obs.faces import FaceTracker

    rng = np.random.default_rng(1)
    tracker = FaceTracker(pool, smoothing=smoothing)
    seen = []
    for i in range(frames):
        faces = tracker.process(noisy(frame, rng, sigma), i / 30.0)
        if faces and i >= frames // 3:  # after the filter settled
            seen.append(faces[0].landmarks[:, :2])
    if not seen:
        raise RuntimeError("no face tracked in the jitter sequence")
    a = np.array(seen)
    return float(np.sqrt(((a - a.mean(0)) ** 2).sum(-1).mean()))


def run(args: argparse.Namespace) -> int:
    with ModelPool() as pool:  # the benchmark's models, loaded once
        return _run(args, pool)


def _run(args: argparse.Namespace, pool: ModelPool) -> int:
    import os

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frames = 30 if args.quick else 300
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FACEFUSION_OBS_PRESETS"] = str(Path(tmp) / "presets")
        from facefusion_obs.config import validate_options
        from facefusion_obs.swap.mesh import MeshSwapper

        name = astronaut_preset(Path(tmp))
        frame = stream_frame()
        swapper = MeshSwapper(validate_options({"preset": name}), pool)
        rng = np.random.default_rng(0)
        inputs = [noisy(frame, rng, 2.0) for _ in range(8)]
        for i in range(5):
            swapper.process(inputs[i % 8], i / 30)
        stages = {k: [] for k in ("detect", "landmarks", "warp", "blend", "total")}
        t_start = time.perf_counter()
        for i in range(frames):
            t0 = time.perf_counter()
            result, mask = swapper.process(inputs[i % 8], (i + 5) / 30)
            total = (time.perf_counter() - t0) * 1e3
            for k in ("detect", "landmarks", "warp", "blend"):
                stages[k].append(swapper.timings.get(k, 0.0))
            stages["total"].append(total)
        wall = time.perf_counter() - t_start
        if mask is None:
            print("bench faces: no face was swapped (check the models)")
            return 1
        ys, xs = np.nonzero(mask > 0.05)
        cx, cy, half = (xs.min() + xs.max()) // 2, (ys.min() + ys.max()) // 2, int(0.8 * (ys.max() - ys.min()))
        y0, x0 = max(0, cy - half), max(0, cx - half)
        crop = (slice(y0, min(HEIGHT, cy + half)), slice(x0, min(WIDTH, cx + half)))
        before_after = np.hstack([frame[crop], result[crop]])
        before_after = cv2.resize(before_after, (640, round(640 * before_after.shape[0] / before_after.shape[1])),
                                  interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(out / "mesh_before_after.png"), cv2.cvtColor(before_after, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_PNG_COMPRESSION, 9])
        jitter_n = 45 if args.quick else 120
        jitter_raw = landmark_jitter(pool, frame, jitter_n, smoothing=False)
        jitter = landmark_jitter(pool, frame, jitter_n, smoothing=True)

    print(f"mesh swap, one face, {WIDTH}x{HEIGHT}, {frames} frames, {cv2.getNumberOfCPUs()} CPU cores")
    print(f"{'stage':10} {'mean ms':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for k, v in stages.items():
        a = np.array(v)
        print(f"{k:10} {a.mean():8.2f} {np.percentile(a, 50):8.2f} {np.percentile(a, 95):8.2f}")
    fps = frames / wall
    print(f"throughput {fps:.1f} frames/s (target >= 30): {'PASS' if fps >= 30 else 'FAIL'}")
    print(f"landmark jitter, still face + sensor noise (sigma 4): raw {jitter_raw:.3f} px RMS, "
          f"smoothed {jitter:.3f} px RMS (target <= 0.5): {'PASS' if jitter <= 0.5 else 'FAIL'}")
    print(f"picture: {out / 'mesh_before_after.png'}")
    return 0
