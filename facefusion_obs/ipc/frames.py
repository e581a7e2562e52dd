"""One channel's shared memory: a validated header plus triple-buffered input and output slots.

Layout (little-endian, all header fields are aligned 64-bit words so each store is a single write):

    word 0  magic "FFOBSCH1"        word 8   input  published  (count << 2 | slot)
    word 1  layout version          word 9   input  reader     (slot + 1, 0 = none)
    word 2  header bytes (4096)     word 10  output published
    word 3  width                   word 11  output reader
    word 4  height                  words 16..39  input slot records  (8 words each)
    word 5  slots per ring (3)      words 40..63  output slot records (8 words each)
    word 6  bytes per slot (w*h*4)
    then 3 input slots (BGRA, written by OBS) and 3 output slots (RGBA straight alpha, by the worker).

Slot record: seq (odd while being written), publish count, frame id, capture ns (monotonic clock of
the capturing process; CLOCK_MONOTONIC and QueryPerformanceCounter are system-wide), done ns,
process ns.

Why three slots: the writer always has one that is neither the newest published frame nor the one
the reader holds, so it never waits and never writes a slot being read. A reader announces the slot
it takes, then checks the slot's sequence number after copying (a seqlock): the announcement closes
the race in which the writer chose that slot a moment earlier, and the check catches it if it did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from facefusion_obs.ipc.shm import SharedRegion

MAGIC = int.from_bytes(b"FFOBSCH1", "little")
LAYOUT_VERSION = 1
HEADER_BYTES = 4096
SLOTS = 3
MAX_SIDE = 8192
_RECORD_WORDS = 8
_IN, _OUT = 0, 1
_PUBLISHED = (8, 10)
_READER = (9, 11)
_RECORDS = (16, 40)
READ_ATTEMPTS = 4


class CorruptHeader(ValueError):
    """The header does not describe a channel we can use; the message says which field and why."""


@dataclass(frozen=True)
class FrameMeta:
    """What travels with a frame: its id, the capture time of the input it came from, and timings."""

    frame_id: int
    capture_ns: int
    count: int  # publish count: strictly increasing per ring, so "newer" is a comparison
    done_ns: int = 0
    process_ns: int = 0


def channel_bytes(width: int, height: int) -> int:
    return HEADER_BYTES + 2 * SLOTS * width * height * 4


def check_geometry(width: object, height: object) -> tuple[int, int]:
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_SIDE:
            raise CorruptHeader(f"{name} {v!r} is outside 1..{MAX_SIDE}")
    return width, height  # type: ignore[return-value]


class SlotRing:
    """One direction of a channel. Exactly one writer process and one reader process use it."""

    def __init__(self, channel: FrameChannel, direction: int) -> None:
        self._ch = channel
        self._words = channel.words
        self._dir = direction
        self.slot_bytes = channel.frame_bytes
        self._data_offset = HEADER_BYTES + direction * SLOTS * self.slot_bytes

    # -- places
    def slot_offset(self, slot: int) -> int:
        return self._data_offset + slot * self.slot_bytes

    def slot_address(self, slot: int) -> int:
        return self._ch.region.address + self.slot_offset(slot)

    def slot_view(self, slot: int) -> memoryview:
        off = self.slot_offset(slot)
        return self._ch.view[off : off + self.slot_bytes]

    def _rec(self, slot: int) -> int:
        return _RECORDS[self._dir] + slot * _RECORD_WORDS

    # -- state
    def published(self) -> tuple[int, int]:
        """(publish count, slot) of the newest frame; count 0 means nothing yet."""
        word = self._words[_PUBLISHED[self._dir]]
        slot = word & 3
        if slot >= SLOTS:
            raise CorruptHeader(f"published slot {slot} is outside 0..{SLOTS - 1}")
        return word >> 2, slot

    def reader_slot(self) -> int | None:
        v = self._words[_READER[self._dir]]
        if v > SLOTS:
            raise CorruptHeader(f"reader slot {v - 1} is outside 0..{SLOTS - 1}")
        return None if v == 0 else v - 1

    # -- writer
    def begin_write(self) -> int:
        """Claim a slot that is neither the newest published nor the reader's. Never waits."""
        count, latest = self.published()
        held = self.reader_slot()
        slot = next(s for s in range(SLOTS) if s != held and (count == 0 or s != latest))
        self._words[self._rec(slot)] += 1  # odd: being written
        return slot

    def commit(self, slot: int, frame_id: int, capture_ns: int, process_ns: int = 0) -> FrameMeta:
        """Publish a filled slot as the newest frame."""
        w, r = self._words, self._rec(slot)
        count = self.published()[0] + 1
        done = time.monotonic_ns()
        w[r + 1], w[r + 2], w[r + 3], w[r + 4], w[r + 5] = count, frame_id, capture_ns, done, process_ns
        w[r] += 1  # even: stable
        w[_PUBLISHED[self._dir]] = (count << 2) | slot
        return FrameMeta(frame_id, capture_ns, count, done, process_ns)

    def abort(self, slot: int) -> None:
        """Give a claimed slot back unpublished (its record still names an older, unpublished count)."""
        self._words[self._rec(slot)] += 1

    def write(
        self, fill: Callable[[int], None], frame_id: int, capture_ns: int, process_ns: int = 0
    ) -> FrameMeta:
        """Fill a free slot via ``fill(slot)`` and publish it."""
        slot = self.begin_write()
        try:
            fill(slot)
        except BaseException:
            self.abort(slot)
            raise
        return self.commit(slot, frame_id, capture_ns, process_ns)

    # -- reader
    def acquire(self, newer_than: int = 0) -> Lease | None:
        """Announce and take the newest frame if it is newer than ``newer_than``.

        The caller uses the slot, asks :meth:`intact` whether it survived unchanged, then calls
        :meth:`release`. None means nothing newer (or it kept being rewritten under us).
        """
        w = self._words
        for _ in range(READ_ATTEMPTS):
            count, slot = self.published()
            if count <= newer_than:
                break
            w[_READER[self._dir]] = slot + 1
            r = self._rec(slot)
            seq = w[r]
            if seq & 1 or w[r + 1] != count:
                continue  # the writer chose this slot before our announcement: take the newer one
            return Lease(slot, seq, FrameMeta(w[r + 2], w[r + 3], count, w[r + 4], w[r + 5]))
        self.release()
        return None

    def intact(self, lease: Lease) -> bool:
        return self._words[self._rec(lease.slot)] == lease.seq

    def release(self) -> None:
        self._words[_READER[self._dir]] = 0

    def read(self, consume: Callable[[int], None], newer_than: int = 0) -> FrameMeta | None:
        """Hand the newest frame's slot to ``consume`` if it is newer than ``newer_than``.

        Returns its meta, or None when there is nothing newer or every attempt met a concurrent
        rewrite (then whatever ``consume`` produced must be discarded).
        """
        try:
            for _ in range(READ_ATTEMPTS):
                lease = self.acquire(newer_than)
                if lease is None:
                    return None
                consume(lease.slot)
                if self.intact(lease):
                    return lease.meta
            return None
        finally:
            self.release()


