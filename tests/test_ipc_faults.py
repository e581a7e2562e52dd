"""The IPC layer and the worker survive any single bad message or header, and never outlive OBS.

Everything here runs against a real worker process over a real authenticated socket and real shared
memory, or against a real ``Endpoint`` and real sockets: bad control messages of every kind, impossible
shared-memory counters, frames whose stores are not (yet) all visible, silent and stalling clients in
the handshake, the owner killed in each state of the worker's life, and stale private folders.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from test_ipc import _connect, _start_worker

from facefusion_obs.ipc import control, shm
from facefusion_obs.ipc.control import Endpoint, HandshakeTimeout
from facefusion_obs.ipc.frames import CHECK_TAIL_BYTES, COUNTER_LIMIT, CorruptHeader, FrameChannel

W, H = 64, 48
DEADLINE_S = 20.0


class Worker:
    """A real worker with its log in a file, so a test can read what it said so far."""

    def __init__(self, log: Path, env: dict | None = None) -> None:
        self.endpoint = Endpoint.new()
        self.log_path = log
        self._log = open(log, "w")  # noqa: SIM115 - kept open for the worker's lifetime
        self.proc = _start_worker(self.endpoint, stderr=self._log, env=env)
        self.conn = None
        self.channel_ids = itertools.count(1)  # a fresh id per opened channel, across tests

    def connect(self):
        self.conn = _connect(self.endpoint)
        assert self.recv()["type"] == "ready"
        return self.conn

    def recv(self, skip=("status", "catalog", "verdict")) -> dict:
        """The next message that is not routine, or fail after DEADLINE_S."""
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            if self.conn.poll(0.05):
                msg = self.conn.recv()
                if msg["type"] not in skip:
                    return msg
            assert self.proc.poll() is None, f"worker exited with {self.proc.returncode}:\n{self.log()}"
        raise AssertionError(f"no reply within {DEADLINE_S} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text()

    def close(self) -> None:
        if self.conn is not None and self.proc.poll() is None:
            try:
                self.conn.send("shutdown")
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.proc.kill()
        self.proc.wait()
        self._log.close()
        self.endpoint.remove()


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    w = Worker(tmp_path_factory.mktemp("worker") / "worker.log")
    w.connect()
    yield w
    w.close()


@pytest.fixture()
def channels():
    made = []

    def make() -> FrameChannel:
        ch = FrameChannel.create(W, H)
        made.append(ch)
        return ch

    yield make
    for ch in made:
        shm.unlink(ch.name)
        ch.close()


def _open(worker: Worker, ch: FrameChannel) -> int:
    cid = next(worker.channel_ids)
    worker.conn.send("open", channel=cid, shm=ch.name, width=W, height=H)
    assert worker.recv() == {"v": 1, "type": "attached", "channel": cid, "shm": ch.name}
    return cid


def _feed(ch: FrameChannel, frame_id: int) -> None:
    ch.input.write(lambda s: ctypes.memset(ch.input.slot_address(s), frame_id % 251, ch.frame_bytes),
                   frame_id=frame_id, capture_ns=time.monotonic_ns())


def _output(worker: Worker, ch: FrameChannel, frame_id: int) -> None:
    """Wait until the worker has published its result for input ``frame_id``."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        meta = ch.output.read(lambda s: None)
        if meta is not None and meta.frame_id == frame_id:
            return
        assert worker.proc.poll() is None, f"worker exited:\n{worker.log()}"
        time.sleep(0.01)
    raise AssertionError(f"no output for frame {frame_id}:\n{worker.log()}")


# ------------------------------------------------------------------------------ control messages
def _nested(depth: int) -> bytes:
    inner = "1"
    for _ in range(depth):
        inner = f'{{"a":[{inner}]}}'
    return json.dumps({"v": 1, "type": "configure", "channel": 1}).encode()[:-1] + b',"options":' + \
        inner.encode() + b"}"


BAD_MESSAGES = {
    "oversized, valid JSON": json.dumps({"v": 1, "type": "frames", "channels": [1] * 40000}).encode(),
    "oversized, a megabyte of garbage": os.urandom(1 << 20),
    "just over the limit": b" " * (control.MAX_MESSAGE_BYTES + 1),
    "a thousand nested arrays": b"[" * 1000 + b"]" * 1000,
    "nested objects inside a real message": _nested(40),
    "deep but unbalanced": b"{" * 5000,
    "an array": b"[1, 2, 3]",
    "a string": b'"open"',
    "null": b"null",
    "a number": b"42",
    "an integer beyond the parser's digit limit": b'{"v": ' + b"1" * 5000 + b"}",
    "version true": json.dumps({"v": True, "type": "close", "channel": 1}).encode(),
    "version 1.0": json.dumps({"v": 1.0, "type": "close", "channel": 1}).encode(),
    "version '1'": json.dumps({"v": "1", "type": "close", "channel": 1}).encode(),
    "version missing": json.dumps({"type": "close", "channel": 1}).encode(),
    "version 2": json.dumps({"v": 2, "type": "close", "channel": 1}).encode(),
    "empty": b"",
}


