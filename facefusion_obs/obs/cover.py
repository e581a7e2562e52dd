"""What a filter may show when the streamer's real face must never reach the output.

The worker sends a verdict for each output (``verdict``: did it swap every face) just before it
publishes that output, but the two travel different ways (a control message, a shared-memory slot),
so a render can find an output whose verdict has not arrived yet. The gate never guesses: an output
is shown only once its verdict says swapped; until then the last verified output stays up (one frame
late at most), and a verdict that does not come within ``VERDICT_WAIT_S`` counts as "not swapped".

Each filter keeps two output textures: the *good* one holds the newest verified output (also what the
cover blurs) and new outputs are uploaded into the other, the *spare*; a verified spare becomes the
good one. Pure logic, standard library only: the filter does the drawing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

VERDICT_WAIT_S = 0.25  # far more than a verdict takes (the relay polls every 20 ms); less than a blink


def verdict_for(verdicts: Iterable[tuple[int, bool]], frame_id: int) -> bool | None:
    """The worker's verdict for output ``frame_id``, or None when it has not said (yet)."""
    for fid, swapped in verdicts:
        if fid == frame_id:
            return swapped
    return None


@dataclass(frozen=True)
class Decision:
    promote: bool  # the spare texture holds a verified output: make it the good one
    cover: bool  # draw the cover; otherwise the good texture


class PrivacyGate:
    """Per filter: which output texture is safe to show, and when only the cover is."""

    def __init__(self) -> None:
        self.pending: int | None = None  # frame id in the spare texture, waiting for its verdict
        self.pending_since = 0.0
        self.has_good = False  # the good texture holds a verified output
        self.unsafe = True  # the newest decided output was not swapped, or nothing is decided yet

    def uploaded(self, frame_id: int, now: float) -> None:
        """A new output is in the spare texture (replacing any that was still waiting)."""
        if self.pending is None:
            self.pending_since = now
        self.pending = frame_id

    def discard(self) -> None:
        """The spare texture holds nothing usable (a torn upload)."""
        self.pending = None

    def restart(self) -> None:
        """A new channel or worker: nothing it sends is trusted until its first verdict."""
        self.pending, self.unsafe = None, True

    def textures_lost(self) -> None:
        """The output textures were recreated (a new frame size): their contents are undefined (on a
        real GPU possibly an old camera frame), so there is no good picture to show or blur."""
        self.restart()
        self.has_good = False

    def decide(self, verdicts: Iterable[tuple[int, bool]], now: float, *, worker_ok: bool, forced: bool) -> Decision:
        """``worker_ok``: the worker runs and serves this filter; ``forced``: the panic key is on."""
        promote = False
        if self.pending is not None:
            verdict = verdict_for(verdicts, self.pending)
            if verdict is None and now - self.pending_since > VERDICT_WAIT_S:
                verdict = False
            if verdict is not None:
                self.pending, self.unsafe = None, not verdict
                promote = verdict
                self.has_good |= verdict
        cover = forced or not worker_ok or self.unsafe or not self.has_good
        return Decision(promote, cover)
