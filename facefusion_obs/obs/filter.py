"""One "FaceFusion Live" filter instance: its channel to the worker and its per-frame path.

Rules this class keeps: nothing here waits on the worker; when there is no fresh result the last
one is drawn, and when the worker is not running the frame passes through untouched; only the
render thread touches the channel's shared memory and GPU objects.

With "Never show my real face" on (or the panic key pressed) the camera is never drawn: outputs go
through the privacy gate (``obs/cover.py``) and everything else is the cover, drawn here, so it
holds while the worker is down.
"""

from __future__ import annotations

import collections
import time
from types import SimpleNamespace
from typing import Any

from facefusion_obs.config import default_options
from facefusion_obs.ipc.frames import CorruptHeader, FrameChannel, check_geometry
from facefusion_obs.obs.cover import PrivacyGate
from facefusion_obs.obs.gpu import GpuResources, copy_rows
from facefusion_obs.obs.scenes import effective_options
from facefusion_obs.obs.supervisor import Supervisor


class RateMeter:
    """Events per second over the last second, and a rolling window of durations for p50/p95."""

    def __init__(self, window: int = 300) -> None:
        self._times: collections.deque[float] = collections.deque()
        self.durations_ms: collections.deque[float] = collections.deque(maxlen=window)

    def tick(self, now: float, duration_ms: float | None = None) -> None:
        self._times.append(now)
        if duration_ms is not None:
            self.durations_ms.append(duration_ms)

    def rate(self, now: float) -> float:
        while self._times and now - self._times[0] > 1.0:
            self._times.popleft()
        return float(len(self._times))

    def percentile(self, q: float) -> float:
        if not self.durations_ms:
            return 0.0
        ordered = sorted(self.durations_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class FaceFusionFilter:
    def __init__(
        self,
        source: int,
        api: SimpleNamespace,
        gs: SimpleNamespace,
        supervisor_of: Any,
        channel_id: int,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.source = source
        self.api, self.gs = api, gs
        self._supervisor_of = supervisor_of  # callable: the current Supervisor or None
        self.channel_id = channel_id  # unique in this OBS process: the worker keys its channels by it
        self.options = options or default_options()  # the filter's own settings
        self.scene_choice: str | None = None  # its scene's preset (see obs/scenes.py)
        self.scene = ""  # the scene it is shown in: the worker's usage log records it
        self.last_matting = "chroma"  # what the matting hotkey turns back on
        self.gpu: GpuResources | None = None
        self.channel: FrameChannel | None = None
        self.generation = 0
        self.frame_id = 0
        self.output_count = 0
        self.has_output = False
        self.gate = PrivacyGate()
        self.panic = False  # the "cover now" hotkey (obs/frontend.py) sets it on every filter
        self.covered = False  # the last render drew the cover (the status line says so)
        self.last_latency_ms = 0.0
        self.latency = RateMeter()
        self.frames_in = RateMeter()
        self.frames_out = RateMeter()
        self.readback_cost = RateMeter()
        self.upload_cost = RateMeter()
        self.total_cost = RateMeter()  # the filter's whole render: capture, readback, upload, draw
        self.boundary_cost = RateMeter()  # readback + upload in the same frame: what the process boundary costs

    # ------------------------------------------------------------------------------ from the UI
    def update(self, options: dict[str, Any]) -> None:
        """New settings from the properties dialog (UI thread). The worker gets them live."""
        if options["matting"] != "off":
            self.last_matting = options["matting"]
        self.options = options
        self._configure_worker()

    def set_scene_choice(self, choice: str | None, scene: str | None = None) -> None:
        """The filter's scene changed: use that scene's preset unless the filter has its own."""
        if choice != self.scene_choice or (scene is not None and scene != self.scene):
            self.scene_choice, self.scene = choice, self.scene if scene is None else scene
            self._configure_worker()

    def effective_options(self) -> dict[str, Any]:
        return effective_options(self.options, self.scene_choice)

    def _configure_worker(self) -> None:
        sup = self._supervisor_of()
        if sup is not None and self.channel is not None:
            sup.send(self.generation, "configure", channel=self.channel_id, options=self.effective_options(),
                     scene=self.scene[:256])

    # ---------------------------------------------------------------------------- per frame
    def render(self) -> None:
        api = self.api
        sup: Supervisor | None = self._supervisor_of()
        target = api.obs_filter_get_target(self.source)
        width = api.obs_source_get_base_width(target) if target else 0
        height = api.obs_source_get_base_height(target) if target else 0
        guarded = self.options["privacy"] or self.panic
        self.covered = guarded  # until the gate lets an output through below
        worker_ok = bool(self.options["enabled"] and sup is not None and sup.running)
        try:
            check_geometry(width, height)
        except ValueError:
            if not guarded:  # nothing to cover with: drawing nothing is the only safe picture
                self._pass_through()
            return
        if not (worker_ok or guarded):
            self._pass_through()
            return
        if self.gpu is None or (self.gpu.width, self.gpu.height) != (width, height):
            self._drop_gpu()
            self.gate.textures_lost()
            self.gpu = GpuResources(api, self.gs, width, height)
        if not worker_ok:
            self.has_output = False
            self.gate.restart()
            self._draw_cover()
            return
        assert sup is not None
        if (
            self.channel is None
            or self.generation != sup.generation
            or (self.channel.width, self.channel.height) != (width, height)
        ):
            self._open_channel(sup, width, height)

        t0 = time.perf_counter()
        texture = self.gpu.capture(self.source)
        if texture is None:
            return
        t1 = time.perf_counter()
        try:
            self._send_frame(sup, texture)
            self._take_output(sup)
        except CorruptHeader:
            # not written by this protocol (or by a worker gone wrong): drop the channel, so the next
            # frame opens a fresh one, and show the source meanwhile. Raised once, logged once.
            self._close_channel(sup)
            self.has_output = False
            raise
        t2 = time.perf_counter()
        decision = self.gate.decide(sup.verdicts.get(self.channel_id, ()), time.monotonic(), worker_ok=True,
                                    forced=self.panic)
        if decision.promote:
            self.gpu.promote()
        if not guarded:
            self.gpu.draw(self.gpu.newest_output if self.has_output else texture)
        elif decision.cover:
            self._draw_cover()
        else:
            self.covered = False
            self.gpu.draw(self.gpu.good_output)
        now = time.perf_counter()
        self.total_cost.tick(now, (now - t0) * 1e3)
        self.boundary_cost.tick(now, (t2 - t1) * 1e3)

    def _draw_cover(self) -> None:
        gpu = self.gpu
        assert gpu is not None
        gpu.draw_cover(gpu.cover_image(self.options["cover_image"]), self.gate.has_good)

    def _pass_through(self) -> None:
        self.has_output = False
        self.api.obs_source_skip_video_filter(self.source)

    def _send_frame(self, sup: Supervisor, texture: int) -> None:
        channel, gpu = self.channel, self.gpu
        assert channel is not None and gpu is not None
        t0 = time.perf_counter()

        def sink(data: int, linesize: int, staged_ns: int) -> None:
            self.frame_id += 1
            channel.input.write(
                lambda slot: copy_rows(
                    channel.input.slot_address(slot), data, linesize, gpu.width, gpu.height
                ),
                frame_id=self.frame_id,
                capture_ns=staged_ns,
            )

        if gpu.readback(texture, sink):
            now = time.perf_counter()
            self.frames_in.tick(now)
            self.readback_cost.tick(now, (now - t0) * 1e3)
            sup.notify(self.channel_id)

    def _take_output(self, sup: Supervisor) -> None:
        channel, gpu = self.channel, self.gpu
        assert channel is not None and gpu is not None
        if self.options["privacy"] and self.gate.pending is not None:
            return  # its verdict first: a newer upload would replace it unseen, and could forever
        t0 = time.perf_counter()
        uploaded: list[int] = []

        def consume(slot: int) -> None:
            gpu.upload(channel.output.slot_address(slot))
            uploaded.append(slot)

        meta = channel.output.read(consume, newer_than=self.output_count)
        if meta is None:
            if uploaded:  # every copy met a rewrite: the texture holds a torn frame, never draw it
                self.has_output = False
                self.gate.discard()
            return
        now = time.perf_counter()
        self.output_count = meta.count
        self.has_output = True
        self.gate.uploaded(meta.frame_id, time.monotonic())
        self.last_latency_ms = (time.monotonic_ns() - meta.capture_ns) / 1e6
        self.latency.tick(now, self.last_latency_ms)
        self.frames_out.tick(now)
        self.upload_cost.tick(now, (now - t0) * 1e3)
        sup.output_seen()

    def _open_channel(self, sup: Supervisor, width: int, height: int) -> None:
        self._close_channel(sup)
        channel = FrameChannel.create(width, height)
        sup.track_segment(channel.name)
        self.channel, self.generation = channel, sup.generation
        self.output_count, self.has_output = 0, False
        self.gate.restart()
        sup.send(
            self.generation, "open", channel=self.channel_id, shm=channel.name, width=width, height=height
        )
        sup.send(self.generation, "configure", channel=self.channel_id, options=self.effective_options(),
                 scene=self.scene[:256])

    def _close_channel(self, sup: Supervisor | None) -> None:
        channel, self.channel = self.channel, None
        if channel is None:
            return
        if sup is not None:
            sup.send(self.generation, "close", channel=self.channel_id)
            sup.release_segment(channel.name)
        channel.close()

    def _drop_gpu(self) -> None:
        if self.gpu is not None:
            self.gpu.free_in_context()
            self.gpu = None

    # ------------------------------------------------------------------------------- status
    def status(self) -> str:
        """One line for the properties dialog and the log: state, provider, rates, latency, preset."""
        sup = self._supervisor_of()
        now = time.perf_counter()
        if sup is None:
            return "Worker: stopped (script unloaded)"
        state = sup.state + (f" ({sup.detail})" if sup.detail else "")
        cover = " | COVER shown: your real face is hidden" if self.covered else ""
        if self.panic:
            cover += " (panic key: press it again to uncover)"
        if not self.options["ai_label"]:
            cover += " | AI label OFF (your choice in Face)"
        image = self.options["cover_image"]
        if image and self.gpu is not None and self.gpu.image == (image, None):
            cover += " | cover image unreadable: blurring instead"
        if not self.options["enabled"]:
            return f"Worker: {state} | filter disabled: " + ("covering" if cover else "passing frames through") + cover
        line = (
            f"Worker: {state} | provider {sup.provider or '-'} | in {self.frames_in.rate(now):.0f} fps, "
            f"out {self.frames_out.rate(now):.0f} fps | latency p50 {self.latency.percentile(0.5):.0f} "
            f"p95 {self.latency.percentile(0.95):.0f} ms"
        )
        stats = sup.stats.get(self.channel_id)
        if stats is not None and stats.engine:
            line += f" | {stats.engine}" + (f", preset {stats.preset}" if stats.preset else "")
        if stats is not None and stats.quality and stats.quality != "full":
            line += f" | quality: {stats.quality} (keeping up with the camera)"
        if sup.errors:
            line += f" | last error: {sup.errors[-1][:160]}"
        return line + cover

    def cost_summary(self) -> str:
        """OBS-side per-frame cost, for the log and the Performance section (parsed by the benchmark)."""
        size = f"{self.gpu.width}x{self.gpu.height}" if self.gpu else "-"
        meters = {"total": self.total_cost, "readback+upload": self.boundary_cost, "readback": self.readback_cost,
                  "upload": self.upload_cost}
        parts = [
            f"{name} p50 {m.percentile(0.5):.2f} p95 {m.percentile(0.95):.2f} ms" for name, m in meters.items()
        ]
        return f"obs-side cost {size}: {', '.join(parts)} (over {len(self.total_cost.durations_ms)} frames)"

    # --------------------------------------------------------------------------------- end
    def destroy(self) -> None:
        self._close_channel(self._supervisor_of())
        if self.gpu is not None:
            self.gpu.free()
            self.gpu = None
