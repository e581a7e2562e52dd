"""The worker's loop: take each channel's newest frame, run its effect, publish the result.

Single-threaded on purpose: one frame per channel in flight, newest frame wins, and stale frames are
skipped rather than queued, so latency never grows behind a slow effect. OBS's "frames" messages only
wake the loop; the shared-memory headers are the truth, so a dropped notification costs nothing.
"""

from __future__ import annotations

import logging
import os
import selectors
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from facefusion_obs.config import default_options, validate_options
from facefusion_obs.ipc.control import ControlConnection, ProtocolError
from facefusion_obs.ipc.frames import CorruptHeader, FrameChannel
from facefusion_obs.ipc.shm import ShmError, unlink
from facefusion_obs.presets.consent import statement_hash
from facefusion_obs.worker.catalog import Catalog
from facefusion_obs.worker.effects import EFFECTS, Effect, Passthrough, build_effect
from facefusion_obs.worker.usage import UsageTracker, Use

if TYPE_CHECKING:
    from facefusion_obs.runtime.pool import ModelPool

log = logging.getLogger("facefusion_obs.worker")

STATUS_EVERY_S = 0.5
IDLE_POLL_S = 0.05
ERROR_REPORT_EVERY_S = 5.0
RECHECK_EVERY_S = 1.0  # models and presets folders: a stat per file, a hash only for a changed file


@dataclass
class Channel:
    """One filter instance as the worker sees it."""

    id: int
    frames: FrameChannel
    options: dict[str, Any] = field(default_factory=default_options)
    effect: Effect = field(default_factory=Passthrough)
    last_count: int = 0
    processed: int = 0
    dropped: int = 0
    process_ms: float = 0.0
    last_error_at: float = 0.0
    quality: str = ""  # the pipeline's quality level under load ("" for the diagnostic effects)
    scene: str = ""  # the OBS scene the filter was last shown in (for the usage log)

    def view(self, ring_slot_view: memoryview) -> np.ndarray:
        return np.frombuffer(ring_slot_view, np.uint8).reshape(self.frames.height, self.frames.width, 4)