@pytest.mark.parametrize("payload", BAD_MESSAGES.values(), ids=BAD_MESSAGES.keys())
def test_bad_message_is_dropped_with_one_line_and_the_next_is_served(worker, channels, payload):
    before = worker.log().count("rejected control message")
    worker.conn._conn.send_bytes(payload)
    _open(worker, channels())  # a good message right behind it is still read, in step, and served
    log = worker.log()
    assert log.count("rejected control message") == before + 1
    assert "Traceback" not in log


def test_decode_refuses_depth_without_recursing():
    for text in (b"[" * 100_000, b'{"a":' * 100_000):
        with pytest.raises(control.ProtocolError, match="nests deeper"):
            control.decode(text)
    # brackets inside strings are text, not nesting
    deep_string = json.dumps({"v": 1, "type": "error", "channel": 0, "message": "[" * 1500})
    assert control.decode(deep_string.encode())["message"] == "[" * 1500


# ---------------------------------------------------------------------------- shared-memory counters
def _published_count_beyond_limit(ch: FrameChannel) -> None:
    ch.words[8] = ((2**62 - 1) << 2) | 0


def _output_published_count_beyond_limit(ch: FrameChannel) -> None:
    ch.words[10] = ((2**62 - 1) << 2) | 1  # the worker's next commit would overflow the word
    _feed(ch, 7)


def _output_seq_at_word_max(ch: FrameChannel) -> None:
    for slot in range(3):
        ch.words[40 + 8 * slot] = 2**64 - 1
    _feed(ch, 7)


def _input_seq_at_word_max(ch: FrameChannel) -> None:
    _feed(ch, 7)
    ch.words[16 + 8 * (ch.words[8] & 3)] = 2**64 - 1


def _published_count_goes_back(ch: FrameChannel) -> None:
    for frame_id in range(1, 6):
        _feed(ch, frame_id)
        time.sleep(0.01)
    deadline = time.monotonic() + DEADLINE_S
    while ch.output.published()[0] == 0 or ch.output.read(lambda s: None) is None:  # the worker saw them
        assert time.monotonic() < deadline
        time.sleep(0.01)
    ch.words[8] = (1 << 2) | (ch.words[8] & 3)


def _published_slot_out_of_range(ch: FrameChannel) -> None:
    ch.words[8] = (5 << 2) | 3


COUNTER_FAULTS = {
    "input published count 2^62-1": _published_count_beyond_limit,
    "output published count 2^62-1": _output_published_count_beyond_limit,
    "output slot sequences 2^64-1": _output_seq_at_word_max,
    "input slot sequence 2^64-1": _input_seq_at_word_max,
    "input published count goes back": _published_count_goes_back,
    "input published slot 3": _published_slot_out_of_range,
}


@pytest.mark.parametrize("corrupt", COUNTER_FAULTS.values(), ids=COUNTER_FAULTS.keys())
def test_impossible_counters_drop_only_that_channel(worker, channels, corrupt):
    bad_ch, good_ch = channels(), channels()
    bad, good = _open(worker, bad_ch), _open(worker, good_ch)
    _feed(good_ch, 1)
    _output(worker, good_ch, 1)
    corrupt(bad_ch)
    error = worker.recv()
    assert error["type"] == "error" and error["channel"] == bad, error
    assert f"channel {bad} dropped" in error["message"]
    _feed(good_ch, 2)  # the other channel, and the worker, keep serving
    _output(worker, good_ch, 2)
    log = worker.log()
    assert log.count(f"channel {bad} dropped") == 1
    assert "Traceback" not in log and "invalid value for format" not in log
    assert good != bad


@pytest.mark.parametrize(("word", "value"), [
    (8, ((2**62 - 1) << 2)), (16, 2**64 - 1), (9, 7), (10, COUNTER_LIMIT << 2),
])
def test_impossible_counters_are_refused_at_attach(channels, word, value):
    ch = channels()
    ch.words[word] = value
    with pytest.raises(CorruptHeader):
        FrameChannel.attach(ch.name, W, H)


@pytest.mark.parametrize("fields", [
    {"frame_id": -1}, {"frame_id": 2**64}, {"capture_ns": -5}, {"process_ns": 2**70}, {"frame_id": 1.5},
])
def test_record_values_that_do_not_fit_raise_corrupt_header_not_value_error(channels, fields):
    ch = channels()
    args = {"frame_id": 1, "capture_ns": 1, "process_ns": 0, **fields}
    with pytest.raises(CorruptHeader, match="does not fit"):
        ch.input.write(lambda s: None, **args)


