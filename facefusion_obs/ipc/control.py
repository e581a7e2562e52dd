"""The control channel: small, versioned JSON messages over an authenticated local connection.

``multiprocessing.connection`` gives an AF_UNIX socket (Linux, macOS) or a named pipe (Windows) and a
mutual HMAC challenge with a random key per OBS session, so neither side talks to an impostor. Bytes
are exchanged with ``send_bytes``/``recv_bytes`` and decoded as JSON: the connection's pickling
``send``/``recv`` are never used. Every message is validated field by field; a bad one raises
:class:`ProtocolError` with the reason and is dropped by the caller, the connection stays up.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import tempfile
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

from facefusion_obs.config import OptionError, validate_options
from facefusion_obs.ipc.frames import MAX_SIDE
from facefusion_obs.ipc.shm import ShmError, check_name

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024


class ProtocolError(ValueError):
    """A message that is not valid protocol; the text names the message type and field."""


# ------------------------------------------------------------------------------------ the schema
def _int(lo: int, hi: int):
    def check(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi

    check.__doc__ = f"an integer in {lo}..{hi}"
    return check


def _str(maxlen: int):
    def check(v: Any) -> bool:
        return isinstance(v, str) and len(v) <= maxlen

    check.__doc__ = f"a string of at most {maxlen} characters"
    return check


def _float(v: Any) -> bool:
    """a finite number"""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) < 1e12


def _shm_name(v: Any) -> bool:
    """a facefusion-obs shared-memory name"""
    try:
        check_name(v)
        return True
    except ShmError:
        return False


def _options(v: Any) -> bool:
    """a mapping of known options with valid values"""
    try:
        validate_options(v, partial=True)
        return True
    except OptionError as exc:
        raise ProtocolError(str(exc)) from exc


def _channel_ids(v: Any) -> bool:
    """a list of at most 256 channel ids"""
    return isinstance(v, list) and len(v) <= 256 and all(_CHANNEL(c) for c in v)


def _str_list(v: Any) -> bool:
    """a list of at most 64 short strings"""
    return isinstance(v, list) and len(v) <= 64 and all(_str(64)(s) for s in v)


def _stats(v: Any) -> bool:
    """a list of per-channel statistics"""
    if not isinstance(v, list) or len(v) > 256:
        return False
    fields = {
        "channel": _CHANNEL,
        "processed": _int(0, 2**62),
        "dropped": _int(0, 2**62),
        "process_ms": _float,
        "preset": _str(300),
        "engine": _str(32),
    }
    return all(
        isinstance(s, dict) and s.keys() == fields.keys() and all(f(s[k]) for k, f in fields.items())
        for s in v
    )


def _engines(v: Any) -> bool:
    """a list of at most 8 engines, each {name, available, reason, fix}"""
    fields = {"name": _str(32), "available": lambda b: isinstance(b, bool), "reason": _str(500), "fix": _str(300)}
    return isinstance(v, list) and len(v) <= 8 and all(
        isinstance(e, dict) and e.keys() == fields.keys() and all(f(e[k]) for k, f in fields.items()) for e in v
    )


def _preset_names(v: Any) -> bool:
    """a list of at most 512 preset names"""
    return isinstance(v, list) and len(v) <= 512 and all(_str(64)(s) for s in v)


_CHANNEL = _int(1, 2**31)
_SIDE = _int(1, MAX_SIDE)
_STATES = ("ready", "loading")

# type -> {field: check}. Direction is documented, not enforced: both sides share one schema.
MESSAGES: dict[str, dict[str, Any]] = {
    # OBS -> worker
    "open": {"channel": _CHANNEL, "shm": _shm_name, "width": _SIDE, "height": _SIDE},
    "close": {"channel": _CHANNEL},
    "configure": {"channel": _CHANNEL, "options": _options},
    "frames": {"channels": _channel_ids},
    "shutdown": {},
    # worker -> OBS
    "ready": {"pid": _int(1, 2**31), "effects": _str_list, "provider": _str(64)},
    "attached": {"channel": _CHANNEL, "shm": _shm_name},
    "status": {"state": lambda v: v in _STATES, "provider": _str(64), "channels": _stats},
    "error": {"channel": _int(0, 2**31), "message": _str(2000)},
    # what can run (the worker is the one authority): sent after "ready" and whenever it changes
    "catalog": {"engines": _engines, "presets": _preset_names, "provider": _str(64)},
}


def make(kind: str, **fields: Any) -> dict[str, Any]:
    """Build a message and validate it, so a sender cannot emit what a receiver would refuse."""
    msg = {"v": PROTOCOL_VERSION, "type": kind, **fields}
    validate(msg)
    return msg


def validate(msg: Any) -> dict[str, Any]:
    if not isinstance(msg, dict):
        raise ProtocolError(f"message is a {type(msg).__name__}, not an object")
    if msg.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {msg.get('v')!r} is not {PROTOCOL_VERSION}")
    kind = msg.get("type")
    schema = MESSAGES.get(kind) if isinstance(kind, str) else None
    if schema is None:
        raise ProtocolError(f"unknown message type {kind!r}")
    extra = set(msg) - set(schema) - {"v", "type"}
    if extra:
        raise ProtocolError(f"{kind}: unexpected field(s) {', '.join(sorted(extra))}")
    for field, check in schema.items():
        if field not in msg:
            raise ProtocolError(f"{kind}: missing field {field!r}")
        if not check(msg[field]):
            raise ProtocolError(
                f"{kind}: field {field!r} = {msg[field]!r:.80} is not {check.__doc__ or 'valid'}"
            )
    return msg


def decode(data: bytes) -> dict[str, Any]:
    try:
        msg = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"message is not UTF-8 JSON: {exc}") from exc
    return validate(msg)


# --------------------------------------------------------------------------------- the transport
class ControlConnection:
    """One end of the channel. ``send`` validates; ``recv`` returns a validated message or raises."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def send(self, kind: str, **fields: Any) -> None:
        self._conn.send_bytes(json.dumps(make(kind, **fields), separators=(",", ":")).encode())

    def poll(self, timeout: float = 0.0) -> bool:
        return self._conn.poll(timeout)

    def recv(self) -> dict[str, Any]:
        """Block for one message. EOFError/OSError mean the peer is gone; ProtocolError a bad message."""
        try:
            data = self._conn.recv_bytes(MAX_MESSAGE_BYTES)
        except OSError as exc:
            if "too long" in str(exc) or "bad message length" in str(exc):
                raise ProtocolError(f"message longer than {MAX_MESSAGE_BYTES} bytes") from exc
            raise
        return decode(data)

    def fileno(self) -> int:
        return self._conn.fileno()

    def close(self) -> None:
        self._conn.close()


