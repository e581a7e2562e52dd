"""The usage log (issue 15, item 6): a local, append-only JSON-lines record of when each preset was
swapped in, in which scene, under which consent; written by the worker, read with ``facefusion-obs log``."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from worker_driver import WorkerDriver, green_frame, swapped_by, until

from facefusion_obs.cli.main import main
from facefusion_obs.config import PROJECT_ROOT
from facefusion_obs.ipc.control import ProtocolError, make
from facefusion_obs.presets import PresetStore
from facefusion_obs.presets.consent import statement_hash
from facefusion_obs.worker.usage import UsageLog, UsageTracker, Use, check_record, log_path

STATEMENT = "Tom Hanks sample photo from insightface 2.1, test material; no personal consent"
ALICE = Use("alice", ("2026-12-01T10:00:00Z", "0123456789ab"), "Interview")


@pytest.fixture
def home(isolated_home, monkeypatch) -> Path:
    monkeypatch.setenv("FACEFUSION_OBS_PRESETS", str(isolated_home / "data" / "presets"))
    return isolated_home


def _records(usage: UsageLog) -> list[dict]:
    return [line.record for line in usage.read()]


def _frames(tracker: UsageTracker, channel: int, swapped: list[Use | None], t0: float, fps: float = 30.0) -> float:
    """Feed one frame per entry of ``swapped`` at ``fps`` on a clock of its own; returns the next time."""
    for i, use in enumerate(swapped):
        t = t0 + i / fps
        tracker.observe(channel, use, mono=t, wall=1_800_000_000.0 + t)
    return t0 + len(swapped) / fps


# ------------------------------------------------------------------------------------- the tracker
def test_flicker_stays_one_entry_and_a_blip_makes_none(home):
    usage = UsageLog()
    tracker = UsageTracker(usage)
    # 2 s swapped, then a face lost for 5 frames (flicker) four times, then 2 s more
    frames = [ALICE] * 60 + ([None] * 5 + [ALICE] * 25) * 4 + [ALICE] * 60
    t = _frames(tracker, 1, frames, 0.0)
    assert [r["event"] for r in _records(usage)] == ["start"]  # one entry, still open
    t = _frames(tracker, 1, [None] * 90, t)  # 3 s without a swap: it ends at the last swapped frame
    records = _records(usage)
    assert [r["event"] for r in records] == ["start", "end"]
    start, end = records
    assert start["id"] == end["id"] and start["start"] == end["start"] == "2027-01-15T08:00:00Z"
    assert end["end"] == "2027-01-15T08:00:07Z"  # 60 + 120 + 60 frames from 0: the last swapped at 7.97 s
    assert end["preset"] == "alice" and end["scene"] == "Interview" and end["channel"] == 1
    assert end["consent"] == {"recorded": "2026-12-01T10:00:00Z", "sha256": "0123456789ab"}
    _frames(tracker, 1, [ALICE] * 6 + [None] * 90, t)  # a 0.2 s blip: shorter than START_AFTER_S
    tracker.tick(t + 10)
    assert len(_records(usage)) == 2


def test_a_change_of_preset_or_scene_closes_the_entry_and_the_end_comes_without_frames(home):
    usage = UsageLog()
    tracker = UsageTracker(usage)
    bob = Use("bob", ALICE.consent, "Interview")
    outro = Use("alice", ALICE.consent, "Outro")
    t = _frames(tracker, 1, [ALICE] * 30 + [bob] * 30 + [outro] * 30, 0.0)
    _frames(tracker, 2, [ALICE] * 30, 2.0)  # another channel, its own entry
    assert tracker.open_entries() == {1: outro, 2: ALICE}
    tracker.tick(t + 1.0)  # a hidden source sends no frames: only time passes
    assert tracker.open_entries() == {1: outro, 2: ALICE}
    tracker.tick(t + 2.5)
    assert tracker.open_entries() == {}
    ends = [r for r in _records(usage) if r["event"] == "end"]
    assert [(r["channel"], r["preset"], r["scene"]) for r in ends] == [
        (1, "alice", "Interview"), (1, "bob", "Interview"), (1, "alice", "Outro"), (2, "alice", "Interview")]
    t = _frames(tracker, 3, [ALICE] * 30, t + 5)
    tracker.close(3)  # a channel closing ends its entry at once
    tracker.close_all()
    assert [r["event"] for r in _records(usage)][-2:] == ["start", "end"]


def test_an_unwritable_log_never_stops_the_stream(home):
    blocker = home / "not-a-folder"
    blocker.write_text("")
    tracker = UsageTracker(UsageLog(blocker / "usage.jsonl"))
    _frames(tracker, 1, [ALICE] * 60, 0.0)
    tracker.close_all()
    assert "cannot be written" in tracker.problem and str(blocker) in tracker.problem


# ------------------------------------------------------------------------------------- the file
def test_the_log_is_private_one_line_per_write_and_bounded(home):
    old = os.umask(0o022)
    try:
        usage = UsageLog(max_bytes=4096)
        tracker = UsageTracker(usage)
        for i in range(40):
            _frames(tracker, 1, [Use(f"p{i}", ALICE.consent, "S")] * 20, i * 10.0)
            tracker.tick(i * 10.0 + 5)
    finally:
        os.umask(old)
    assert usage.path == log_path() == home / "data" / "usage" / "usage.jsonl"
    assert stat.S_IMODE(usage.path.parent.stat().st_mode) == 0o700
    for path in (usage.path, usage.rotated):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert 0 < path.stat().st_size <= 4096
    names = [r["preset"] for r in _records(usage)]
    assert names[-1] == "p39" and "p0" not in names  # the oldest rotated away
    assert sorted(p.name for p in usage.path.parent.iterdir()) == ["usage.jsonl", "usage.jsonl.1"]


def test_two_processes_appending_at_once_never_interleave_a_line(home):
    """Two workers (two OBS instances) share the file; O_APPEND and one os.write per line keep lines whole."""
    script = (
        "import sys\n"
        "from facefusion_obs.worker.usage import UsageLog\n"
        "log = UsageLog()\n"
        "for i in range(400):\n"
        "    log.append({'v': 1, 'event': 'start', 'id': f'{int(sys.argv[1]):08x}{i:08x}',\n"
        "                'start': '2026-12-04T19:30:01Z', 'preset': 'p' * 60, 'consent': {'recorded':\n"
        "                '2026-12-01T10:00:00Z', 'sha256': '0123456789ab'}, 'channel': 1, 'scene': 's' * 250})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(n)], env=env) for n in (1, 2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    lines = list(UsageLog().read())
    assert len(lines) == 800 and all(line.record is not None for line in lines), [
        line.problem for line in lines if line.record is None][:3]


# ------------------------------------------------------------------------------------- the command
def _write_entries(usage: UsageLog) -> None:
    tracker = UsageTracker(usage)
    day = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    for channel, use, start in ((1, ALICE, 0.0), (2, Use("bob", ALICE.consent, "Outro\x1b[31m"), 7200.0)):
        for i in range(90):
            tracker.observe(channel, use, mono=start + i, wall=day + start + i)
        tracker.close(channel)


def test_log_prints_entries_readably_and_raw(home, capsys):
    usage = UsageLog()
    assert main(["log"]) == 0
    assert "no usage recorded yet" in capsys.readouterr().out
    _write_entries(usage)
    assert main(["log"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["start", "(UTC)", "end", "(UTC)"]
    assert out[1].split()[:7] == ["2027-01-15", "08:00:00", "2027-01-15", "08:01:29", "1m29s", "alice", "Interview"]
    assert "2026-12-01T10:00:00Z #0123456789ab" in out[1]
    assert "Outro\\x1b[31m" in out[2] and "\x1b" not in out[2]  # a scene name cannot drive the terminal
    assert main(["log", "--json"]) == 0
    raw = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["event"], r["preset"]) for r in raw] == [("start", "alice"), ("end", "alice"), ("start", "bob"),
                                                        ("end", "bob")]
    assert main(["log", "--since", "2027-01-15T09:00"]) == 0
    assert [line.split()[5] for line in capsys.readouterr().out.splitlines()[1:]] == ["bob"]
    assert main(["log", "--since", "1d"]) == 0  # both ended long ago (in 2027: after today, so kept)
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["log", "--since", "last tuesday"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--since 'last tuesday'" in err and "Traceback" not in err


def test_a_damaged_line_is_reported_with_its_number_and_skipped(home, capsys):
    usage = UsageLog()
    _write_entries(usage)
    with open(usage.path, "ab") as fh:
        fh.write(b'{"v": 1, "event": "start", "id": "cut sho\n')
        fh.write(b"\xff\xfe not text\n")
        fh.write(b'{"v": 1, "event": "end"}\n')
        fh.write(b"x" * 10_000 + b"\n")
    _write_entries(usage)
    assert main(["log"]) == 2
    captured = capsys.readouterr()
    rows = captured.out.splitlines()[1:]
    assert len(rows) == 4  # both good entries, twice
    err = captured.err.splitlines()
    assert [line.split(": ")[1].rsplit(":", 1)[1] for line in err[:4]] == ["5", "6", "7", "8"]
    assert all(f"{usage.path}:" in line and "damaged line skipped" in line for line in err[:4])
    assert "missing field" in err[2] and "longer than 4096 bytes" in err[3]
    assert "4 damaged lines" in err[4] and "Traceback" not in captured.err


def test_records_are_checked_field_by_field():
    good = {"v": 1, "event": "end", "id": "0123456789abcdef", "start": "2026-12-04T19:30:01Z",
            "end": "2026-12-04T19:35:01Z", "preset": "alice", "consent": {"recorded": "2026-12-01T10:00:00Z",
            "sha256": "0123456789ab"}, "channel": 1, "scene": "Interview"}
    assert check_record(dict(good)) == good
    for change, why in (({"end": "2026-12-04T19:00:00Z"}, "before 'start'"), ({"channel": True}, "channel"),
                        ({"consent": {"recorded": "x"}}, "consent"), ({"extra": 1}, "unexpected field"),
                        ({"scene": "s" * 257}, "scene"), ({"v": 2}, "'v'")):
        with pytest.raises(ValueError, match=why):
            check_record({**good, **change})


def test_the_scene_travels_in_configure_validated_and_bounded():
    assert make("configure", channel=1, options={})["type"] == "configure"  # optional: older senders
    assert make("configure", channel=1, options={}, scene="Interview")["scene"] == "Interview"
    for bad in ("s" * 257, 5, None):
        with pytest.raises(ProtocolError, match="scene"):
            make("configure", channel=1, options={}, scene=bad)


# ------------------------------------------------------------------------------------- the worker
def test_the_worker_logs_each_swap_by_scene_and_closes_entries_when_it_ends(home, sample_images_dir, astronaut_rgb,
                                                                           embedded_models, capsys):
    store = PresetStore()
    preset = store.add("tom", [sample_images_dir / "Tom_Hanks_54745.png"], consent=STATEMENT)
    ref = {"recorded": preset.consent["recorded"], "sha256": statement_hash(STATEMENT)}
    bgra = green_frame(astronaut_rgb)
    no_face = bgra.copy()
    no_face[..., :3] = (40, 200, 40)
    usage = UsageLog()
    drive = WorkerDriver(bgra.shape[1], bgra.shape[0]).start()
    try:
        drive.open({"effect": "pipeline", "engine": "mesh", "matting": "off", "preset": "tom"}, scene="Interview")
        until(lambda: swapped_by(drive.feed(bgra), astronaut_rgb) > 10, 60)
        until(lambda: any(r["event"] == "start" for r in _records(usage)), 10, lambda: drive.feed(bgra))
        drive.run_for(bgra, 1.0)
        drive.run_for(no_face, 4.0)  # the face is gone: the entry ends (debounced: 2 s after the last swap)
        records = _records(usage)
        assert [r["event"] for r in records] == ["start", "end"], records
        first = records[1]
        assert (first["preset"], first["scene"], first["channel"], first["consent"]) == ("tom", "Interview", 1, ref)
        assert first["start"] <= first["end"]

        drive.configure({"preset": "tom"}, scene="Outro")  # the OBS side says the scene changed
        until(lambda: len(_records(usage)) == 3, 30, lambda: drive.feed(bgra))
        assert _records(usage)[2]["scene"] == "Outro"
        drive.run_for(bgra, 0.5)
    finally:
        drive.stop()  # the worker exits: the open entry gets its end line
    records = _records(usage)
    assert [r["event"] for r in records] == ["start", "end", "start", "end"]
    assert records[3]["id"] == records[2]["id"] and records[3]["scene"] == "Outro"
    assert stat.S_IMODE(usage.path.stat().st_mode) == 0o600
    assert main(["log"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row.split()[5:7] for row in rows] == [["tom", "Interview"], ["tom", "Outro"]]


def test_a_closed_channel_ends_its_entry(home, sample_images_dir, astronaut_rgb, embedded_models):
    PresetStore().add("tom", [sample_images_dir / "Tom_Hanks_54745.png"], consent=STATEMENT)
    bgra = green_frame(astronaut_rgb)
    usage = UsageLog()
    drive = WorkerDriver(bgra.shape[1], bgra.shape[0]).start()
    try:
        drive.open({"effect": "pipeline", "engine": "mesh", "matting": "off", "preset": "tom"}, scene="Main")
        until(lambda: any(r["event"] == "start" for r in _records(usage)), 60, lambda: drive.feed(bgra))
        drive.close_channel()
        until(lambda: [r["event"] for r in _records(usage)] == ["start", "end"], 1.5)  # before END_AFTER_S
        assert drive.sup.running
    finally:
        drive.stop()
    time.sleep(0.2)
    assert len(_records(usage)) == 2
