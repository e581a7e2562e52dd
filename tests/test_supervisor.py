"""The OBS-side supervisor with a real worker process, outside OBS.

A small stand-in for the filter's per-frame logic drives it the way the render thread does: write a
frame, notify, take the newest output; and pass frames through whenever the worker is not running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

import numpy as np
import pytest
from oracles import expected_test_pattern

from facefusion_obs.ipc import shm
from facefusion_obs.ipc.frames import FrameChannel
from facefusion_obs.obs.supervisor import Supervisor

W, H = 96, 64


class FakeRenderThread:
    """What the filter does per frame, minus the GPU: the same Supervisor and channel calls."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.channel: FrameChannel | None = None
        self.generation = 0
        self.frame = np.random.default_rng(0).integers(0, 256, (H, W, 4), dtype=np.uint8)
        self.frame_id = 0
        self.count = 0

    def render(self) -> np.ndarray:
        sup = self.sup
        if not sup.running:
            return self.frame_as_rgba()  # pass-through
        if self.channel is None or self.generation != sup.generation:
            if self.channel is not None:
                sup.release_segment(self.channel.name)
                self.channel.close()
            self.channel = FrameChannel.create(W, H)
            sup.track_segment(self.channel.name)
            self.generation, self.count = sup.generation, 0
            sup.send(self.generation, "open", channel=1, shm=self.channel.name, width=W, height=H)
            sup.send(self.generation, "configure", channel=1, options={"effect": "test-pattern"})
        ch = self.channel
        self.frame_id += 1
        ch.input.write(lambda s: ch.input.slot_view(s).__setitem__(slice(None), self.frame.tobytes()),
                       frame_id=self.frame_id, capture_ns=time.monotonic_ns())
        sup.notify(1)
        out = {}
        meta = ch.output.read(lambda s: out.setdefault("rgba", bytes(ch.output.slot_view(s))), self.count)
        if meta is not None:
            self.count = meta.count
            sup.output_seen()
            self.last = np.frombuffer(out["rgba"], np.uint8).reshape(H, W, 4)
        return getattr(self, "last", self.frame_as_rgba()) if self.count else self.frame_as_rgba()

    def frame_as_rgba(self) -> np.ndarray:
        return np.dstack([self.frame[..., 2], self.frame[..., 1], self.frame[..., 0],
                          self.frame[..., 3]])

    def close(self) -> None:
        if self.channel is not None:
            self.sup.release_segment(self.channel.name)
            self.channel.close()


def _until(predicate, timeout: float, render: FakeRenderThread | None = None) -> float:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, "condition not reached in time"
        if render is not None:
            render.render()
        time.sleep(1 / 30)
    return time.monotonic() - start


def _ours() -> list[str]:
    return [n for n in shm.list_segments() if n.startswith(f"ffobs-{os.getpid()}-")]


@pytest.fixture()
def supervised(isolated_home):
    logs: list[str] = []
    sup = Supervisor(sys.executable, log=logs.append)
    sup.start()
    render = FakeRenderThread(sup)
    yield sup, render, logs
    render.close()
    sup.stop()


def test_kill_9_gives_pass_through_then_recovery(supervised):
    sup, render, logs = supervised
    _until(lambda: sup.running, 20)
    expected = expected_test_pattern(render.frame)
    _until(lambda: np.array_equal(render.render(), expected), 10)
    first_pid = sup.worker_pid
    _until(lambda: not _ours(), 1)  # names go as soon as the relay thread hears "attached" (<= 20 ms)

    os.kill(first_pid, signal.SIGKILL)
    _until(lambda: not sup.running, 2)
    assert np.array_equal(render.render(), render.frame_as_rgba()), "dead worker: frames pass through"
    assert not _ours()

    _until(lambda: sup.running, 10)
    assert sup.worker_pid != first_pid and sup.restarts == 1
    _until(lambda: np.array_equal(render.render(), expected), 10)
    assert any("worker exited with code -9" in line for line in logs)