class Endpoint:
    """A fresh private address and key for one OBS session. The worker listens; OBS connects.

    Both travel to the worker over its stdin, never the command line (which other users can read).
    """

    def __init__(self, address: str, authkey: bytes, private_dir: str | None, doorbell: int | None = None) -> None:
        self.address = address
        self.authkey = authkey
        self._private_dir = private_dir
        # POSIX: the read end of a pipe inherited by the worker; one byte on it means "new frame".
        self.doorbell = doorbell

    @classmethod
    def new(cls) -> Endpoint:
        key = secrets.token_bytes(32)
        if sys.platform == "win32":
            return cls(rf"\\.\pipe\ffobs-{secrets.token_hex(16)}", key, None)
        folder = tempfile.mkdtemp(prefix="ffobs-")  # 0700: nobody else can reach the socket
        return cls(os.path.join(folder, "control.sock"), key, folder)

    def to_json(self) -> str:
        return json.dumps({"address": self.address, "authkey": self.authkey.hex(), "doorbell": self.doorbell})

    @classmethod
    def from_json(cls, text: str) -> Endpoint:
        try:
            data = json.loads(text)
            address, key = data["address"], bytes.fromhex(data["authkey"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(f"worker bootstrap line is not valid: {exc}") from exc
        if not isinstance(address, str) or len(key) < 16:
            raise ProtocolError("worker bootstrap line has a bad address or a short key")
        doorbell = data.get("doorbell")
        if doorbell is not None and (not isinstance(doorbell, int) or isinstance(doorbell, bool) or doorbell < 3):
            raise ProtocolError(f"worker bootstrap line has a bad doorbell descriptor {doorbell!r}")
        return cls(address, key, None, doorbell)

    def listen(self) -> Listener:
        return Listener(self.address, authkey=self.authkey)

    def connect(self) -> ControlConnection:
        """Connect and authenticate; raises AuthenticationError on a wrong key, OSError if not up yet."""
        return ControlConnection(Client(self.address, authkey=self.authkey))

    def remove(self) -> None:
        if self._private_dir:
            shutil.rmtree(self._private_dir, ignore_errors=True)
