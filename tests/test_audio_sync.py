"""The audio sync rule (obs/audiosync.py): a frame-rounded offset that moves only on a lasting change."""

from __future__ import annotations

import pytest

from facefusion_obs.obs.audiosync import HOLD_S, MAX_DELAY_NS, AudioHold, SyncRule, round_to_frame, status_text

FRAME = 33_333_333  # 30 fps
MS = 1_000_000


def _feed(rule: SyncRule, latency_ms: float, start: float, seconds: float, step: float = 0.25) -> list[int]:
    """Feed a constant latency every ``step`` s; the offsets set meanwhile."""
    changes, t = [], start
    while t < start + seconds:
        new = rule.update(latency_ms * MS, t)
        if new is not None:
            changes.append(new)
        t += step
    return changes


def test_rounding_to_a_frame():
    assert round_to_frame(0, FRAME) == 0
    assert round_to_frame(16 * MS, FRAME) == 0
    assert round_to_frame(17 * MS, FRAME) == FRAME
    assert round_to_frame(120 * MS, FRAME) == 4 * FRAME
    assert round_to_frame(-50 * MS, FRAME) == 0
    assert round_to_frame(60e9, FRAME) <= MAX_DELAY_NS


def test_a_lasting_latency_is_followed_after_the_hold_and_rounded():
    rule = SyncRule(FRAME, base_ns=0)
    assert _feed(rule, 120, 0.0, HOLD_S - 0.5) == [], "not before the hold"
    changes = _feed(rule, 120, HOLD_S - 0.5, 1.0)
    assert changes == [4 * FRAME] and rule.applied_ns == 4 * FRAME
    assert _feed(rule, 120, 10.0, 10.0) == [], "set once, then left alone"


def test_jitter_within_a_frame_never_moves_the_offset():
    rule = SyncRule(FRAME, base_ns=0)
    _feed(rule, 100, 0.0, HOLD_S + 1)
    assert rule.applied_ns == 3 * FRAME
    t, changes = 10.0, []
    for i in range(400):  # +- 30 ms around the offset in use for 100 s
        new = rule.update((100 + (30 if i % 2 else -30)) * MS, t)
        changes += [new] if new is not None else []
        t += 0.25
    assert changes == []


def test_a_short_excursion_is_ignored_and_the_hold_restarts():
    rule = SyncRule(FRAME, base_ns=0)
    _feed(rule, 100, 0.0, HOLD_S + 1)
    before = rule.applied_ns
    assert _feed(rule, 300, 10.0, HOLD_S - 1) == [], "a worker restart's spike"
    assert _feed(rule, 100, 12.0, 0.5) == []
    assert _feed(rule, 300, 12.5, HOLD_S - 1) == [], "a new excursion starts its own hold"
    assert rule.applied_ns == before
    assert rule.update(None, 20.0) is None, "no output flowing: keep what is set"


def test_the_streamers_own_offset_is_kept_as_the_base():
    rule = SyncRule(FRAME, base_ns=20 * MS)
    assert rule.applied_ns == 20 * MS and rule.delay_ns == 0
    _feed(rule, 70, 0.0, HOLD_S + 1)
    assert rule.applied_ns == 20 * MS + 2 * FRAME and rule.delay_ns == 2 * FRAME
    _feed(rule, 5, 10.0, HOLD_S + 1)  # the latency fell (a faster quality level): back to the base
    assert rule.applied_ns == 20 * MS


def test_status_names_the_source_and_the_offset():
    assert status_text(None, "") == ""
    assert "not found" in status_text(None, "Mic")
    hold = AudioHold("Mic", SyncRule(FRAME, base_ns=0))
    _feed(hold.rule, 100, 0.0, HOLD_S + 1)
    assert status_text(hold, "Mic") == "audio sync: 'Mic' offset 100 ms (own 0 ms + video delay 3 frames)"
    with pytest.raises(ValueError, match="frame interval"):
        SyncRule(0, base_ns=0)


def test_the_sources_own_offset_is_recorded_while_held(tmp_path):
    from facefusion_obs.obs.audiosync import read_saved, write_saved

    path = tmp_path / "config" / "audio_sync.json"
    assert read_saved(path) is None
    write_saved(path, ("Mic", 20 * MS))
    assert read_saved(path) == ("Mic", 20 * MS)
    assert not list(path.parent.glob("*.tmp")), "written whole, then renamed"
    write_saved(path, None)
    assert not path.exists() and read_saved(path) is None
    write_saved(path, None)  # forgetting twice is fine
    for junk in ("{", "[]", '{"source": "", "offset_ns": 0}', '{"source": "Mic", "offset_ns": true}',
                 '{"source": "Mic", "offset_ns": 1e30}', '{"source": "Mic", "offset_ns": 99999999999999}'):
        path.write_text(junk)
        assert read_saved(path) is None, junk
