"""Shared-memory channel and control channel, across real processes."""

from __future__ import annotations

import ctypes
import json
import os
import stat
import subprocess
import sys
import time
from multiprocessing import AuthenticationError
from pathlib import Path

import numpy as np
import pytest

from facefusion_obs.ipc import control, shm
from facefusion_obs.ipc.control import Endpoint, ProtocolError
from facefusion_obs.ipc.frames import CorruptHeader, FrameChannel

PEER = Path(__file__).with_name("ipc_peer.py")


@pytest.fixture()
def channel():
    ch = FrameChannel.create(320, 240)
    yield ch
    shm.unlink(ch.name)
    ch.close()


def _fill(ch: FrameChannel, frame_id: int) -> None:
    ch.input.write(lambda s: ctypes.memset(ch.input.slot_address(s), frame_id % 251, ch.frame_bytes),
                   frame_id=frame_id, capture_ns=time.monotonic_ns())


def test_segment_is_private_and_randomly_named(channel):
    path = Path("/dev/shm") / channel.name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    other = FrameChannel.create(8, 8)
    try:
        assert other.name != channel.name and len(channel.name.split("-")[-1]) == 32
    finally:
        shm.unlink(other.name)
        other.close()


def test_no_torn_frames_and_newest_wins_across_processes(channel):
    """A writer process publishes 4000 frames flat out while this process reads.

    Every frame read must be uniform (no mix of two frames) and carry the byte value of the id in
    its header; ids must strictly increase (never an older frame after a newer one) and frames the
    reader was too slow for must be skipped, not queued.
    """
    frames = 4000
    writer = subprocess.Popen([sys.executable, str(PEER), "write", channel.name, "320", "240", str(frames)])
    buf = np.empty(channel.frame_bytes, np.uint8)
    seen, last, count = [], 0, 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        meta = channel.input.read(
            lambda s: ctypes.memmove(buf.ctypes.data, channel.input.slot_address(s), channel.frame_bytes),
            newer_than=count)
        if meta is not None:
            assert buf.min() == buf.max() == meta.frame_id % 251, f"torn frame {meta.frame_id}"
            assert meta.frame_id > last
            last, count = meta.frame_id, meta.count
            seen.append(meta.frame_id)
            time.sleep(0.0005)  # a reader slower than the writer
        elif writer.poll() is not None and channel.input.published()[0] == count:
            break
    assert writer.wait(10) == 0
    assert seen[-1] == frames, "the newest frame is always delivered"
    assert 10 < len(seen) < frames, "a slow reader skips stale frames instead of queueing them"


def test_newest_frame_wins_without_reader(channel):
    for frame_id in range(1, 8):
        _fill(channel, frame_id)
    got = []
    meta = channel.input.read(lambda s: got.append(bytes(channel.input.slot_view(s)[:1])))
    assert meta.frame_id == 7 and got == [bytes([7])]
    assert channel.input.read(lambda s: None, newer_than=meta.count) is None


def test_writer_never_takes_the_slot_being_read(channel):
    _fill(channel, 1)
    lease = channel.input.acquire()
    for frame_id in range(2, 20):  # many writes while the reader holds its slot
        _fill(channel, frame_id)
        assert channel.input.intact(lease)
    channel.input.release()


@pytest.mark.parametrize(("word", "value", "field"), [
    (0, 0x1234, "magic"), (1, 99, "layout version"), (3, 321, "width"), (6, 5, "slot bytes"),
])
def test_corrupt_header_is_rejected_with_its_field(channel, word, value, field):
    channel.words[word] = value
    with pytest.raises(CorruptHeader, match=field):
        FrameChannel.attach(channel.name, 320, 240)


def test_corrupt_published_word_is_rejected_by_reader(channel):
    channel.words[8] = (5 << 2) | 3  # slot 3 does not exist
    with pytest.raises(CorruptHeader, match="slot 3"):
        channel.input.read(lambda s: None)


def test_attach_refuses_foreign_names_and_loose_permissions(channel):
    with pytest.raises(shm.ShmError, match="not a facefusion-obs segment"):
        FrameChannel.attach("../../etc/passwd", 320, 240)
    os.chmod(Path("/dev/shm") / channel.name, 0o644)
    with pytest.raises(shm.ShmError, match="mode 644"):
        FrameChannel.attach(channel.name, 320, 240)


