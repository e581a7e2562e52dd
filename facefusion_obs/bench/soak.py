"""``facefusion-obs bench soak [--minutes N]``: the product running for N minutes, watched for leaks.

A real worker, started and supervised by the real ``Supervisor`` as OBS's side does, serves one
channel with the whole pipeline (mesh swap to the astronaut preset, ``chroma+person``) while this
process plays the demo's generated clip into it at 30 fps, as a camera would, and reads every output
back. Once a minute (every 10 s with ``--quick``, which runs 1 minute) it prints the worker's
resident memory, open file descriptors and threads, the same for this side, and the frames sent,
processed and dropped. Growth is measured from the first sample, taken after a warm-up, so model
loading and first-frame allocations are not counted as a leak.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

FPS = 30
SIZE = (640, 360)
WARMUP_S = 10.0


def process_stats(pid: int) -> tuple[float, int, int]:
    """(resident MB, open fds, threads) of a process, from /proc (Linux)."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_mb = int(fields["VmRSS"].split()[0]) / 1024
    return rss_mb, len(os.listdir(f"/proc/{pid}/fd")), int(fields["Threads"])


def run(args: argparse.Namespace) -> int:
    from facefusion_obs.bench.faces import astronaut_preset
    from facefusion_obs.demo.clip import ClipRenderer
    from facefusion_obs.ipc.frames import FrameChannel
    from facefusion_obs.obs.supervisor import Supervisor
    from facefusion_obs.runtime.pool import ModelPool

    quick = bool(getattr(args, "quick", False))
    minutes = 1.0 if quick else float(getattr(args, "minutes", None) or 10.0)
    every_s = 10.0 if quick else 60.0
    if not sys.platform.startswith("linux"):
        print("bench soak reads /proc: Linux only")
        return 2
    width, height = SIZE
    with tempfile.TemporaryDirectory() as tmp_name, ModelPool() as pool:
        tmp = Path(tmp_name)
        os.environ["FACEFUSION_OBS_PRESETS"] = str(tmp / "presets")
        preset = astronaut_preset(tmp)
        renderer = ClipRenderer(pool, width, height)
        clip = []
        for t in range(4 * FPS):  # one sway period: the clip loops seamlessly
            bgra = np.empty((height, width, 4), np.uint8)
            bgra[..., :3], bgra[..., 3] = renderer.frame(t)[0][..., ::-1], 255
            clip.append(np.ascontiguousarray(bgra))

        sup = Supervisor(sys.executable, log=lambda m: None, env={"FACEFUSION_OBS_PRESETS": str(tmp / "presets")})
        sup.set_live(1)
        deadline = time.monotonic() + 60
        while not sup.running:
            if time.monotonic() > deadline:
                print(f"bench soak: the worker did not start: {sup.state} {sup.detail}")
                return 1
            time.sleep(0.05)
        start_pid = sup.worker_pid
        channel = FrameChannel.create(width, height)
        sup.track_segment(channel.name)
        options = {"matting": "chroma+person", "engine": "mesh", "preset": preset}
        sup.send(sup.generation, "open", channel=1, shm=channel.name, width=width, height=height)
        sup.send(sup.generation, "configure", channel=1, options=options)
        back = np.empty(channel.frame_bytes, np.uint8)
        sent = received = 0
        last_count = 0
        first: tuple[tuple[float, int, int], tuple[float, int, int]] | None = None
        print(f"bench soak: {minutes:g} min at {width}x{height}, {FPS} fps in, mesh + chroma+person, "
              f"{os.cpu_count()} CPU cores")
        print(f"  {'time':>6}  {'worker MB':>9} {'fds':>4} {'thr':>4}   {'this MB':>8} {'fds':>4} {'thr':>4}"
              f"   {'sent':>6} {'processed':>9} {'dropped':>7}")
        began = time.monotonic()
        next_frame, next_sample = began, began + WARMUP_S
        end = began + WARMUP_S + minutes * 60
        try:
            while time.monotonic() < end:
                now = time.monotonic()
                if now >= next_frame:
                    frame = clip[sent % len(clip)]
                    channel.input.write(
                        lambda s, f=frame: ctypes.memmove(channel.input.slot_address(s), f.ctypes.data, f.nbytes),
                        frame_id=sent + 1, capture_ns=time.monotonic_ns())
                    sup.notify(1)
                    sent += 1
                    next_frame += 1.0 / FPS
                meta = channel.output.read(
                    lambda s: ctypes.memmove(back.ctypes.data, channel.output.slot_address(s), back.nbytes),
                    newer_than=last_count)
                if meta is not None:
                    last_count, received = meta.count, received + 1
                if now >= next_sample:
                    worker, here = process_stats(sup.worker_pid), process_stats(os.getpid())
                    if first is None:
                        first, sent, received = (worker, here), 0, 0  # counted from the warm-up's end
                    elapsed, dropped = now - began - WARMUP_S, max(0, sent - received)
                    print(f"  {elapsed / 60:5.1f}m  {worker[0]:9.1f} {worker[1]:4d} {worker[2]:4d}   "
                          f"{here[0]:8.1f} {here[1]:4d} {here[2]:4d}   {sent:6d} {received:9d} {dropped:7d}",
                          flush=True)
                    next_sample += every_s
                time.sleep(0.001)
            worker, here = process_stats(sup.worker_pid), process_stats(os.getpid())
        finally:
            sup.send(sup.generation, "close", channel=1)
            sup.release_segment(channel.name)
            channel.close()
            sup.close()
        assert first is not None
        (w0, h0) = first
        restarted = sup.worker_pid != start_pid
        print(f"\ngrowth over {minutes:g} min: worker {worker[0] - w0[0]:+.1f} MB, {worker[1] - w0[1]:+d} fds, "
              f"{worker[2] - w0[2]:+d} threads; this side {here[0] - h0[0]:+.1f} MB, {here[1] - h0[1]:+d} fds, "
              f"{here[2] - h0[2]:+d} threads")
        print(f"frames: {sent} sent, {received} processed ({min(received, sent) / max(sent, 1):.1%}), "
              f"{max(0, sent - received)} dropped (the newest frame wins when the worker is behind); "
              f"worker {'RESTARTED' if restarted else 'never restarted'}; "
              f"threads alive here: {threading.active_count()}")
    return 0
