"""The usage log: when each preset's face was swapped in, in which scene, under which consent.

A local, append-only JSON-lines file beside the presets folder (``<data>/usage/usage.jsonl``, the
folder 0700, the file 0600: it says whose face was used when). Nothing is sent anywhere. The worker
writes two lines per entry, each with one ``os.write`` on an ``O_APPEND`` descriptor, so lines from two
workers (two OBS instances) never interleave::

    {"v":1,"event":"start","id":"…","start":"2026-12-04T19:30:01Z","preset":"alice",
     "consent":{"recorded":"2026-12-01T10:00:00Z","sha256":"3fa2b1c4d5e6"},"channel":1,"scene":"Interview"}
    {"v":1,"event":"end", …the same fields…, "end":"2026-12-04T19:45:10Z"}

The end line repeats every field, so it stands alone; a start line without an end is an entry still
open, or one cut short by a worker that was killed. ``consent`` cites the preset's consent (when it
was recorded and a short hash of the statement) rather than copying the words.

Swapping is debounced on the worker's monotonic clock: an entry opens once a preset has been swapped
in for ``START_AFTER_S`` (its start is the first swapped frame), and closes once no frame has been
swapped for ``END_AFTER_S`` (its end is the last swapped frame), so a face lost for a few frames stays
one entry. A change of preset, consent or scene closes the entry and opens another; so do a channel
closing and the worker exiting. The file is bounded: past ``MAX_BYTES`` it becomes ``usage.jsonl.1``
(replacing the previous one) and a new file starts.

``read`` gives every line back with its file and line number; a damaged line is reported, not raised.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from facefusion_obs.config import locations

log = logging.getLogger("facefusion_obs.usage")

FORMAT = 1
MAX_BYTES = 1 << 20  # about 2500 entries (a start and an end line each) before it rotates to .1
MAX_LINE = 4096  # bytes; a line is far shorter (scene names are cut to 256 characters)
MAX_SCENE = 256
START_AFTER_S = 0.5
END_AFTER_S = 2.0
DIR_MODE, FILE_MODE = 0o700, 0o600
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_ID = re.compile(r"[0-9a-f]{16}")
_HASH = re.compile(r"[0-9a-f]{12}")


def log_path() -> Path:
    """Where the usage log lives: a ``usage`` folder beside the presets folder (so the worker, which OBS
    starts with the installer's presets folder, and ``facefusion-obs log`` agree)."""
    return locations().presets_dir.parent / "usage" / "usage.jsonl"


def utc(wall: float) -> str:
    """A ``time.time()`` value as the log writes it."""
    return datetime.fromtimestamp(wall, timezone.utc).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """A time as the log writes it, back to an aware datetime (ValueError if it is not one)."""
    if not isinstance(text, str) or not _TIME.fullmatch(text):
        raise ValueError(f"{str(text)[:40]!r} is not a UTC time like 2026-12-04T19:30:01Z")
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=timezone.utc)