def test_counters_at_their_bound_are_refused_before_they_overflow(channels):
    ch = channels()
    ch.words[8] = (COUNTER_LIMIT - 1) << 2
    with pytest.raises(CorruptHeader, match="count"):
        _feed(ch, 1)
    ch = channels()
    ch.words[16] = ch.words[24] = ch.words[32] = 2**64 - 1
    with pytest.raises(CorruptHeader, match="sequence"):
        _feed(ch, 1)


# ----------------------------------------------------------------- publication under weak ordering
def _published_slot(ch: FrameChannel) -> int:
    return ch.input.published()[1]


def _stale_tail(ch, slot):
    """The writer's last payload stores are not visible yet: the tail still shows the old bytes."""
    view = ch.input.slot_view(slot)
    view[-CHECK_TAIL_BYTES // 8:] = bytes(CHECK_TAIL_BYTES // 8)


def _stale_head(ch, slot):
    ch.input.slot_view(slot)[0] ^= 0xFF


def _stale_frame_id(ch, slot):
    ch.words[16 + 8 * slot + 2] = 99


def _stale_capture_time(ch, slot):
    ch.words[16 + 8 * slot + 3] += 1


def _stale_check(ch, slot):
    ch.words[16 + 8 * slot + 6] ^= 1


REORDERINGS = {"payload tail": _stale_tail, "payload head": _stale_head, "frame id": _stale_frame_id,
               "capture time": _stale_capture_time, "check word": _stale_check}


@pytest.mark.parametrize("make_stale", REORDERINGS.values(), ids=REORDERINGS.keys())
def test_frame_whose_stores_are_not_all_visible_is_dropped_not_trusted(make_stale):
    """As a weakly ordered CPU may show it: seq even and published, but part of the frame still old."""
    ch = FrameChannel.create(320, 240)  # larger than the dense tail, so the sparse sample counts too
    try:
        _feed(ch, 1)
        slot = _published_slot(ch)
        good = bytes(ch.input.slot_view(slot))
        record = list(ch.words[16 + 8 * slot: 24 + 8 * slot])
        make_stale(ch, slot)
        assert ch.input.read(lambda s: None) is None
        ch.input.slot_view(slot)[:] = good  # the stores land: the same frame is now taken
        for i, v in enumerate(record):
            ch.words[16 + 8 * slot + i] = v
        meta = ch.input.read(lambda s: None)
        assert meta is not None and meta.frame_id == 1
    finally:
        shm.unlink(ch.name)
        ch.close()


def test_frame_changed_while_it_was_read_is_discarded(channels):
    ch = channels()
    _feed(ch, 1)
    lease = ch.input.acquire()
    assert ch.input.intact(lease)
    ch.input.slot_view(lease.slot)[-1] ^= 0xFF  # a store that landed during the copy
    assert not ch.input.intact(lease)
    ch.input.release()


# --------------------------------------------------------------------------------------- handshake
def _raw_client(endpoint: Endpoint) -> socket.socket:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(endpoint.address)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            assert time.monotonic() < deadline
            time.sleep(0.02)


BAD_CLIENTS = {
    "silent": b"",
    "half a length prefix": b"\x00\x00",
    "a length with no body": b"\x00\x00\x00\x20",
    "a huge length": b"\xff\xff\xff\xff" + (2**40).to_bytes(8, "big"),
    "a garbage answer": b"\x00\x00\x00\x03abc",
}


@pytest.mark.parametrize("sends", BAD_CLIENTS.values(), ids=BAD_CLIENTS.keys())
def test_bad_client_in_the_handshake_does_not_keep_the_real_one_out(tmp_path, sends):
    w = Worker(tmp_path / "worker.log")
    intruder = _raw_client(w.endpoint)
    try:
        intruder.sendall(sends)
        # the real client queues behind it; the bound is what lets it in before its own timeout
        w.conn = w.endpoint.connect(timeout=control.ACCEPT_HANDSHAKE_S + 8)
        assert w.recv()["type"] == "ready"
        assert "control connection refused" in w.log()
    finally:
        intruder.close()
        w.close()


@pytest.mark.parametrize("sends", [b"", b"\x00\x00\x00\x1f#CHALL"], ids=["silent", "half a challenge"])
def test_client_connect_times_out_when_the_worker_never_completes_the_handshake(tmp_path, sends):
    """A frozen worker: its socket accepts, then it sends nothing, or stops in the middle of the challenge."""
    address = str(tmp_path / "frozen.sock")
    frozen = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    frozen.bind(address)
    frozen.listen(4)
    held = []

    def accept_and_freeze() -> None:
        peer, _ = frozen.accept()
        peer.sendall(sends)
        held.append(peer)

    thread = threading.Thread(target=accept_and_freeze, daemon=True)
    thread.start()
    try:
        with pytest.raises(HandshakeTimeout, match=r"did not complete within 0\.3 s"):
            Endpoint(address, os.urandom(32), None).connect(timeout=0.3)
    finally:
        thread.join(5)
        for peer in held:
            peer.close()
        frozen.close()


# --------------------------------------------------------------------------------- owner's death
OWNER = textwrap.dedent("""
    import json, os, socket, subprocess, sys, time
    from facefusion_obs.ipc.control import Endpoint
    state, log = sys.argv[1], sys.argv[2]
    endpoint = Endpoint.new()
    worker = subprocess.Popen([sys.executable, "-m", "facefusion_obs.worker"], stdin=subprocess.PIPE,
                              stderr=open(log, "w"))
    print(json.dumps({"pid": worker.pid, "address": endpoint.address}), flush=True)
    if state != "before bootstrap":
        worker.stdin.write((endpoint.to_json() + "\\n").encode())
        worker.stdin.flush()
        while not os.path.exists(endpoint.address):
            time.sleep(0.01)
    held = None
    if state.startswith("in the handshake"):
        held = socket.socket(socket.AF_UNIX)
        held.connect(endpoint.address)
        if state.endswith("mid-message"):
            held.sendall(b"\\x00\\x00")
    elif state == "serving":
        held = endpoint.connect()
        held.recv()
    print("in state", flush=True)
    time.sleep(600)
""")


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie waiting for its new parent to reap it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@pytest.mark.parametrize("state", ["before bootstrap", "listening", "in the handshake, silent",
                                   "in the handshake, mid-message", "serving"])
def test_worker_exits_promptly_when_its_owner_is_killed(tmp_path, state):
    log = tmp_path / "worker.log"
    owner = subprocess.Popen([sys.executable, "-c", OWNER, state, str(log)], stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
    info = None
    try:
        info = json.loads(owner.stdout.readline())
        assert owner.stdout.readline().strip() == "in state"
        time.sleep(0.2)  # let the worker settle into the state (a test-only pause, not an assertion)
        assert _running(info["pid"]), log.read_text()
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        deadline = time.monotonic() + 5  # the old worker lingered 30 s here
        while _running(info["pid"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(info["pid"]), f"worker {info['pid']} outlived its owner:\n{log.read_text()}"
        if state != "serving":  # a serving worker exits cleanly on EOF; the next start sweeps the folder
            assert not os.path.exists(info["address"]), "the socket was left behind"
        if state not in ("serving", "before bootstrap"):  # (before bootstrap it has no address to clean)
            assert not os.path.exists(os.path.dirname(info["address"])), "the private folder was left behind"
    finally:
        owner.kill()
        owner.wait()
        if info:
            with contextlib.suppress(ProcessLookupError):
                os.kill(info["pid"], signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(info["address"]))


# ---------------------------------------------------------------------------------- stale folders
def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    return int(done.stdout)


def test_worker_start_sweeps_only_empty_private_folders_of_dead_sessions(tmp_path):
    root = tmp_path / "tmp"
    root.mkdir()
    dead = _dead_pid()

    def folder(name: str, mode: int = 0o700, content: bool = False) -> Path:
        path = root / name
        path.mkdir()
        path.chmod(mode)
        if content:
            (path / "keep.txt").write_text("mine")
        return path

    swept = [folder(f"ffobs-{dead}-abcdefgh"), folder("ffobs-legacy_1")]
    kept = [
        folder(f"ffobs-{os.getpid()}-abcdefgh"),  # a live session, not connected yet
        folder(f"ffobs-{dead}-withfile", content=True),  # not empty
        folder(f"ffobs-{dead}-loosemod", mode=0o755),  # not one of our private folders
        folder("ffobs-bench-abcdefgh"),  # another tool's temporary folder
        folder("ffobs-shots-12345678"),
    ]
    (root / f"ffobs-{dead}-symlinkd").symlink_to(kept[0])
    kept.append(root / f"ffobs-{dead}-symlinkd")
    stale = folder(f"ffobs-{dead}-stalesck")  # a worker killed while it listened: a socket nobody serves
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale / "control.sock"))
    swept.append(stale)
    listening = folder("ffobs-livesock")  # a socket someone still listens on is never taken
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(listening / "control.sock"))
    live.listen(1)
    kept.append(listening / "control.sock")
    w = Worker(tmp_path / "worker.log", env=dict(os.environ, TMPDIR=str(root)))
    try:
        w.connect()  # the sweep runs before the worker listens
        for path in swept:
            assert not path.exists(), path
            assert f"removed {path}" in w.log()
        for path in kept:
            assert path.exists() or path.is_symlink(), path
        assert (root / f"ffobs-{dead}-withfile" / "keep.txt").read_text() == "mine"
    finally:
        live.close()
        w.close()
