"""``facefusion-obs bench live``: the whole product inside real OBS, as a streamer runs it.

OBS (Debian ``obs-studio`` under Xvfb, software GL) plays the demo's 960x540 green-screen clip at
30 fps from a media source, with the filter on it running mesh + chroma+person on the demo preset.
The numbers are the filter's own, read from the status line it logs every second: frames in and out
per second, and latency from the frame's capture timestamp to its display. The first seconds (the
worker loading its models, the pacer settling) are left out.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STATUS = re.compile(r"in (\d+) fps, out (\d+) fps \| latency p50 (\d+) p95 (\d+) ms(.*)")
QUALITY = re.compile(r"quality: (.+?) \(keeping up")
SETTINGS: dict[str, Any] = {"engine": "mesh", "matting": "chroma+person", "key_color": "green"}
WARM_UP_S = 8.0  # after the first output: models warm, the pacer has settled
# Targets from the live issue, on this 2-core machine.
TARGET_OUT_RATIO, TARGET_P50_MS, TARGET_P95_MS = 0.95, 80.0, 120.0


def _samples(log: str, after: int) -> list[tuple[int, int, int, int, str]]:
    rows = []
    for m in STATUS.finditer(log, after):
        quality = QUALITY.search(m[5])
        rows.append((int(m[1]), int(m[2]), int(m[3]), int(m[4]), quality[1] if quality else "full"))
    return rows


def measure(seconds: float, frames: int) -> dict[str, Any]:
    """Run OBS on the demo clip for ``seconds`` after warm-up; the filter's figures, medians of its lines."""
    from facefusion_obs.bench.obs_instance import ObsInstance, facefusion_filter
    from facefusion_obs.demo.assets import ensure_demo_preset
    from facefusion_obs.demo.clip import SIZE, ClipRenderer, write_clip
    from facefusion_obs.presets import PresetStore
    from facefusion_obs.runtime.pool import ModelPool

    with tempfile.TemporaryDirectory(prefix="ffobs-live-") as tmp:
        root = Path(tmp)
        clip = write_clip(root / "clip.mp4", frames, ClipRenderer(ModelPool(), *SIZE))
        media = {
            "id": "ffmpeg_source", "versioned_id": "ffmpeg_source", "name": "Camera",
            "settings": {"local_file": str(clip), "is_local_file": True, "looping": True,
                         "restart_on_activate": True, "close_when_inactive": False, "hw_decode": False},
            "filters": [facefusion_filter(**SETTINGS, preset="demo")],
        }
        inst = ObsInstance(root, [media], sys.executable, SIZE)
        ensure_demo_preset(PresetStore(Path(inst.env["FACEFUSION_OBS_PRESETS"])))
        inst.start()
        try:
            inst.wait_for_log("worker running", 90)
            deadline = time.monotonic() + 90
            while not any(r[1] > 0 for r in _samples(inst.log_text(), 0)):
                if time.monotonic() > deadline:
                    raise RuntimeError("no output from the filter within 90 s:\n" + inst.log_text()[-2000:])
                time.sleep(0.5)
            time.sleep(WARM_UP_S)
            start = len(inst.log_text())
            time.sleep(seconds)
            rows = _samples(inst.log_text(), start)
        finally:
            inst.stop()
    if not rows:
        raise RuntimeError("the filter logged no status line while measuring")
    qualities = sorted({r[4] for r in rows})
    return {
        "size": SIZE, "lines": len(rows),
        "in": statistics.median(r[0] for r in rows), "out": statistics.median(r[1] for r in rows),
        "p50": statistics.median(r[2] for r in rows), "p95": statistics.median(r[3] for r in rows),
        "worst_p95": max(r[3] for r in rows), "qualities": qualities,
    }


def run(args: argparse.Namespace) -> int:
    from facefusion_obs.bench.obs_instance import obs_available

    if not obs_available():
        print("bench live needs OBS Studio and Xvfb: run `python3 installer/install.py --tests` first")
        return 2
    seconds = 10.0 if args.quick else 60.0
    print(f"Real OBS under Xvfb, demo clip 960x540 at 30 fps, filter {SETTINGS['engine']} + "
          f"{SETTINGS['matting']}, {seconds:.0f} s after warm-up; the filter's own status lines (medians)")
    r = measure(seconds, 120)
    ratio = r["out"] / r["in"] if r["in"] else 0.0
    checks = [
        (f"out / in fps {r['out']:.0f} / {r['in']:.0f} = {ratio:.2f}", f">= {TARGET_OUT_RATIO}",
         ratio >= TARGET_OUT_RATIO),
        (f"latency p50 {r['p50']:.0f} ms", f"<= {TARGET_P50_MS:.0f}", r["p50"] <= TARGET_P50_MS),
        (f"latency p95 {r['p95']:.0f} ms (worst line {r['worst_p95']} ms)", f"<= {TARGET_P95_MS:.0f}",
         r["p95"] <= TARGET_P95_MS),
    ]
    for what, target, met in checks:
        print(f"  {what:<44} target {target:<7} {'met' if met else 'MISSED'}")
    print(f"  quality levels seen: {', '.join(r['qualities'])} ({r['lines']} status lines)")
    return 0 if all(c[2] for c in checks) else 1