# ------------------------------------------------------------------------------------- the file
class UsageLog:
    """The log file: ``append`` one record as one line, ``read`` every line back (rotated file first)."""

    def __init__(self, path: Path | None = None, max_bytes: int = MAX_BYTES) -> None:
        self.path = Path(path) if path is not None else log_path()
        self.max_bytes = max_bytes

    @property
    def rotated(self) -> Path:
        return self.path.with_name(self.path.name + ".1")

    def _open(self) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.path, flags | getattr(os, "O_BINARY", 0), FILE_MODE)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(f"{self.path} is not a regular file")
            if hasattr(os, "fchmod"):
                os.fchmod(fd, FILE_MODE)  # the umask may have masked the mode; an old file may be wider
        except BaseException:
            os.close(fd)
            raise
        return fd

    def append(self, record: Mapping[str, Any]) -> None:
        """Write ``record`` as one JSON line with one ``os.write`` (OSError if the disk refuses)."""
        line = (json.dumps(record, separators=(",", ":"), ensure_ascii=True, allow_nan=False) + "\n").encode()
        if len(line) > MAX_LINE:
            raise ValueError(f"usage record of {len(line)} bytes is above the limit of {MAX_LINE}")
        folder = self.path.parent
        folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(folder, DIR_MODE)
        fd = self._open()
        try:
            if os.fstat(fd).st_size + len(line) > self.max_bytes:
                os.close(fd)
                fd = -1
                os.replace(self.path, self.rotated)  # one generation kept: the log stays bounded
                fd = self._open()
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"{self.path}: short write ({written} of {len(line)} bytes)")
        finally:
            if fd >= 0:
                os.close(fd)

    def read(self) -> Iterator[LogLine]:
        """Every line of the rotated file and then the current one, oldest first; damaged lines included
        with ``record`` None and ``problem`` saying why, so a reader can report and skip them."""
        for path in (self.rotated, self.path):
            yield from _read_file(path)


@dataclass(frozen=True)
class LogLine:
    path: Path
    number: int  # 1-based line number in ``path``
    record: dict[str, Any] | None
    problem: str = ""


def _read_file(path: Path) -> Iterator[LogLine]:
    try:
        fh = open(path, "rb")  # noqa: SIM115 (closed below; a missing file is simply no lines)
    except FileNotFoundError:
        return
    with fh:
        number = 0
        while True:
            raw = fh.readline(MAX_LINE + 1)
            if not raw:
                return
            number += 1
            if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # skip the rest of an over-long line
                    raw = fh.readline(MAX_LINE + 1)
                yield LogLine(path, number, None, f"longer than {MAX_LINE} bytes")
                continue
            try:
                yield LogLine(path, number, check_record(json.loads(raw.decode("utf-8"))))
            except (UnicodeDecodeError, ValueError, RecursionError) as exc:
                yield LogLine(path, number, None, str(exc)[:200])


def check_record(value: Any) -> dict[str, Any]:
    """``value`` if it is a well-formed log record; ValueError names the field that is not."""
    if not isinstance(value, dict):
        raise ValueError(f"is a JSON {type(value).__name__}, not an object")
    if value.get("v") != FORMAT or isinstance(value.get("v"), bool):
        raise ValueError(f"field 'v' is {value.get('v')!r}, not {FORMAT}")
    event = value.get("event")
    fields = {"v", "event", "id", "start", "preset", "consent", "channel", "scene"}
    fields |= {"end"} if event == "end" else set()
    if event not in ("start", "end"):
        raise ValueError(f"field 'event' is {str(event)[:40]!r}, not 'start' or 'end'")
    if set(value) != fields:
        missing, extra = sorted(fields - set(value)), sorted(set(value) - fields)
        raise ValueError(f"missing field {missing[0]!r}" if missing else f"unexpected field {extra[0][:40]!r}")
    if not isinstance(value["id"], str) or not _ID.fullmatch(value["id"]):
        raise ValueError("field 'id' is not 16 hex digits")
    start = parse_time(value["start"])
    if event == "end" and parse_time(value["end"]) < start:
        raise ValueError("field 'end' is before 'start'")
    if not isinstance(value["preset"], str) or not 0 < len(value["preset"]) <= 64:
        raise ValueError("field 'preset' is not a preset name")
    ref = value["consent"]
    if not (isinstance(ref, dict) and set(ref) == {"recorded", "sha256"} and isinstance(ref["sha256"], str)
            and _HASH.fullmatch(ref["sha256"])):
        raise ValueError("field 'consent' is not {recorded, sha256}")
    parse_time(ref["recorded"])
    channel = value["channel"]
    if isinstance(channel, bool) or not isinstance(channel, int) or not 0 < channel <= 2**31:
        raise ValueError("field 'channel' is not a channel id")
    if not isinstance(value["scene"], str) or len(value["scene"]) > MAX_SCENE:
        raise ValueError(f"field 'scene' is not text of at most {MAX_SCENE} characters")
    return value


