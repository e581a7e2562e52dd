"""A real worker process behind the OBS side's Supervisor, driven the way a filter's render thread does.

Used by the consent and usage-log tests: open a channel, configure it (with the scene the OBS side
sends), feed it BGRA frames and read the newest output, with no OBS involved.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from facefusion_obs.ipc.frames import FrameChannel
from facefusion_obs.obs.supervisor import Supervisor


def until(predicate: Callable[[], Any], timeout: float, step: Callable[[], Any] | None = None) -> None:
    """Wait for ``predicate`` (calling ``step`` meanwhile), failing the test after ``timeout`` seconds."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, "condition not reached in time"
        if step is not None:
            step()
        time.sleep(1 / 60)


class WorkerDriver:
    """One channel to a supervised worker: ``feed`` a frame, get back the newest output (or None)."""

    def __init__(self, width: int, height: int, channel: int = 1) -> None:
        self.logs: list[str] = []
        self.sup = Supervisor(sys.executable, log=self.logs.append, startup_s=60.0)
        self.width, self.height, self.channel_id = width, height, channel
        self.channel: FrameChannel | None = None
        self.frame_id = 0
        self.count = 0
        self.last: np.ndarray | None = None

    def start(self) -> WorkerDriver:
        self.sup.start()
        until(lambda: self.sup.running, 60)
        return self

    def errors(self) -> list[str]:
        return [line.removeprefix("worker error: ") for line in self.logs if line.startswith("worker error: ")]

    def open(self, options: dict[str, Any], scene: str | None = None) -> None:
        self.channel = FrameChannel.create(self.width, self.height)
        self.sup.track_segment(self.channel.name)
        self.sup.send(self.sup.generation, "open", channel=self.channel_id, shm=self.channel.name,
                      width=self.width, height=self.height)
        self.configure(options, scene)

    def configure(self, options: dict[str, Any], scene: str | None = None) -> None:
        extra = {} if scene is None else {"scene": scene}
        self.sup.send(self.sup.generation, "configure", channel=self.channel_id, options=options, **extra)

    def feed(self, bgra: np.ndarray) -> np.ndarray | None:
        """Write one input frame, ring the worker, and take the newest output (the last one if none is new)."""
        ch = self.channel
        assert ch is not None
        self.frame_id += 1
        ch.input.write(lambda s: np.copyto(np.frombuffer(ch.input.slot_view(s), np.uint8).reshape(bgra.shape), bgra),
                       frame_id=self.frame_id, capture_ns=time.monotonic_ns())
        self.sup.notify(self.channel_id)
        out: list[np.ndarray] = []
        meta = ch.output.read(lambda s: out.append(np.frombuffer(ch.output.slot_view(s), np.uint8)
                                                   .reshape(bgra.shape).copy()), self.count)
        if meta is not None:
            self.count = meta.count
            self.sup.output_seen()
            self.last = out[0]
        return self.last

    def run_for(self, bgra: np.ndarray, seconds: float, fps: float = 30.0) -> np.ndarray | None:
        """Feed ``bgra`` at ``fps`` for ``seconds``; the newest output."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.feed(bgra)
            time.sleep(1 / fps)
        return self.last

    def fresh_output(self, bgra: np.ndarray, timeout: float = 30.0) -> np.ndarray:
        """Feed until an output newer than now arrives (so it reflects what was configured before)."""
        seen = self.count
        until(lambda: self.count > seen + 1, timeout, lambda: self.feed(bgra))
        assert self.last is not None
        return self.last

    def close_channel(self) -> None:
        if self.channel is not None:
            self.sup.send(self.sup.generation, "close", channel=self.channel_id)
            self.sup.release_segment(self.channel.name)
            self.channel.close()
            self.channel = None

    def stop(self) -> None:
        if self.channel is not None:
            self.sup.release_segment(self.channel.name)
            self.channel.close()
            self.channel = None
        self.sup.stop(timeout=5.0)


def green_frame(face_rgb: np.ndarray) -> np.ndarray:
    """BGRA: a face photo in the middle of a green screen (the astronaut: her face at rows 90-160)."""
    h, w = face_rgb.shape[:2]
    bgra = np.zeros((h, w + 256, 4), np.uint8)
    bgra[...] = (40, 200, 40, 255)
    bgra[:, 128:128 + w, :3] = face_rgb[..., ::-1]
    return bgra


FACE = (slice(90, 160), slice(128 + 190, 128 + 260))  # inside the astronaut's face in green_frame


def swapped_by(rgba: np.ndarray | None, face_rgb: np.ndarray) -> float:
    """Mean colour change inside the face: near 0 when not swapped, above 10 when another face is in
    (0 while there is no output yet)."""
    if rgba is None:
        return 0.0
    return float(np.abs(rgba[FACE][..., :3].astype(int) - face_rgb[90:160, 190:260]).mean())


def keyed(rgba: np.ndarray) -> bool:
    """The green screen beside the person is transparent: the matting runs."""
    return int(rgba[:, :100, 3].max()) < 20
