"""Starts, watches and restarts the worker. Standard library only; no call here blocks its caller.

OBS's callbacks only *say* what they want: ``set_live(n)`` (how many filters exist) and ``close()``
(the script is unloading). One reconcile thread owns starting and stopping, so a destroy followed at
once by a create (a scene-collection switch destroys every filter, then creates them again) can never
leave a live filter without a worker, and no OBS thread ever waits on a worker starting or stopping.
The worker is stopped only once no filter has existed for ``idle_stop_s``.

The render thread only flips flags and appends to a deque (``send``, ``notify``, ``frame_written``,
``output_seen``); a relay thread talks to the worker and a watchdog thread kills a worker that dies,
stalls, or does not finish starting in time. Each connected worker is a new *generation*: filters
compare generations to know when to open their channels again, and messages queued for an older
generation are dropped, not replayed.

Restarts: a single crash is retried after ``BACKOFF_S[0]``; only crashes that follow each other
within ``CRASH_WINDOW_S`` back off further, up to 8 s, so one good minute forgets a crash loop.
"""

from __future__ import annotations

import collections
import contextlib
import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from facefusion_obs.config import PROJECT_ROOT
from facefusion_obs.ipc.control import ControlConnection, Endpoint, ProtocolError
from facefusion_obs.ipc.shm import sweep_orphans, unlink

BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)
CRASH_WINDOW_S = 60.0
LOADING_GRACE_S = 60.0
FRAMES_FLOWING_S = 0.5
VERDICTS_KEPT = 8  # a render finds its output's verdict among the last few, however the threads interleave
# Read once at import; the environment can set them for a slow machine (and the fault tests do).
STARTUP_S = float(os.environ.get("FACEFUSION_OBS_STARTUP_S", "30"))  # spawn to "ready", else killed
IDLE_STOP_S = float(os.environ.get("FACEFUSION_OBS_IDLE_STOP_S", "2.0"))  # no filter this long: stop


@dataclass
class WorkerStats:
    processed: int = 0
    dropped: int = 0
    process_ms: float = 0.0
    preset: str = ""
    engine: str = ""
    quality: str = ""  # the worker's quality level under load; "full" when it keeps up