@dataclass(frozen=True)
class Lease:
    """A reader's hold on one slot: the slot, its sequence number when taken, and its meta."""

    slot: int
    seq: int
    meta: FrameMeta


class FrameChannel:
    """The shared memory of one filter instance. OBS creates it; the worker attaches by name."""

    def __init__(self, region: SharedRegion, width: int, height: int, *, initialise: bool) -> None:
        self.region = region
        self.width, self.height = width, height
        self.frame_bytes = width * height * 4
        self.view = memoryview(region.mm)
        self.words = self.view[:HEADER_BYTES].cast("Q")
        if initialise:
            header = [MAGIC, LAYOUT_VERSION, HEADER_BYTES, width, height, SLOTS, self.frame_bytes]
            for i, v in enumerate(header):
                self.words[i] = v
        else:
            self.validate()
        self.input = SlotRing(self, _IN)
        self.output = SlotRing(self, _OUT)

    @property
    def name(self) -> str:
        return self.region.name

    @classmethod
    def create(cls, width: int, height: int) -> FrameChannel:
        check_geometry(width, height)
        return cls(SharedRegion.create(channel_bytes(width, height)), width, height, initialise=True)

    @classmethod
    def attach(cls, name: str, width: int, height: int) -> FrameChannel:
        check_geometry(width, height)
        region = SharedRegion.attach(name, channel_bytes(width, height))
        try:
            return cls(region, width, height, initialise=False)
        except Exception:
            region.close()
            raise

    def validate(self) -> None:
        """Check every header field against what this side expects; raise CorruptHeader naming it."""
        w = self.words
        expected = {
            "magic": (0, MAGIC),
            "layout version": (1, LAYOUT_VERSION),
            "header bytes": (2, HEADER_BYTES),
            "width": (3, self.width),
            "height": (4, self.height),
            "slots": (5, SLOTS),
            "slot bytes": (6, self.frame_bytes),
        }
        for field, (index, want) in expected.items():
            if w[index] != want:
                raise CorruptHeader(f"{self.name}: header {field} is {w[index]:#x}, expected {want:#x}")
        for word in _PUBLISHED:
            if (w[word] & 3) >= SLOTS:
                raise CorruptHeader(f"{self.name}: published slot {w[word] & 3} is invalid")
        for word in _READER:
            if w[word] > SLOTS:
                raise CorruptHeader(f"{self.name}: reader slot {w[word] - 1} is invalid")

    def close(self) -> None:
        # memoryviews must be released before the mapping can close
        self.words.release()
        self.view.release()
        self.region.close()