def test_stalled_worker_is_restarted(supervised):
    """SIGSTOP freezes the worker without closing anything: only the stall watchdog can notice."""
    sup, render, logs = supervised
    _until(lambda: sup.running, 20)
    _until(lambda: render.count > 0, 10, render)
    frozen = sup.worker_pid
    os.kill(frozen, signal.SIGSTOP)
    try:
        took = _until(lambda: not sup.running, 5, render)
        assert 1.5 < took < 4, f"stall detected after {took:.1f} s (limit 2 s)"
        assert any("stalled for more than 2 s" in line for line in logs)
        _until(lambda: sup.running and sup.worker_pid != frozen, 10)
        _until(lambda: np.array_equal(render.render(), expected_test_pattern(render.frame)), 10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(frozen, signal.SIGCONT)


def test_stop_leaves_no_worker_and_no_segment(supervised):
    sup, render, _ = supervised
    _until(lambda: sup.running, 20)
    _until(lambda: render.count > 0, 10, render)
    pid = sup.worker_pid
    render.close()
    render.channel = None
    sup.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not _ours()
    assert sup.state == "stopped"


def test_missing_interpreter_is_reported_not_raised(isolated_home):
    logs: list[str] = []
    sup = Supervisor(None, log=logs.append)
    sup.start()
    assert sup.state == "not installed" and "installer/install.py" in sup.detail
    sup = Supervisor("/nonexistent/python", log=logs.append)
    sup.start()
    try:
        _until(lambda: sup.state == "restarting", 5)
        assert "cannot start /nonexistent/python" in sup.detail
    finally:
        sup.stop()


# --- lifecycle without races: OBS callbacks only say how many filters exist ----------------------
def _worker_alive(sup: Supervisor) -> bool:
    return sup.running and sup.worker_pid is not None


def test_set_live_returns_at_once_and_the_reconciler_follows(isolated_home):
    sup = Supervisor(sys.executable, log=lambda line: None, idle_stop_s=0.0)
    try:
        t0 = time.perf_counter()
        sup.set_live(1)
        assert time.perf_counter() - t0 < 0.05  # the start happens elsewhere
        _until(lambda: _worker_alive(sup), 20)
        pid = sup.worker_pid
        sup.set_live(0)
        _until(lambda: sup.state == "stopped", 10)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        sup.stop()


def test_churn_never_leaves_a_live_filter_without_a_worker(isolated_home):
    """Destroy then create with 0-50 ms between, the way a scene-collection switch does; whichever
    order the reconciler sees, it ends with a worker serving the live filter."""
    sup = Supervisor(sys.executable, log=lambda line: None, idle_stop_s=0.0)
    rng = np.random.default_rng(7)
    slowest = 0.0
    try:
        for _ in range(12):
            for count in (0, 1):
                t0 = time.perf_counter()
                sup.set_live(count)
                slowest = max(slowest, time.perf_counter() - t0)
                time.sleep(float(rng.uniform(0, 0.05)))
            _until(lambda: _worker_alive(sup), 20)
        assert slowest < 0.05, f"set_live took {slowest * 1e3:.1f} ms"
        sup.close()  # as script_unload does: returns at once, the worker goes soon after
        _until(lambda: sup.state == "stopped", 10)
        assert not _ours()
    finally:
        sup.stop()


def test_idle_stop_keeps_the_worker_across_a_quick_destroy_and_create(isolated_home):
    sup = Supervisor(sys.executable, log=lambda line: None, idle_stop_s=2.0)
    try:
        sup.set_live(1)
        _until(lambda: _worker_alive(sup), 20)
        pid = sup.worker_pid
        sup.set_live(0)
        time.sleep(0.3)
        sup.set_live(1)
        time.sleep(2.5)
        assert sup.worker_pid == pid and sup.running  # no needless restart
    finally:
        sup.stop()


# --- start-up is watched too ---------------------------------------------------------------------
FROZEN_BEFORE_LISTENING = "import time; time.sleep(600)"
FROZEN_IN_HANDSHAKE = (  # listens, so the connect succeeds, but never answers the handshake
    "import sys, time; from facefusion_obs.ipc.control import Endpoint; "
    "l = Endpoint.from_json(sys.stdin.readline()).listen(); time.sleep(600)"
)


@pytest.mark.parametrize("body", [FROZEN_BEFORE_LISTENING, FROZEN_IN_HANDSHAKE], ids=["before-listen", "handshake"])
def test_a_worker_frozen_during_start_up_is_killed_and_restarted(isolated_home, tmp_path, body):
    fake = tmp_path / "frozen-python"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -c '{body}'\n")
    fake.chmod(0o755)
    logs: list[str] = []
    sup = Supervisor(str(fake), log=logs.append, startup_s=1.5)
    sup.start()
    try:
        _until(lambda: sup.state == "starting" and sup.worker_pid, 10)
        first = sup.worker_pid
        _until(lambda: sup.restarts >= 1, 10)
        assert any("did not start within 1.5 s" in line for line in logs), logs
        with pytest.raises(ProcessLookupError):
            os.kill(first, 0)
        _until(lambda: sup.worker_pid not in (None, first), 10)  # and it tries again
    finally:
        sup.stop()


def test_backoff_single_crash_is_quick_and_only_a_loop_backs_off(isolated_home):
    sup = Supervisor(sys.executable, log=lambda line: None)
    t = 1000.0
    assert sup.backoff(t) <= 0.25  # a single crash: back within a second
    loop = [sup.backoff(t + i) for i in range(1, 8)]
    assert loop == sorted(loop) and max(loop) == 8.0  # a crash loop backs off, to 8 s at most
    assert sup.backoff(t + 8 + 61) <= 0.25  # one good minute forgets the loop