# ----------------------------------------------------------------------------------- the tracker
@dataclass(frozen=True)
class Use:
    """What is swapped in: the preset, its consent reference and the scene (an entry per change)."""

    preset: str
    consent: tuple[str, str]  # (recorded, sha256 of the statement, shortened)
    scene: str


@dataclass
class _Seen:
    use: Use
    first_mono: float
    first_wall: float
    last_mono: float
    last_wall: float
    id: str = ""  # set once the entry is open (its start line written)


class UsageTracker:
    """Turns each channel's per-frame "swapped this preset or not" into log entries (see the module).

    Never raises into the worker: a log that cannot be written is reported once in the worker's log
    (``problem`` keeps the reason) and the stream goes on.
    """

    def __init__(self, usage_log: UsageLog | None = None, start_after: float = START_AFTER_S,
                 end_after: float = END_AFTER_S) -> None:
        self.log = usage_log or UsageLog()
        self.start_after, self.end_after = start_after, end_after
        self.problem = ""
        self._seen: dict[int, _Seen] = {}

    def observe(self, channel: int, use: Use | None, mono: float | None = None, wall: float | None = None) -> None:
        """One processed frame of ``channel``: ``use`` is what it swapped in, None if it swapped nothing."""
        mono = time.monotonic() if mono is None else mono
        wall = time.time() if wall is None else wall
        seen = self._seen.get(channel)
        if seen is not None and (mono - seen.last_mono >= self.end_after or (use is not None and use != seen.use)):
            self._finish(channel)
            seen = None
        if use is None:
            return
        if seen is None:
            seen = self._seen[channel] = _Seen(use, mono, wall, mono, wall)
        seen.last_mono, seen.last_wall = mono, wall
        if not seen.id and mono - seen.first_mono >= self.start_after:
            seen.id = secrets.token_hex(8)
            self._write(self._record("start", channel, seen))

    def tick(self, mono: float | None = None) -> None:
        """Close entries whose channel has swapped nothing for ``end_after`` (no frames come at all while a
        source is hidden); the worker calls it every loop, so it costs a dict walk."""
        mono = time.monotonic() if mono is None else mono
        for channel in [c for c, s in self._seen.items() if mono - s.last_mono >= self.end_after]:
            self._finish(channel)

    def close(self, channel: int) -> None:
        """The channel closed: its open entry ends at its last swapped frame."""
        if channel in self._seen:
            self._finish(channel)

    def close_all(self) -> None:
        """The worker is exiting: every open entry ends at its last swapped frame."""
        for channel in list(self._seen):
            self._finish(channel)

    def open_entries(self) -> dict[int, Use]:
        """Channels with an entry open now (its start line written), and what they swap in."""
        return {c: s.use for c, s in self._seen.items() if s.id}

    def _finish(self, channel: int) -> None:
        seen = self._seen.pop(channel)
        if seen.id:  # shorter than start_after: never opened, nothing to close
            self._write({**self._record("end", channel, seen), "end": utc(seen.last_wall)})

    @staticmethod
    def _record(event: str, channel: int, seen: _Seen) -> dict[str, Any]:
        use = seen.use
        return {"v": FORMAT, "event": event, "id": seen.id, "start": utc(seen.first_wall), "preset": use.preset,
                "consent": {"recorded": use.consent[0], "sha256": use.consent[1]}, "channel": channel,
                "scene": use.scene[:MAX_SCENE]}

    def _write(self, record: dict[str, Any]) -> None:
        try:
            self.log.append(record)
        except (OSError, ValueError) as exc:
            problem = f"usage log {self.log.path} cannot be written: {exc}"
            if problem != self.problem:
                log.warning("%s", problem)
            self.problem = problem
        else:
            self.problem = ""
