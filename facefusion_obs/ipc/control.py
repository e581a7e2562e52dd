"""The control channel: small, versioned JSON messages over an authenticated local connection.

``multiprocessing.connection`` gives an AF_UNIX socket (Linux, macOS) or a named pipe (Windows) and a
mutual HMAC challenge with a random key per OBS session, so neither side talks to an impostor. Bytes
are exchanged with ``send_bytes``/``recv_bytes`` and decoded as JSON: the connection's pickling
``send``/``recv`` are never used. Every message is validated field by field; a bad one raises
:class:`ProtocolError` with the reason and is dropped by the caller, the connection stays up.

Bounds, each checked before the message can do harm:

- **Size**: at most ``MAX_MESSAGE_BYTES``. The stream is the connection's own framing (a 4-byte
  big-endian length, or -1 and an 8-byte length); an oversized message is read to its end and
  discarded, never held, so the next message starts in step. (``recv_bytes(maxlength)`` would leave
  the rest in the stream and mark the connection unreadable.) On Windows a named pipe in message
  mode delivers each message whole, so there it is read and then measured.
- **Nesting**: at most ``MAX_DEPTH`` levels of arrays and objects, counted by a scan of the text
  before it is parsed (a thousand nested brackets would otherwise exhaust the parser's recursion).
- **Version**: exactly the integer ``PROTOCOL_VERSION``; ``true`` and ``1.0`` compare equal to 1 in
  Python but are not the protocol.
- **Handshake time**: the worker gives a client ``ACCEPT_HANDSHAKE_S`` to authenticate, so a silent
  or stalling connection cannot keep the real one waiting; OBS gives the worker ``HANDSHAKE_S``.
  The HMAC challenge itself is the standard library's, run over these bounded reads.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import shutil
import socket
import stat
import struct
import sys
import tempfile
import time
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener, answer_challenge, deliver_challenge
from typing import Any

from facefusion_obs.config import OptionError, validate_options
from facefusion_obs.ipc.frames import MAX_SIDE
from facefusion_obs.ipc.shm import ShmError, alive, check_name

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024
MAX_DEPTH = 16  # the deepest real message (status -> channels -> one channel) is 3
HANDSHAKE_S = 10.0  # OBS waits this long for a listening worker to authenticate
ACCEPT_HANDSHAKE_S = 1.5  # the worker waits this long for a connected client to authenticate
_HANDSHAKE_BYTES = 256  # the stdlib challenge and answer are far shorter
_PRIVATE_DIR = "ffobs-"  # Endpoint.new's folder prefix: "ffobs-PID-" then tempfile's 8 characters
_SOCKET = "control.sock"
_PRIVATE_NAME = re.compile(r"^ffobs-(?:([0-9]{1,10})-)?[a-z0-9_]{8}$")
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


class ProtocolError(ValueError):
    """A message that is not valid protocol; the text names the message type and field."""


class HandshakeTimeout(TimeoutError):
    """The peer did not complete the authentication handshake in time."""


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


def _optional(check: Any) -> Any:
    """``check`` for a field a message may leave out (older senders never send it)."""

    def optional(v: Any) -> bool:
        return check(v)

    optional.__doc__, optional.optional = check.__doc__, True  # type: ignore[attr-defined]
    return optional


def _float(v: Any) -> bool:
    """a finite number"""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) < 1e12


def _bool(v: Any) -> bool:
    """true or false"""
    return isinstance(v, bool)


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
        "quality": _str(64),
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
    # scene: the OBS scene the filter is shown in, for the worker's local usage log (optional)
    "configure": {"channel": _CHANNEL, "options": _options, "scene": _optional(_str(256))},
    "frames": {"channels": _channel_ids},
    "shutdown": {},
    # worker -> OBS
    "ready": {"pid": _int(1, 2**31), "effects": _str_list, "provider": _str(64)},
    "attached": {"channel": _CHANNEL, "shm": _shm_name},
    "status": {"state": lambda v: v in _STATES, "provider": _str(64), "channels": _stats},
    "error": {"channel": _int(0, 2**31), "message": _str(2000)},
    # sent before each output is published: did it swap every face (the privacy cover needs to know)
    "verdict": {"channel": _CHANNEL, "frame_id": _int(0, 2**62), "swapped": _bool},
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
    if type(msg.get("v")) is not int or msg["v"] != PROTOCOL_VERSION:  # not True, not 1.0
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
            if getattr(check, "optional", False):
                continue
            raise ProtocolError(f"{kind}: missing field {field!r}")
        if not check(msg[field]):
            raise ProtocolError(
                f"{kind}: field {field!r} = {msg[field]!r:.80} is not {check.__doc__ or 'valid'}"
            )
    return msg


def _depth(text: str) -> int:
    """How deeply arrays and objects nest in JSON ``text``, without parsing it (brackets inside
    strings do not count)."""
    steps = (1 if b in "[{" else -1 for b in _BRACKETS.findall(_STRINGS.sub("", text)))
    return max(itertools.accumulate(steps), default=0)


def decode(data: bytes) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"message is not UTF-8 JSON: {exc}") from exc
    if _depth(text) > MAX_DEPTH:
        raise ProtocolError(f"message nests deeper than {MAX_DEPTH} levels")
    try:
        msg = json.loads(text)
    except RecursionError:  # the scan above should make this unreachable; never let it escape
        raise ProtocolError(f"message nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, and an integer beyond Python's digit limit
        raise ProtocolError(f"message is not UTF-8 JSON: {exc}") from exc
    return validate(msg)


# ------------------------------------------------------------------------------------ the framing
def _wait_readable(conn: Connection, deadline: float | None) -> None:
    if deadline is not None and not conn.poll(max(0.0, deadline - time.monotonic())):
        raise HandshakeTimeout("the peer went silent")


def _read_exact(conn: Connection, size: int, deadline: float | None, keep: bool = True) -> bytes:
    """``size`` bytes from the stream (only counted, not kept, with ``keep=False``)."""
    parts, left = [], size
    while left:
        _wait_readable(conn, deadline)
        chunk = os.read(conn.fileno(), min(left, 1 << 16))
        if not chunk:
            raise EOFError("control connection closed" + (" in the middle of a message" if left < size else ""))
        left -= len(chunk)
        if keep:
            parts.append(chunk)
    return b"".join(parts)


def _read_frame(conn: Connection, limit: int, deadline: float | None = None) -> bytes:
    """The next message, if it has at most ``limit`` bytes; a longer one is consumed whole and
    refused with ProtocolError, so the stream stays in step. With ``deadline`` (a monotonic time) a
    peer that stalls, even in the middle of a message, raises HandshakeTimeout."""
    if sys.platform == "win32":
        _wait_readable(conn, deadline)
        data = conn.recv_bytes()  # a message-mode pipe: each message arrives whole
        size = len(data)
    else:
        (size,) = struct.unpack("!i", _read_exact(conn, 4, deadline))
        if size == -1:
            (size,) = struct.unpack("!Q", _read_exact(conn, 8, deadline))
        data = _read_exact(conn, max(size, 0), deadline, keep=size <= limit)
    if size > limit:
        raise ProtocolError(f"message of {size} bytes is longer than the {limit} allowed; dropped")
    return data


class _Timed:
    """The two calls the standard library's handshake makes, with every read held to one deadline."""

    def __init__(self, conn: Connection, seconds: float) -> None:
        self._conn = conn
        self._deadline = time.monotonic() + seconds

    def send_bytes(self, data: bytes) -> None:
        self._conn.send_bytes(data)

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        return _read_frame(self._conn, min(maxlength or _HANDSHAKE_BYTES, _HANDSHAKE_BYTES), self._deadline)