class Supervisor:
    """One per OBS process. ``state`` is a short word; ``detail`` says more for the status line."""

    def __init__(
        self,
        python: str | None,
        *,
        stall_s: float = 2.0,
        log: Callable[[str], None] = print,
        startup_s: float = STARTUP_S,
        idle_stop_s: float = IDLE_STOP_S,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.python = python
        self.env = dict(env or {})  # the installer's folders, whatever OBS's own environment says
        self.stall_s = stall_s
        self.startup_s = startup_s
        self.idle_stop_s = idle_stop_s
        self.log = log
        self.state = "stopped"
        self.detail = ""
        self.provider = ""
        self.generation = 0
        self.restarts = 0
        self.worker_pid: int | None = None
        self.stats: dict[int, WorkerStats] = {}
        self.errors: collections.deque[str] = collections.deque(maxlen=8)
        # What the worker says can run ({engines, presets, provider}); replaced whole, never mutated,
        # so the UI thread reads a consistent snapshot. The last one is kept while a worker restarts.
        self.catalog: dict[str, Any] | None = None
        # channel -> the newest few (frame id, every face swapped) verdicts; replaced whole, never mutated,
        # so the render thread reads a consistent tuple (see obs/cover.py)
        self.verdicts: dict[int, tuple[tuple[int, bool], ...]] = {}
        self._outbox: collections.deque[tuple[int, str, dict[str, Any]]] = collections.deque(maxlen=1024)
        self._pending_frames: set[int] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: ControlConnection | None = None
        self._loading = False
        self._last_frame = 0.0
        self._last_alive = 0.0
        self._segments: set[str] = set()  # created by filters, not yet unlinked
        self._doorbell: int | None = None  # write end of the worker's doorbell pipe (POSIX)
        self._threads: list[threading.Thread] = []
        self._lifecycle = threading.Lock()  # start and stop never interleave (only the reconciler waits on it)
        self._crashes: collections.deque[float] = collections.deque()
        self._starting_since: float | None = None
        # demand, set by OBS callbacks under a lock that is never held across a start or a stop
        self._demand = threading.Lock()
        self._live = 0
        self._closed = False
        self._demand_changed = threading.Event()
        self._reconciler: threading.Thread | None = None

    # ------------------------------------------------------------------ render-thread API (no waits)
    @property
    def running(self) -> bool:
        return self.state == "running"

    def send(self, generation: int, kind: str, **fields: Any) -> None:
        """Queue a message for the worker of ``generation``; dropped if that worker is gone."""
        self._outbox.append((generation, kind, fields))
        self._wake.set()

    def notify(self, channel: int) -> None:
        """A new frame is in ``channel``'s input; wake the worker without ever waiting.

        POSIX: one byte into the doorbell pipe, dropped if the pipe is full (the worker is far behind
        and will read the newest frame anyway). Elsewhere the relay thread sends a coalesced message.
        """
        self._last_frame = time.monotonic()
        doorbell = self._doorbell
        if doorbell is not None:
            with contextlib.suppress(OSError):  # full pipe or a worker that just went away
                os.write(doorbell, b"\x01")
            return
        self._pending_frames.add(channel)
        self._wake.set()

    def output_seen(self) -> None:
        """A filter found a fresh output: the worker is alive even if it is too busy to talk."""
        self._last_alive = time.monotonic()

    def track_segment(self, name: str) -> None:
        self._segments.add(name)

    def release_segment(self, name: str) -> None:
        """The filter is done with a segment: make sure its name is gone."""
        self._segments.discard(name)
        unlink(name)

    # ------------------------------------------------------------- demand (OBS callbacks; no waits)
    def set_live(self, count: int) -> None:
        """``count`` filters exist now. Returns at once; the reconcile thread follows."""
        with self._demand:
            self._live, self._closed = max(0, count), False
            self._wake_reconciler()

    def close(self) -> None:
        """The script is unloading: stop the worker soon, without waiting for it here."""
        with self._demand:
            self._closed = True
            self._wake_reconciler()

    def _wake_reconciler(self) -> None:
        self._demand_changed.set()
        if self._reconciler is None:
            self._reconciler = threading.Thread(target=self._reconcile, name="ffobs-reconcile", daemon=True)
            self._reconciler.start()

    def _reconcile(self) -> None:
        """Make the worker follow the demand; the only caller of start() and stop() inside OBS."""
        idle_since: float | None = None
        changed = True
        while True:
            with self._demand:
                self._demand_changed.clear()
                wanted, closed = self._live > 0 and not self._closed, self._closed
                if not wanted and not self._threads:
                    self._reconciler = None  # nothing to follow: a later set_live() starts a new one
                    return
            try:
                if wanted:
                    idle_since = None
                    if changed and not self._threads:  # a start that cannot run (no interpreter) is not retried
                        self.start()
                else:
                    now = time.monotonic()
                    idle_since = idle_since if idle_since is not None else now
                    if closed or now - idle_since >= self.idle_stop_s:
                        self.stop()
            except Exception:  # the reconciler must outlive any one bad start or stop
                self.log(f"reconcile error:\n{traceback.format_exc()}")
            changed = self._demand_changed.wait(0.1)

    # ---------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the worker (idempotent). Blocks on the lifecycle lock: never call it from OBS."""
        with self._lifecycle:
            if self._threads:
                return
            for name in sweep_orphans():
                self.log(f"removed shared memory left by a crashed session: {name}")
            if not self.python:
                self._set(
                    "not installed", "no worker interpreter configured: run 'python3 installer/install.py'"
                )
                return
            self._stop.clear()
            for target, name in ((self._relay, "ffobs-relay"), (self._watchdog, "ffobs-watchdog")):
                t = threading.Thread(target=target, name=name, daemon=True)
                t.start()
                self._threads.append(t)

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the worker to exit, kill it if it does not, and clean every segment name up.

        Blocks up to a few seconds: never call it from OBS (see ``close``)."""
        with self._lifecycle:
            self._stop.set()
            self._wake.set()
            conn = self._conn
            if conn is not None:
                with contextlib.suppress(OSError, ValueError):
                    conn.send("shutdown")
            self._end_worker(timeout)
            for t in self._threads:
                t.join(timeout)
            self._threads.clear()
            for name in list(self._segments):
                self.release_segment(name)
            self._set("stopped", "")

    def restart(self, reason: str) -> None:
        """Kill the worker now; the relay thread starts a new one after the backoff."""
        self.log(f"restarting worker: {reason}")
        self.detail = reason
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    # ------------------------------------------------------------------------------------ threads
    def _set(self, state: str, detail: str) -> None:
        if (state, detail) != (self.state, self.detail):
            self.state, self.detail = state, detail
            self.log(f"worker {state}{': ' + detail if detail else ''}")

    def _relay(self) -> None:
        while not self._stop.is_set():
            reason = self._run_one_worker()
            if self._stop.is_set():
                break
            delay = self.backoff(time.monotonic())
            self.restarts += 1
            self._set("restarting", f"{reason}; retrying in {delay:g} s")
            self._stop.wait(delay)

    def backoff(self, now: float) -> float:
        """Record a crash at ``now`` and return how long to wait before the next start."""
        self._crashes.append(now)
        while self._crashes and now - self._crashes[0] > CRASH_WINDOW_S:
            self._crashes.popleft()
        return BACKOFF_S[min(len(self._crashes), len(BACKOFF_S)) - 1]

    def _run_one_worker(self) -> str:
        """Start a worker, serve it until it goes away, and return why it did."""
        endpoint = Endpoint.new()
        self._starting_since = time.monotonic()  # the watchdog's start-up deadline runs from here
        self._set("starting", "")
        try:
            env = dict(os.environ, **self.env, PYTHONPATH=str(PROJECT_ROOT), PYTHONUNBUFFERED="1")
            flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
            bell_read, bell_write = os.pipe() if sys.platform != "win32" else (None, None)
            try:
                self._proc = subprocess.Popen(
                    [self.python, "-m", "facefusion_obs.worker"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    cwd=str(PROJECT_ROOT),
                    env=env,
                    creationflags=flags,
                    pass_fds=() if bell_read is None else (bell_read,),
                )
            finally:
                if bell_read is not None:
                    os.close(bell_read)
            endpoint.doorbell = bell_read
        except OSError as exc:
            if bell_write is not None:
                os.close(bell_write)
            endpoint.remove()
            return f"cannot start {self.python}: {exc.strerror or exc}"
        proc = self._proc
        self.worker_pid = proc.pid
        threading.Thread(target=self._pump_stderr, args=(proc,), name="ffobs-stderr", daemon=True).start()
        try:
            assert proc.stdin is not None
            proc.stdin.write((endpoint.to_json() + "\n").encode())
            proc.stdin.close()
            if bell_write is not None:
                os.set_blocking(bell_write, False)
                self._doorbell = bell_write
            conn = self._connect(endpoint, proc)
            if conn is None:
                return self.detail or f"worker exited during start-up (code {proc.poll()})"
            self._conn = conn
            return self._serve(conn, proc)
        except (OSError, EOFError) as exc:
            # A lost connection usually means the worker died: say how, if it did.
            try:
                return f"worker exited with code {proc.wait(0.5)}"
            except subprocess.TimeoutExpired:
                return f"worker connection lost: {exc}"
        except Exception as exc:  # a bug here must cost one worker restart, never the supervisor
            self.log(f"supervisor error:\n{traceback.format_exc()}")
            proc.kill()
            return f"supervisor error: {exc!r}"
        finally:
            self._conn = None
            self._starting_since = None
            bell, self._doorbell = self._doorbell, None
            if bell is not None:
                os.close(bell)
            self._end_worker(1.0)
            endpoint.remove()
            # The dead worker's channels are gone: their unattached names must not linger.
            for name in list(self._segments):
                self.release_segment(name)

    def _connect(self, endpoint: Endpoint, proc: subprocess.Popen[bytes]) -> ControlConnection | None:
        # The start-up deadline has three watchers (this loop, _await_ready and the watchdog); whichever
        # sees it first, the reason reads the same, so logs and tests need no race-dependent wording.
        deadline = time.monotonic() + self.startup_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            if proc.poll() is not None:
                return None
            try:
                return endpoint.connect()
            except (FileNotFoundError, ConnectionRefusedError):
                self._stop.wait(0.02)
        self.detail = f"worker did not start within {self.startup_s:g} s (no answer)"
        return None

    def _await_ready(self, conn: ControlConnection, proc: subprocess.Popen[bytes]) -> dict[str, Any] | None:
        """The worker's first message, or None if it dies, stops or misses the start-up deadline."""
        deadline = (self._starting_since or time.monotonic()) + self.startup_s
        while not conn.poll(0.05):
            if self._stop.is_set() or proc.poll() is not None:
                return None
            if time.monotonic() > deadline:
                self.detail = f"worker did not start within {self.startup_s:g} s (not ready)"
                return None
        return conn.recv()

    def _serve(self, conn: ControlConnection, proc: subprocess.Popen[bytes]) -> str:
        msg = self._await_ready(conn, proc)
        if msg is None:
            return self.detail or f"worker exited during start-up (code {proc.poll()})"
        if msg["type"] != "ready":
            return f"worker spoke {msg['type']!r} before 'ready'"
        self.provider = msg["provider"]
        self._outbox.clear()
        self._pending_frames.clear()
        self._last_alive = time.monotonic()
        self.generation += 1
        self._starting_since = None
        self._set("running", f"pid {msg['pid']}, {self.provider}")
        while not self._stop.is_set():
            if proc.poll() is not None:
                return f"worker exited with code {proc.returncode}"
            self._wake.wait(0.02)
            self._wake.clear()
            while self._outbox:
                generation, kind, fields = self._outbox.popleft()
                if generation == self.generation:
                    conn.send(kind, **fields)
            if self._pending_frames:
                channels, self._pending_frames = self._pending_frames, set()
                conn.send("frames", channels=sorted(channels))
            while conn.poll(0):
                try:
                    self._on_message(conn.recv())
                except ProtocolError as exc:
                    self.log(f"rejected message from worker: {exc}")
        return "stopped"

    def _on_message(self, msg: dict[str, Any]) -> None:
        self._last_alive = time.monotonic()
        kind = msg["type"]
        if kind == "attached":
            # Both sides have it mapped: the name is no longer needed, and without a name nothing
            # can be left in /dev/shm whichever process crashes next.
            self.release_segment(msg["shm"])
        elif kind == "status":
            self._loading = msg["state"] == "loading"
            self.provider = msg["provider"]
            for s in msg["channels"]:
                self.stats[s["channel"]] = WorkerStats(
                    s["processed"], s["dropped"], s["process_ms"], s["preset"], s["engine"], s["quality"]
                )
        elif kind == "verdict":
            recent = self.verdicts.get(msg["channel"], ())[-(VERDICTS_KEPT - 1):]
            self.verdicts[msg["channel"]] = (*recent, (msg["frame_id"], msg["swapped"]))
        elif kind == "catalog":
            self.catalog = {"engines": msg["engines"], "presets": msg["presets"], "provider": msg["provider"]}
        elif kind == "error":
            self.errors.append(msg["message"])
            self.log(f"worker error: {msg['message']}")

    def _watchdog(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self._check_stall()
            except Exception:  # keep watching whatever happens
                self.log(f"watchdog error:\n{traceback.format_exc()}")

    def _check_stall(self) -> None:
        since = self._starting_since
        if since is not None and time.monotonic() - since > self.startup_s:
            # Frozen while starting (before or during the handshake): only a kill unblocks the relay.
            self._starting_since = None
            self.restart(f"worker did not start within {self.startup_s:g} s")
            return
        if self.state == "running":
            now = time.monotonic()
            limit = LOADING_GRACE_S if self._loading else self.stall_s
            if now - self._last_frame < FRAMES_FLOWING_S and now - self._last_alive > limit:
                self.restart(f"worker stalled for more than {limit:g} s")

    def _pump_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self.log(line)

    def _end_worker(self, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        self.worker_pid = None
        if sys.platform != "win32" and proc.stdin and not proc.stdin.closed:
            proc.stdin.close()
