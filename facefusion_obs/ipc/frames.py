"""One channel's shared memory: a validated header plus triple-buffered input and output slots.

Layout (little-endian, all header fields are aligned 64-bit words so each store is a single write):

    word 0  magic "FFOBSCH1"        word 8   input  published  (count << 2 | slot)
    word 1  layout version (2)      word 9   input  reader     (slot + 1, 0 = none)
    word 2  header bytes (4096)     word 10  output published
    word 3  width                   word 11  output reader
    word 4  height                  words 16..39  input slot records  (8 words each)
    word 5  slots per ring (3)      words 40..63  output slot records (8 words each)
    word 6  bytes per slot (w*h*4)
    then 3 input slots (BGRA, written by OBS) and 3 output slots (RGBA straight alpha, by the worker).

Slot record: 0 seq (odd while being written), 1 publish count, 2 frame id, 3 capture ns (monotonic
clock of the capturing process; CLOCK_MONOTONIC and QueryPerformanceCounter are system-wide), 4 done
ns, 5 process ns, 6 check (CRC-32 of words 1..5 and of the payload sample, see below), 7 unused.

Why three slots: the writer always has one that is neither the newest published frame nor the one
the reader holds, so it never waits and never writes a slot being read. A reader announces the slot
it takes, then checks the slot's sequence number after copying (a seqlock): the announcement closes
the race in which the writer chose that slot a moment earlier, and the check catches it if it did.

Publication, and why it is detected rather than ordered. The writer makes seq odd, fills the slot,
writes the record's fields and check, makes seq even, then stores the published word. The reader
loads the published word, announces the slot, and takes it only if seq is even, the record's count
is the published one and the check matches what it recomputes from the record and the slot; after
using the slot it recomputes the check and compares seq again, and drops the frame on any change.
On x86 stores become visible in program order, so the check never fails there except for a real
rewrite. On ARM64 (Apple silicon, Windows on ARM) they need not: without a barrier another core can
see the published word or the even seq before the writer's last payload stores, and a reader's own
loads can be satisfied out of order. Python offers no memory fence, so no step here trusts order:
seq catches an overlapping rewrite, and the check catches a frame whose record or pixels are not
yet, or no longer, the ones published. A frame that fails is dropped (the last good one stays up),
never drawn.

What the check covers, and why that is enough: the record's fields entirely, the last
``CHECK_TAIL_BYTES`` of the payload entirely, and one byte of every ``CHECK_STRIDE`` bytes before
that. A weakly ordered core holds back only its most recent stores (a store buffer is a few KiB),
and every writer fills a slot front to back (memmove, numpy in memory order), so what can still be
in flight when the record is published is the payload's tail. The sparse bytes catch grosser damage
(a slot filled out of order or rewritten while it was read). A CRC of every byte would cost about a
memory pass per frame on each side (2 ms at 1080p); the sample costs about 10 microseconds. What it
cannot see is one stale byte between two sampled ones in the body of the frame, which would take a
writer that fills out of order and a core that holds a store back for a whole frame.

Counters have explicit bounds. Publish counts and sequence numbers stay below ``COUNTER_LIMIT``
(2^48: thousands of years at 1000 frames a second), every record field is checked to fit its word
before it is stored, and a ring's published count never goes back. A header that breaks any of
these was not written by this protocol: the operation raises :class:`CorruptHeader` (the worker
drops that channel and reports it) instead of storing a value that cannot be represented.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from facefusion_obs.ipc.shm import SharedRegion

MAGIC = int.from_bytes(b"FFOBSCH1", "little")
LAYOUT_VERSION = 2
HEADER_BYTES = 4096
SLOTS = 3
MAX_SIDE = 8192
COUNTER_LIMIT = 2**48
CHECK_TAIL_BYTES = 16 * 1024  # several times what a core can hold back (see above)
CHECK_STRIDE = 16 * 1024  # each sampled byte costs a page walk: sample sparsely
_WORD_LIMIT = 2**64
_RECORD_WORDS = 8
_META = struct.Struct("<5Q")  # record words 1..5, as the check sees them
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
        self._seen = 0  # the highest published count this process has seen: it never goes back

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

    def _check(self, slot: int, meta: FrameMeta) -> int:
        """CRC-32 of the record's fields and of the payload sample (see the module docstring)."""
        view = self._ch.view
        start = self.slot_offset(slot)
        end = start + self.slot_bytes
        tail = max(start, end - CHECK_TAIL_BYTES)
        crc = zlib.crc32(_META.pack(meta.count, meta.frame_id, meta.capture_ns, meta.done_ns, meta.process_ns))
        crc = zlib.crc32(view[tail:end], crc)
        return zlib.crc32(view[start:tail:CHECK_STRIDE].tobytes(), crc)

    def _seq(self, slot: int) -> int:
        seq = self._words[self._rec(slot)]
        if seq >= COUNTER_LIMIT:
            raise CorruptHeader(f"{self._ch.name}: slot {slot} sequence {seq} is beyond {COUNTER_LIMIT}")
        return seq

    # -- state
    def published(self) -> tuple[int, int]:
        """(publish count, slot) of the newest frame; count 0 means nothing yet."""
        word = self._words[_PUBLISHED[self._dir]]
        count, slot = word >> 2, word & 3
        if slot >= SLOTS:
            raise CorruptHeader(f"published slot {slot} is outside 0..{SLOTS - 1}")
        if count >= COUNTER_LIMIT:
            raise CorruptHeader(f"{self._ch.name}: published count {count} is beyond {COUNTER_LIMIT}")
        if count < self._seen:
            raise CorruptHeader(f"{self._ch.name}: published count went back from {self._seen} to {count}")
        self._seen = count
        return count, slot

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
        self._words[self._rec(slot)] = (self._seq(slot) + 1) | 1  # odd: being written
        return slot

    def commit(self, slot: int, frame_id: int, capture_ns: int, process_ns: int = 0) -> FrameMeta:
        """Publish a filled slot as the newest frame."""
        w, r = self._words, self._rec(slot)
        seq = self._seq(slot)
        if not seq & 1:
            raise CorruptHeader(f"{self._ch.name}: slot {slot} sequence {seq} changed while it was written")
        count = self.published()[0] + 1
        meta = FrameMeta(frame_id, capture_ns, count, time.monotonic_ns(), process_ns)
        fields = (count, frame_id, meta.capture_ns, meta.done_ns, process_ns)
        for name, value in zip(("count", "frame id", "capture ns", "done ns", "process ns"), fields, strict=True):
            if not isinstance(value, int) or not 0 <= value < (COUNTER_LIMIT if name == "count" else _WORD_LIMIT):
                raise CorruptHeader(f"{self._ch.name}: {name} {value!r} does not fit the slot record")
        w[r + 1], w[r + 2], w[r + 3], w[r + 4], w[r + 5] = fields
        w[r + 6] = self._check(slot, meta)
        w[r] = seq + 1  # even: stable
        w[_PUBLISHED[self._dir]] = (count << 2) | slot
        self._seen = count
        return meta

    def abort(self, slot: int) -> None:
        """Give a claimed slot back unpublished (its record still names an older, unpublished count)."""
        self._words[self._rec(slot)] = (self._seq(slot) | 1) + 1

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
            seq = self._seq(slot)
            if seq & 1 or w[r + 1] != count:
                continue  # the writer chose this slot before our announcement: take the newer one
            meta = FrameMeta(w[r + 2], w[r + 3], count, w[r + 4], w[r + 5])
            check = w[r + 6]
            if self._check(slot, meta) != check:
                continue  # not all of the writer's stores are visible yet (weak ordering), or torn
            return Lease(slot, seq, meta, check)
        self.release()
        return None

    def intact(self, lease: Lease) -> bool:
        """True when the slot still holds the leased frame: same sequence, same check."""
        return self._seq(lease.slot) == lease.seq and self._check(lease.slot, lease.meta) == lease.check

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
    """A reader's hold on one slot: the slot, its sequence number and check when taken, its meta."""

    slot: int
    seq: int
    meta: FrameMeta
    check: int


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
        for word in _PUBLISHED:
            if w[word] >> 2 >= COUNTER_LIMIT:
                raise CorruptHeader(f"{self.name}: published count {w[word] >> 2} is beyond {COUNTER_LIMIT}")
        for first in _RECORDS:
            for slot in range(SLOTS):
                if w[first + slot * _RECORD_WORDS] >= COUNTER_LIMIT:
                    raise CorruptHeader(f"{self.name}: slot {slot} sequence is beyond {COUNTER_LIMIT}")

    def close(self) -> None:
        # memoryviews must be released before the mapping can close
        self.words.release()
        self.view.release()
        self.region.close()