def _authenticate(conn: Connection, authkey: bytes, seconds: float, *, server: bool) -> None:
    """The mutual HMAC challenge of ``multiprocessing.connection`` (the listener challenges first),
    bounded in time. Raises AuthenticationError, HandshakeTimeout, EOFError or OSError; the caller
    closes ``conn``."""
    timed = _Timed(conn, seconds)
    try:
        if server:
            deliver_challenge(timed, authkey)
            answer_challenge(timed, authkey)
        else:
            answer_challenge(timed, authkey)
            deliver_challenge(timed, authkey)
    except HandshakeTimeout:
        raise HandshakeTimeout(f"the control handshake did not complete within {seconds:g} s") from None
    except (AssertionError, ProtocolError) as exc:  # answer_challenge asserts the challenge's prefix
        raise AuthenticationError(f"the peer did not speak the handshake: {exc}") from None


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
        """Block for one message. EOFError/OSError mean the peer is gone; ProtocolError a bad message
        (already consumed: the next ``recv`` reads the next message)."""
        return decode(_read_frame(self._conn, MAX_MESSAGE_BYTES))

    def fileno(self) -> int:
        return self._conn.fileno()

    def close(self) -> None:
        self._conn.close()


class ControlListener:
    """The worker's side of the address: hands out authenticated connections, one client at a time."""

    def __init__(self, address: str, authkey: bytes) -> None:
        self._authkey = authkey
        # No authkey here: _authenticate runs the same challenge, under ACCEPT_HANDSHAKE_S.
        self._listener = Listener(address, backlog=8)

    def accept(self, handshake_s: float = ACCEPT_HANDSHAKE_S) -> ControlConnection:
        """Wait for a client and authenticate it within ``handshake_s``. A client that fails raises
        AuthenticationError, HandshakeTimeout, EOFError or OSError; the listener stays usable."""
        conn = self._listener.accept()
        try:
            _authenticate(conn, self._authkey, handshake_s, server=True)
        except BaseException:
            conn.close()
            raise
        return ControlConnection(conn)

    def close(self) -> None:
        self._listener.close()  # also removes the socket file