def test_sweep_removes_segments_of_dead_creators():
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    name = f"ffobs-{int(dead.stdout)}-{'ab' * 16}"
    fd = os.open(f"/dev/shm/{name}", os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    assert name in shm.sweep_orphans()
    assert name not in shm.list_segments()


# ------------------------------------------------------------------------------------ control
def test_messages_are_validated_field_by_field():
    assert control.make("open", channel=1, shm=f"ffobs-1-{'0' * 32}", width=64, height=48)["type"] == "open"
    bad = [
        ({"v": 2, "type": "close", "channel": 1}, "protocol version"),
        ({"v": 1, "type": "nope"}, "unknown message type"),
        ({"v": 1, "type": "close"}, "missing field 'channel'"),
        ({"v": 1, "type": "close", "channel": 0}, "field 'channel'"),
        ({"v": 1, "type": "close", "channel": 1, "extra": 1}, "unexpected field"),
        ({"v": 1, "type": "open", "channel": 1, "shm": "/etc/passwd", "width": 1, "height": 1}, "field 'shm'"),
        ({"v": 1, "type": "open", "channel": 1, "shm": f"ffobs-1-{'0' * 32}", "width": 99999, "height": 1},
         "field 'width'"),
        ({"v": 1, "type": "configure", "channel": 1, "options": {"matting": "sepia"}}, "'matting'"),
    ]
    for msg, reason in bad:
        with pytest.raises(ProtocolError, match=reason):
            control.validate(msg)
    with pytest.raises(ProtocolError, match="JSON"):
        control.decode(b"\x80\x04pickle")


def _start_worker(endpoint: Endpoint, stderr=subprocess.PIPE, env: dict | None = None) -> subprocess.Popen:
    """A real worker process, bootstrapped over stdin as the supervisor does (the fault tests use it too)."""
    proc = subprocess.Popen([sys.executable, "-m", "facefusion_obs.worker"], stdin=subprocess.PIPE,
                            stderr=stderr, text=True, env=env)
    proc.stdin.write(endpoint.to_json() + "\n")
    proc.stdin.close()
    return proc


def _connect(endpoint: Endpoint):
    deadline = time.monotonic() + 20
    while True:
        try:
            return endpoint.connect()
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def test_wrong_key_is_refused_and_bad_messages_are_dropped(channel):
    endpoint = Endpoint.new()
    proc = _start_worker(endpoint)
    try:
        impostor = Endpoint(endpoint.address, b"0" * 32, None)
        deadline = time.monotonic() + 20
        while True:
            try:
                impostor.connect()
                raise AssertionError("a wrong key was accepted")
            except (FileNotFoundError, ConnectionRefusedError):
                assert time.monotonic() < deadline
                time.sleep(0.02)
            except AuthenticationError:
                break
        conn = _connect(endpoint)  # the real key still works: the worker kept listening
        assert conn.recv()["type"] == "ready"
        raw = conn._conn
        raw.send_bytes(b"not json")
        raw.send_bytes(json.dumps({"v": 1, "type": "open", "channel": 1, "shm": "../x", "width": 1,
                                   "height": 1}).encode())
        conn.send("open", channel=1, shm=channel.name, width=320, height=240)
        msg = conn.recv()
        while msg["type"] in ("status", "catalog", "verdict"):
            msg = conn.recv()
        assert msg == {"v": 1, "type": "attached", "channel": 1, "shm": channel.name}
        conn.send("shutdown")
        assert proc.wait(10) == 0
        log = proc.stderr.read()
        assert "wrong" in log.lower() or "digest" in log.lower() or "refused" in log.lower()
        assert log.count("rejected control message") == 2
    finally:
        proc.kill()
        endpoint.remove()


def test_worker_reports_corrupt_channel_and_keeps_serving(channel):
    endpoint = Endpoint.new()
    proc = _start_worker(endpoint)
    broken = FrameChannel.create(64, 48)
    try:
        broken.words[0] = 0
        conn = _connect(endpoint)
        assert conn.recv()["type"] == "ready"
        conn.send("open", channel=2, shm=broken.name, width=64, height=48)
        conn.send("open", channel=1, shm=channel.name, width=320, height=240)
        replies = []
        while len(replies) < 2:
            msg = conn.recv()
            if msg["type"] not in ("status", "catalog", "verdict"):
                replies.append(msg)
        error, attached = replies
        assert error["type"] == "error" and "magic" in error["message"] and error["channel"] == 2
        assert attached["type"] == "attached" and attached["channel"] == 1
        conn.send("shutdown")
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        endpoint.remove()
        shm.unlink(broken.name)
        broken.close()
