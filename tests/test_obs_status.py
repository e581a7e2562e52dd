"""The OBS side's error log: a callback that fails every frame is logged once, then counted.

``obs/status.py`` is standard library only, so it runs here as it runs inside OBS; the real-OBS
tests (test_obs_lifecycle.py) read the callback-time line it writes.
"""

from __future__ import annotations

from facefusion_obs.obs import status


def _fail(message: str) -> BaseException:
    try:
        raise ValueError(message)
    except ValueError as exc:
        return exc


def test_a_failure_every_frame_is_logged_once_then_counted(capsys, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(status.time, "monotonic", lambda: clock[0])
    errors = status.ErrorLog(summary_every_s=60)
    for _ in range(300):  # ten seconds of a render failing at 30 fps
        errors.report("video_render", _fail("bad texture"))
        clock[0] += 1 / 30
    lines = capsys.readouterr().out
    assert lines.count("video_render failed") == 1 and "Traceback" in lines and "bad texture" in lines
    clock[0] += 60  # a minute on: one summary line with the count since the last line
    errors.report("video_render", _fail("bad texture"))
    summary = capsys.readouterr().out
    assert "failed 300 more times (301 in all)" in summary and "Traceback" not in summary
    errors.report("video_render", _fail("another problem"))  # a distinct error is logged in full
    assert "Traceback" in capsys.readouterr().out
    assert errors.count("video_render") == 302


def test_the_table_of_distinct_errors_stays_bounded(capsys):
    errors = status.ErrorLog()
    for i in range(1000):  # a message with a counter in it never repeats
        errors.report("update", _fail(f"frame {i}"))
    capsys.readouterr()
    assert len(errors._seen) <= 256


def test_callback_timings_are_summarised_in_one_line():
    timings = {"create": status.CallTiming(), "destroy": status.CallTiming()}
    for ms in (0.2, 0.4):
        timings["create"].add(ms)
    line = status.timing_summary(timings, ("create", "destroy", "update"))
    assert line == "callback time: create max 0.40 mean 0.30 ms (n=2)"
