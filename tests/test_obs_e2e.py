"""End to end in real OBS Studio (Debian ``obs-studio`` under Xvfb), checked over obs-websocket.

OBS loads ``facefusion_obs.py`` from its scene collection exactly as Tools → Scripts does. The
tests below share one OBS instance and run in order: they walk a filter through its life.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from oracles import expected_test_pattern
from PIL import Image

from facefusion_obs.bench.obs_instance import ObsInstance, facefusion_filter, image_source
from facefusion_obs.ipc import shm

pytestmark = pytest.mark.obs
W, H = 320, 180


def _image(path: Path, width: int, height: int, seed: int) -> np.ndarray:
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return rgb


def _bgra(rgb: np.ndarray) -> np.ndarray:
    return np.dstack([rgb[..., 2], rgb[..., 1], rgb[..., 0], np.full(rgb.shape[:2], 255, np.uint8)])


def _rgba(rgb: np.ndarray) -> np.ndarray:
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])


@pytest.fixture(scope="module")
def obs(tmp_path_factory, request):
    root = tmp_path_factory.mktemp("obs")
    images = {"Img": _image(root / "a.png", W, H, 1), "Img2": _image(root / "b.png", 160, 120, 2),
              "Img2-resized": _image(root / "c.png", 200, 100, 3)}
    sources = [image_source("Img", root / "a.png", [facefusion_filter(effect="test-pattern")]),
               image_source("Img2", root / "b.png", [])]
    inst = ObsInstance(root, sources, None, (640, 360)).start()  # the script finds the worker itself
    inst.images, inst.root = images, root
    inst.wait_for_log("worker running", 60)
    yield inst
    code = inst.stop()
    if not request.session.testsfailed:
        assert code == 0, "OBS shuts down cleanly with the script loaded"


def _until_shot(obs, source: str, expected: np.ndarray, timeout: float = 15.0) -> float:
    """Poll screenshots until one equals ``expected`` exactly; returns the seconds it took."""
    start = time.monotonic()
    h, w = expected.shape[:2]
    while True:
        shot = obs.ws.screenshot(source, w, h)
        if np.array_equal(shot, expected):
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            diff = np.abs(shot.astype(int) - expected.astype(int))
            raise AssertionError(f"{source}: max diff {diff.max()} in {(diff > 0).mean():.1%} of values")
        time.sleep(0.05)


def _one_worker(obs, timeout: float = 20.0) -> int:
    """The pid of the single running worker, waiting out a restart still in progress."""
    deadline = time.monotonic() + timeout
    while len(pids := obs.worker_pids()) != 1:
        assert time.monotonic() < deadline, f"expected one worker, found {pids}"
        time.sleep(0.1)
    return pids[0]


def _our_segments(obs) -> list[str]:
    return [n for n in shm.list_segments() if n.startswith(f"ffobs-{obs.obs.pid}-")]


def test_test_pattern_is_pixel_exact_alpha_included(obs):
    expected = expected_test_pattern(_bgra(obs.images["Img"]))
    assert len(np.unique(expected[..., 3])) == 128  # alpha really varies by position
    _until_shot(obs, "Img", expected)
    assert len(obs.worker_pids()) == 1


def test_filter_added_live_and_resolution_change(obs):
    obs.ws.call("CreateSourceFilter", sourceName="Img2", filterName="FaceFusion",
                filterKind="facefusion_obs_filter", filterSettings={"effect": "test-pattern"})
    _until_shot(obs, "Img2", expected_test_pattern(_bgra(obs.images["Img2"])))
    obs.ws.call("SetInputSettings", inputName="Img2", inputSettings={"file": str(obs.root / "c.png")})
    _until_shot(obs, "Img2", expected_test_pattern(_bgra(obs.images["Img2-resized"])))
    # two instances, one worker
    _until_shot(obs, "Img", expected_test_pattern(_bgra(obs.images["Img"])))
    assert len(obs.worker_pids()) == 1


def test_settings_reach_the_worker_live(obs):
    obs.ws.call("SetSourceFilterSettings", sourceName="Img", filterName="FaceFusion",
                filterSettings={"effect": "passthrough"})
    _until_shot(obs, "Img", _rgba(obs.images["Img"]))
    obs.ws.call("SetSourceFilterSettings", sourceName="Img", filterName="FaceFusion",
                filterSettings={"effect": "test-pattern"})
    _until_shot(obs, "Img", expected_test_pattern(_bgra(obs.images["Img"])))


def _render_rate(obs, seconds: float) -> float:
    a = obs.ws.call("GetStats")
    t0 = time.monotonic()
    time.sleep(seconds)
    b = obs.ws.call("GetStats")
    elapsed = time.monotonic() - t0
    rendered = b["renderTotalFrames"] - a["renderTotalFrames"]
    skipped = b["renderSkippedFrames"] - a["renderSkippedFrames"]
    return (rendered - skipped) / elapsed


def test_obs_keeps_full_frame_rate_while_worker_is_sigstopped(obs):
    before = _render_rate(obs, 1.5)
    _until_shot(obs, "Img", expected_test_pattern(_bgra(obs.images["Img"])), 20)
    pid = _one_worker(obs)
    os.kill(pid, signal.SIGSTOP)
    try:
        frozen = _render_rate(obs, 1.5)  # within the 2 s stall limit: the worker is still "running"
        assert frozen >= 0.9 * before, f"render rate fell from {before:.1f} to {frozen:.1f} fps"
        assert before >= 25
        obs.wait_for_log("stalled for more than 2 s", 10)
        _until_shot(obs, "Img", expected_test_pattern(_bgra(obs.images["Img"])), 20)
        assert obs.worker_pids() != [pid]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def test_kill_9_passes_through_then_recovers(obs):
    _until_shot(obs, "Img", expected_test_pattern(_bgra(obs.images["Img"])), 20)
    pid = _one_worker(obs)
    os.kill(pid, signal.SIGKILL)
    _until_shot(obs, "Img", _rgba(obs.images["Img"]), 5)  # pass-through, untouched
    assert not _our_segments(obs)
    _until_shot(obs, "Img", expected_test_pattern(_bgra(obs.images["Img"])), 20)
    assert obs.worker_pids() and obs.worker_pids() != [pid]


def test_removing_the_filters_leaves_no_worker_and_no_segment(obs):
    for source in ("Img", "Img2"):
        obs.ws.call("RemoveSourceFilter", sourceName=source, filterName="FaceFusion")
    deadline = time.monotonic() + 10
    while (obs.worker_pids() or _our_segments(obs)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert obs.worker_pids() == [] and _our_segments(obs) == []
    _until_shot(obs, "Img", _rgba(obs.images["Img"]))