class Endpoint:
    """A fresh private address and key for one OBS session. The worker listens; OBS connects.

    Both travel to the worker over its stdin, never the command line (which other users can read),
    with OBS's process id so the worker can tell when its owner is gone. On POSIX the address is a
    socket in a private 0700 folder named ``ffobs-PID-XXXXXXXX`` after OBS's pid, so a folder that a
    crash left behind can be recognised and swept (:func:`sweep_private_dirs`).
    """

    def __init__(self, address: str, authkey: bytes, private_dir: str | None, doorbell: int | None = None,
                 parent: int | None = None) -> None:
        self.address = address
        self.authkey = authkey
        self._private_dir = private_dir
        # POSIX: the read end of a pipe inherited by the worker; one byte on it means "new frame".
        self.doorbell = doorbell
        self.parent = parent  # the pid of the process that owns the session (OBS)

    @classmethod
    def new(cls) -> Endpoint:
        key = secrets.token_bytes(32)
        if sys.platform == "win32":
            return cls(rf"\\.\pipe\ffobs-{secrets.token_hex(16)}", key, None, parent=os.getpid())
        folder = tempfile.mkdtemp(prefix=f"{_PRIVATE_DIR}{os.getpid()}-")  # 0700: nobody else can reach it
        return cls(os.path.join(folder, _SOCKET), key, folder, parent=os.getpid())

    def to_json(self) -> str:
        return json.dumps({"address": self.address, "authkey": self.authkey.hex(), "doorbell": self.doorbell,
                           "parent": self.parent})

    @classmethod
    def from_json(cls, text: str) -> Endpoint:
        try:
            data = json.loads(text)
            address, key = data["address"], bytes.fromhex(data["authkey"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(f"worker bootstrap line is not valid: {exc}") from exc
        if not isinstance(address, str) or len(key) < 16:
            raise ProtocolError("worker bootstrap line has a bad address or a short key")
        doorbell, parent = data.get("doorbell"), data.get("parent")
        if doorbell is not None and (type(doorbell) is not int or doorbell < 3):
            raise ProtocolError(f"worker bootstrap line has a bad doorbell descriptor {doorbell!r}")
        if parent is not None and (type(parent) is not int or not 1 <= parent < 2**31):
            raise ProtocolError(f"worker bootstrap line has a bad parent pid {parent!r}")
        return cls(address, key, None, doorbell, parent)

    def listen(self) -> ControlListener:
        return ControlListener(self.address, self.authkey)

    def connect(self, timeout: float = HANDSHAKE_S) -> ControlConnection:
        """Connect and authenticate within ``timeout`` seconds.

        FileNotFoundError or ConnectionRefusedError: the worker is not listening yet (try again).
        AuthenticationError: a wrong key. HandshakeTimeout (an OSError): the worker accepted but did
        not finish the handshake in time (it is frozen or busy with another client).
        """
        conn = Client(self.address)
        try:
            _authenticate(conn, self.authkey, timeout, server=False)
        except BaseException:
            conn.close()
            raise
        return ControlConnection(conn)

    def remove(self) -> None:
        if self._private_dir:
            shutil.rmtree(self._private_dir, ignore_errors=True)


def sweep_private_dirs(root: str | None = None) -> list[str]:
    """Remove the private folders crashed sessions left in the temp folder; returns their paths.

    Only folders named like ours, owned by this user and mode 0700, and, when the name carries the
    owner's pid, only once that process is gone (a live session's folder is empty until its worker
    binds the socket). A folder must be empty (``rmdir`` refuses anything else, atomically) or hold
    nothing but a control socket nobody listens on any more (a worker killed while it waited).
    """
    if sys.platform == "win32":
        return []  # named pipes leave no folder
    root = root or tempfile.gettempdir()
    try:
        entries = os.listdir(root)
    except OSError:
        return []
    removed = []
    for entry in entries:
        match = _PRIVATE_NAME.match(entry)
        if match is None or (match[1] is not None and alive(int(match[1]))):
            continue
        path = os.path.join(root, entry)
        try:
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) != 0o700:
                continue
            if os.listdir(path) == [_SOCKET] and _abandoned(os.path.join(path, _SOCKET)):
                os.unlink(os.path.join(path, _SOCKET))
            os.rmdir(path)
        except OSError:  # not empty, or gone meanwhile
            continue
        removed.append(path)
    return removed


def _abandoned(path: str) -> bool:
    """True for a socket file that refuses connections: its listener is dead."""
    if not stat.S_ISSOCK(os.lstat(path).st_mode):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return False