class Worker:
    """Serves the channels with models from ``pool`` (owned by the caller) and advertises the catalog."""

    def __init__(self, conn: ControlConnection, pool: ModelPool, provider: str = "cpu",
                 doorbell: int | None = None, usage: UsageTracker | None = None) -> None:
        self.conn = conn
        self.usage = usage or UsageTracker()  # the local usage log: which preset was swapped in, when, where
        self.pool = pool
        self.catalog = Catalog(pool)
        self._catalog_sent: dict[str, Any] | None = None
        self._recheck_at = 0.0
        self.doorbell = doorbell
        self._selector: selectors.BaseSelector | None = None
        self.provider = provider
        self.channels: dict[int, Channel] = {}
        self.running = True
        self._status_at = 0.0
        self._loading = False

    # ----------------------------------------------------------------------------------- messages
    def handle(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "open":
            self._open(msg)
        elif kind == "close":
            self._close(msg["channel"])
        elif kind == "configure":
            self._configure(msg["channel"], msg["options"], msg.get("scene"))
        elif kind == "shutdown":
            self.running = False
        # "frames" only wakes us up

    def _open(self, msg: dict[str, Any]) -> None:
        cid = msg["channel"]
        try:
            frames = FrameChannel.attach(msg["shm"], msg["width"], msg["height"])
        except (ShmError, CorruptHeader, OSError) as exc:
            self._error(cid, f"cannot attach channel {cid}: {exc}")
            return
        old = self.channels.get(cid)
        if old is not None:  # a resize or a re-open: keep the options and the effect's state
            old.frames.close()
            old.frames, old.last_count = frames, 0
        else:
            self.channels[cid] = Channel(cid, frames)
        self.conn.send("attached", channel=cid, shm=frames.name)

    def _close(self, cid: int) -> None:
        self.usage.close(cid)
        ch = self.channels.pop(cid, None)
        if ch is not None:
            unlink(ch.frames.name)
            ch.frames.close()

    def _configure(self, cid: int, options: dict[str, Any], scene: str | None = None) -> None:
        ch = self.channels.get(cid)
        if ch is None:
            self._error(cid, f"configure for unknown channel {cid}")
            return
        if scene is not None:
            ch.scene = scene
        new = validate_options({**ch.options, **options})
        rebuild = not isinstance(ch.effect, EFFECTS[new["effect"]])
        ch.options = new
        try:
            if rebuild:
                self._set_loading(True)
                ch.effect = build_effect(new, self.pool)
            else:
                ch.effect.configure(new)
        except Exception as exc:  # a bad preset or missing model must not take the worker down
            log.exception("channel %d: configure failed", cid)
            self._error(cid, f"channel {cid}: {exc}")
            ch.effect = Passthrough()
        finally:
            self._set_loading(False)
        self._recheck(force=True)  # every configure re-checks what can run

    # ------------------------------------------------------------------------------ availability
    def _recheck(self, force: bool = False) -> None:
        """Follow the models and presets folders: let each channel's engine follow what can run now
        (leaving a note on each transition), then advertise the catalog if it changed."""
        now = time.monotonic()
        if not force and now - self._recheck_at < RECHECK_EVERY_S:
            return
        self._recheck_at = now
        for ch in list(self.channels.values()):
            recheck = getattr(ch.effect, "recheck", None)
            if recheck is None:
                continue
            try:
                notes = recheck()
            except Exception as exc:  # a model that fails to load now must not take the worker down
                log.exception("channel %d: re-check failed", ch.id)
                notes = [f"channel {ch.id}: {exc}"]
            for note in notes:
                self._error(ch.id, note)
        self._send_catalog()

    def _send_catalog(self) -> None:
        fields = self.catalog.message(self._provider_in_use())
        if fields != self._catalog_sent:
            self._catalog_sent = fields
            self.conn.send("catalog", **fields)

    def _set_loading(self, loading: bool) -> None:
        if loading != self._loading:
            self._loading = loading
            self._send_status(force=True)

    def _error(self, cid: int, message: str) -> None:
        log.error(message)
        self.conn.send("error", channel=cid, message=message[:2000])

    # ------------------------------------------------------------------------------------- frames
    def process_channel(self, ch: Channel) -> bool:
        """Process the channel's newest input if there is one. True if a frame was handled."""
        frames = ch.frames
        lease = frames.input.acquire(newer_than=ch.last_count)
        if lease is None:
            return False
        try:
            skipped = lease.meta.count - ch.last_count - 1
            ch.dropped += max(skipped, 0) if ch.last_count else 0
            ch.last_count = lease.meta.count
            src = ch.view(frames.input.slot_view(lease.slot))
            slot = frames.output.begin_write()
            t0 = time.perf_counter_ns()
            swapped = False  # fail closed: only an effect that says so swapped every face
            try:
                # the capture time from the frame header: tracking and smoothing run on camera time
                t_capture = lease.meta.capture_ns / 1e9 if lease.meta.capture_ns > 0 else None
                ch.effect.process(src, ch.view(frames.output.slot_view(slot)), t_capture)
                swapped = bool(getattr(ch.effect, "face_swapped", False))
            except Exception as exc:
                # Keep the stream alive: publish the untouched picture and report (rate-limited).
                Passthrough().process(src, ch.view(frames.output.slot_view(slot)))
                now = time.monotonic()
                if now - ch.last_error_at > ERROR_REPORT_EVERY_S:
                    ch.last_error_at = now
                    log.exception("channel %d: effect failed", ch.id)
                    self._error(ch.id, f"channel {ch.id}: processing failed: {exc}")
            elapsed = time.perf_counter_ns() - t0
            ch.quality = ch.effect.pace(lease.meta.frame_id, lease.meta.capture_ns, elapsed / 1e6)
            self._observe_usage(ch, swapped)
            if frames.input.intact(lease):
                # before the commit, so it usually arrives first; OBS waits for it either way (obs/cover.py)
                self.conn.send("verdict", channel=ch.id, frame_id=lease.meta.frame_id, swapped=swapped)
                frames.output.commit(slot, lease.meta.frame_id, lease.meta.capture_ns, elapsed)
                ch.processed += 1
                ch.process_ms = elapsed / 1e6
            else:
                frames.output.abort(slot)
                ch.dropped += 1
        finally:
            frames.input.release()
        return True

    def _observe_usage(self, ch: Channel, swapped: bool) -> None:
        """Tell the usage log what this frame swapped in (debounced there into start/end lines)."""
        preset = getattr(ch.effect, "swapped_preset", None) if swapped else None
        agreed = preset.consent if preset is not None else None
        use = None
        if agreed is not None:  # presets without consent are refused before they can swap
            use = Use(preset.name, (agreed["recorded"], statement_hash(agreed["statement"])), ch.scene)
        self.usage.observe(ch.id, use)

    # --------------------------------------------------------------------------------------- loop
    def _send_status(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._status_at < STATUS_EVERY_S:
            return
        self._status_at = now
        stats = []
        for c in self.channels.values():
            preset, engine, _provider = c.effect.in_use()
            stats.append({"channel": c.id, "processed": c.processed, "dropped": c.dropped,
                          "process_ms": round(c.process_ms, 3), "preset": preset[:300], "engine": engine[:32],
                          "quality": c.quality[:64]})
        self.provider = self._provider_in_use()
        self.conn.send(
            "status", state="loading" if self._loading else "ready", provider=self.provider, channels=stats
        )

    def _provider_in_use(self) -> str:
        """The most capable provider in use (a GPU one if any channel runs on it), for status and catalog."""
        providers = {c.effect.in_use()[2] for c in self.channels.values()}
        return next((p for p in ("tensorrt", "cuda") if p in providers), "cpu")

    def _wait(self, timeout: float) -> None:
        """Sleep until a control message or a doorbell ring (a new frame), or ``timeout``."""
        if self.doorbell is None:
            self.conn.poll(timeout)
            return
        if self._selector is None:  # built once: a selector per wait costs more than the wake-up
            self._selector = selectors.DefaultSelector()
            self._selector.register(self.conn.fileno(), selectors.EVENT_READ)
            self._selector.register(self.doorbell, selectors.EVENT_READ)
        for key, _ in self._selector.select(timeout):
            # drain: one wake-up serves every frame rung so far
            if key.fd == self.doorbell and not os.read(self.doorbell, 65536):
                # End of file: OBS closed its end, which it does only when it is done with us or dead.
                log.info("doorbell closed: OBS is gone; exiting")
                self._selector.unregister(self.doorbell)
                self.running = False

    def run(self) -> None:
        self.conn.send("ready", pid=os.getpid(), effects=list(EFFECTS), provider=self.provider)
        self._recheck(force=True)
        busy = False
        try:
            while self.running:
                self._wait(0 if busy else IDLE_POLL_S)
                while self.running and self.conn.poll(0):
                    try:
                        self.handle(self.conn.recv())
                    except ProtocolError as exc:
                        log.warning("rejected control message: %s", exc)
                busy = False
                for ch in list(self.channels.values()):
                    try:
                        busy |= self.process_channel(ch)
                    except CorruptHeader as exc:
                        self._error(ch.id, f"channel {ch.id} dropped: {exc}")
                        self._close(ch.id)
                self._recheck()
                self._send_status()
                self.usage.tick()
        except (EOFError, OSError):
            log.info("control channel closed: OBS is gone; exiting")
        finally:
            for cid in list(self.channels):
                self._close(cid)
            self.usage.close_all()
