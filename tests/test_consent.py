"""Consent (issue 15, item 1): presets record who agreed, when and how; the worker and ``process`` refuse
a preset without it (older presets too) and a photo without ``--consent``; ``presets consent`` adds it."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
from worker_driver import WorkerDriver, green_frame, keyed, swapped_by, until

from facefusion_obs.cli.main import main
from facefusion_obs.config import PROJECT_ROOT
from facefusion_obs.demo.photos import SAMPLE_CONSENT
from facefusion_obs.presets import ConsentMissing, PresetDamaged, PresetError, PresetStore, PresetWatcher
from facefusion_obs.presets.store import META

STATEMENT = "Tom Hanks sample photo from insightface 2.1, test material; no personal consent"


@pytest.fixture
def home(isolated_home, monkeypatch, embedded_models) -> Path:
    monkeypatch.setenv("FACEFUSION_OBS_PRESETS", str(isolated_home / "presets"))
    return isolated_home


@pytest.fixture
def tom(sample_images_dir) -> Path:
    return sample_images_dir / "Tom_Hanks_54745.png"


def _strip_consent(store: PresetStore, name: str) -> None:
    """Make ``name`` what a preset written before consent existed looks like: no ``consent`` field."""
    path = store.folder(name) / META
    meta = json.loads(path.read_text())
    del meta["consent"]
    path.write_text(json.dumps(meta, indent=2))


def _one_line_error(err: str, command: str, *named: str) -> None:
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith(f"facefusion-obs {command}: error: "), err
    for thing in named:
        assert thing in err, (thing, err)


# ------------------------------------------------------------------------------------- the store
def test_add_records_the_statement_and_the_utc_time(home, tom):
    store = PresetStore()
    before = datetime.now(timezone.utc).replace(microsecond=0)
    preset = store.add("tom", [tom], consent=f"  {STATEMENT}  ")
    recorded = datetime.strptime(preset.consent["recorded"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert preset.consent["statement"] == STATEMENT  # stripped
    assert before <= recorded <= datetime.now(timezone.utc)
    on_disk = json.loads((store.folder("tom") / META).read_text())
    assert on_disk["consent"] == preset.consent
    assert store.show("tom")["consent"] == preset.consent


@pytest.mark.parametrize(("statement", "why"), [
    (None, "--consent"), ("yes", "too short"), ("x" * 1001, "above the limit"),
    ("Jane Doe,\nsigned release", "one line"), ("Jane Doe \u202e signed", "one line")])
def test_add_refuses_a_missing_or_meaningless_statement_before_reading_photos(home, tom, statement, why):
    store = PresetStore()
    with pytest.raises(PresetError, match=why):
        store.add("tom", [tom], consent=statement)
    assert store.names() == []


def test_a_malformed_consent_field_is_damage_naming_the_file(home, tom):
    store = PresetStore()
    store.add("tom", [tom], consent=STATEMENT)
    path = store.folder("tom") / META
    meta = json.loads(path.read_text())
    for bad in ({"statement": STATEMENT}, {"statement": "ok", "recorded": "2026-12-04T19:30:00Z"},
                {"statement": STATEMENT, "recorded": "yesterday"}, "I agree"):
        path.write_text(json.dumps({**meta, "consent": bad}))
        with pytest.raises(PresetDamaged, match="consent") as caught:
            store.load("tom")
        assert caught.value.file == str(path)


# --------------------------------------------------------------------------------------- the CLI
def test_presets_add_needs_consent_and_show_prints_it(home, tom, capsys):
    code = main(["presets", "add", "tom", str(tom)])  # stdin is not a terminal under pytest
    _one_line_error(capsys.readouterr().err, "presets", "--consent", "who agreed")
    assert code == 2 and PresetStore().names() == []
    assert main(["presets", "add", "tom", str(tom), "--consent", STATEMENT]) == 0
    assert f"consent: {STATEMENT}" in capsys.readouterr().out
    assert main(["presets", "show", "tom"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["consent"]["statement"] == STATEMENT and shown["consent"]["recorded"].endswith("Z")


def test_presets_add_asks_for_consent_at_a_terminal(home, tom):
    """A real pseudo-terminal as stdin: the prompt appears and the typed statement is stored."""
    controller, terminal = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "facefusion_obs.cli.main", "presets", "add", "typed", str(tom)],
                            stdin=terminal, stdout=terminal, stderr=terminal, env=env)
    os.close(terminal)
    try:
        seen = b""
        deadline = time.monotonic() + 120
        while b"who agreed" not in seen:  # input() writes its prompt to the terminal (stdout or stderr)
            assert time.monotonic() < deadline and proc.poll() is None, seen
            if select.select([controller], [], [], 0.5)[0]:
                seen += os.read(controller, 1024)
        os.write(controller, f"{STATEMENT}\n".encode())
        proc.wait(timeout=120)
        with contextlib.suppress(OSError):  # the terminal's last output (EIO once the child has gone)
            while select.select([controller], [], [], 0.2)[0]:
                chunk = os.read(controller, 4096)
                if not chunk:
                    break
                seen += chunk
    finally:
        os.close(controller)
    assert proc.returncode == 0 and b"saved" in seen, seen.decode(errors="replace")
    assert PresetStore().load("typed").consent["statement"] == STATEMENT


# ------------------------------------------------------------------------------- older presets
def test_an_older_preset_is_shown_listed_refused_and_given_consent_without_reanalysis(home, tom, capsys,
                                                                                   astronaut_rgb):
    store = PresetStore()
    store.add("old", [tom], consent=STATEMENT)
    _strip_consent(store, "old")
    assert store.load("old").consent is None  # still readable: it can be shown and given consent
    assert main(["presets", "show", "old"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["consent"] is None
    assert "records no consent" in captured.err and "facefusion-obs presets consent old" in captured.err
    assert main(["presets", "list"]) == 0
    assert "old  [no consent recorded" in capsys.readouterr().out

    target = home / "target.png"
    cv2.imwrite(str(target), cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2BGR))
    out = home / "out"
    code = main(["process", str(target), str(out), "--engine", "mesh", "--source", "old"])
    _one_line_error(capsys.readouterr().err, "process", "'old' records no consent", "presets consent old")
    assert code == 2 and not out.exists()

    folder = store.folder("old")
    files_before = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != META}
    revision = store.meta("old")["revision"]
    assert main(["presets", "consent", "old", STATEMENT]) == 0
    assert store.load("old").consent["statement"] == STATEMENT
    assert store.meta("old")["revision"] == revision  # the face did not change
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name != META} == files_before  # no re-analysis
    capsys.readouterr()
    assert main(["presets", "consent", "old", "Someone else entirely, 2026-12-04, by e-mail"]) == 2
    _one_line_error(capsys.readouterr().err, "presets", "already records consent", "--replace")
    assert main(["presets", "consent", "old", "Tom, 2026-12-04, by e-mail (renewed)", "--replace"]) == 0
    assert store.load("old").consent["statement"] == "Tom, 2026-12-04, by e-mail (renewed)"

    assert main(["process", str(target), str(out), "--engine", "mesh", "--source", "old"]) == 0
    assert (out / "target.png").is_file()


def test_the_watcher_refuses_an_older_preset_and_follows_when_consent_is_added(home, tom, sample_images_dir):
    store = PresetStore()
    store.add("good", [tom], consent=STATEMENT)
    store.add("old", [sample_images_dir / "t1.jpg"], face_index=0, consent=SAMPLE_CONSENT)
    _strip_consent(store, "old")
    watcher = PresetWatcher("good", store, interval=0.0)
    good = watcher.preset
    watcher.follow("old")
    assert watcher.preset is good and isinstance(watcher.failure, ConsentMissing)
    assert "still swapping to 'good'" in watcher.problem and "presets consent old" in watcher.problem
    store.set_consent("old", SAMPLE_CONSENT)
    assert watcher.poll() is True and watcher.failure is None and watcher.preset.name == "old"


# ------------------------------------------------------------------------------- process --source IMAGE
def test_process_with_a_photo_needs_consent(home, tom, astronaut_rgb, capsys):
    target = home / "target.png"
    cv2.imwrite(str(target), cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2BGR))
    out = home / "out"
    base = ["process", str(target), str(out), "--engine", "mesh", "--source", str(tom)]
    assert main(base) == 2
    _one_line_error(capsys.readouterr().err, "process", str(tom), "is a photo", "--consent")
    assert main([*base, "--consent", "ok"]) == 2
    _one_line_error(capsys.readouterr().err, "process", "too short")
    assert not out.exists()
    assert main(["process", str(target), str(out), "--consent", STATEMENT]) == 2  # nothing to swap
    _one_line_error(capsys.readouterr().err, "process", "--consent goes with --source IMAGE")
    PresetStore().add("tom", [tom], consent=STATEMENT)
    assert main(["process", str(target), str(out), "--engine", "mesh", "--source", "tom", "--consent", STATEMENT]) == 2
    _one_line_error(capsys.readouterr().err, "process", "records its own", "presets consent tom")

    assert main([*base, "--consent", STATEMENT]) == 0
    written = cv2.imread(str(out / "target.png"), cv2.IMREAD_UNCHANGED)
    face = (slice(90, 160), slice(190, 260))
    assert np.abs(written[face][..., 2::-1].astype(int) - astronaut_rgb[face]).mean() > 10  # swapped


# ------------------------------------------------------------------------------- the demo's preset
def test_the_demo_preset_records_a_truthful_statement_and_an_older_one_gets_it(home):
    from facefusion_obs.demo.assets import ensure_demo_preset

    store = PresetStore()
    name = ensure_demo_preset(store)
    assert store.load(name).consent["statement"] == SAMPLE_CONSENT
    assert "no personal consent" in SAMPLE_CONSENT and "sample photos" in SAMPLE_CONSENT
    _strip_consent(store, name)
    assert ensure_demo_preset(store) == name and store.load(name).consent["statement"] == SAMPLE_CONSENT


# ------------------------------------------------------------------------------- the worker (a real process)
def test_worker_refuses_a_preset_without_consent_and_keeps_serving(home, tom, sample_images_dir, astronaut_rgb):
    store = PresetStore()
    store.add("good", [tom], consent=STATEMENT)
    store.add("old", [sample_images_dir / "t1.jpg"], face_index=0, consent=SAMPLE_CONSENT)
    _strip_consent(store, "old")
    bgra = green_frame(astronaut_rgb)
    drive = WorkerDriver(bgra.shape[1], bgra.shape[0]).start()
    try:
        # an older preset first: no swap, but the matting runs and the status says how to add consent
        drive.open({"effect": "pipeline", "engine": "mesh", "matting": "chroma", "preset": "old"}, scene="Main")
        until(lambda: any("'old' records no consent" in e for e in drive.errors()), 60, lambda: drive.feed(bgra))
        error = next(e for e in drive.errors() if "'old' records no consent" in e)
        assert "facefusion-obs presets consent old" in error and "no face swap" in error
        plain = drive.fresh_output(bgra)
        assert keyed(plain) and swapped_by(plain, astronaut_rgb) < 3

        # a preset with consent swaps; switching to the older one keeps it serving
        drive.configure({"preset": "good"})
        until(lambda: swapped_by(drive.feed(bgra), astronaut_rgb) > 10, 60)
        drive.configure({"preset": "old"})
        until(lambda: any("still swapping to 'good'" in e for e in drive.errors()), 30, lambda: drive.feed(bgra))
        kept = drive.fresh_output(bgra)
        assert keyed(kept) and swapped_by(kept, astronaut_rgb) > 10

        # a photo path is refused too (it records no consent); the preset serving stays
        drive.configure({"preset": str(tom)})
        until(lambda: any("is a photo, not a preset" in e for e in drive.errors()), 30, lambda: drive.feed(bgra))
        assert swapped_by(drive.fresh_output(bgra), astronaut_rgb) > 10

        # consent added on disk while the worker runs: followed without another configure
        drive.configure({"preset": "old"})
        assert main(["presets", "consent", "old", SAMPLE_CONSENT]) == 0
        until(lambda: any("'old' loaded and in use" in e for e in drive.errors()), 30, lambda: drive.feed(bgra))
        assert drive.sup.running and drive.sup.restarts == 0
    finally:
        drive.stop()
