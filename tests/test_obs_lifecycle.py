"""Filter churn and scene-collection switches in real OBS: the worker always comes back.

OBS's callbacks only change a count of live filters; one reconcile thread starts and stops the
worker. This OBS runs with ``FACEFUSION_OBS_IDLE_STOP_S=0`` (the worker stops the moment the last
filter goes), so every destroy/create pair below really races a stop against a start.
"""

from __future__ import annotations

import json
import re
import sys
import time

import numpy as np
import pytest
from oracles import expected_test_pattern
from PIL import Image

from facefusion_obs.bench.obs_instance import ObsInstance, facefusion_filter, image_source
from facefusion_obs.config import FILTER_ID

pytestmark = pytest.mark.obs
W, H = 160, 96
CHURN_RUNS = 20
SERVE_WITHIN_S = 3.0


@pytest.fixture(scope="module")
def obs(tmp_path_factory, request):
    root = tmp_path_factory.mktemp("obs-lifecycle")
    rgb = np.random.default_rng(11).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "img.png")
    sources = [image_source("Img", root / "img.png", [facefusion_filter(effect="test-pattern")])]
    inst = ObsInstance(root, sources, sys.executable, (320, 180), env={"FACEFUSION_OBS_IDLE_STOP_S": "0"})
    scenes_dir = inst.obs_config / "basic" / "scenes"
    other = json.loads((scenes_dir / "test.json").read_text())
    other["name"] = "other"
    (scenes_dir / "other.json").write_text(json.dumps(other))
    inst.start()
    inst.expected = expected_test_pattern(np.dstack([rgb[..., ::-1], np.full((H, W), 255, np.uint8)]))
    inst.wait_for_log("worker running", 60)
    yield inst
    code = inst.stop()
    if not request.session.testsfailed:
        assert code == 0, "OBS shuts down cleanly"


def _serves_within(obs, timeout: float) -> float:
    """Seconds until the source shows the worker's test pattern (pixel-exact)."""
    start = time.monotonic()
    while True:
        try:
            shot = obs.ws.screenshot("Img", W, H)
        except RuntimeError:  # the source is being re-created (collection switch)
            shot = None
        if shot is not None and np.array_equal(shot, obs.expected):
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"no worker output {timeout} s after the change; "
                                 f"log tail:\n{obs.log_text()[-2000:]}")
        time.sleep(0.05)


def test_removing_and_re_adding_the_only_filter(obs):
    _serves_within(obs, 30)
    rng = np.random.default_rng(3)
    waits = []
    for _ in range(CHURN_RUNS):
        obs.ws.call("RemoveSourceFilter", sourceName="Img", filterName="FaceFusion")
        time.sleep(float(rng.uniform(0, 0.05)))
        obs.ws.call("CreateSourceFilter", sourceName="Img", filterName="FaceFusion", filterKind=FILTER_ID,
                    filterSettings={"effect": "test-pattern"})
        waits.append(_serves_within(obs, SERVE_WITHIN_S))
    print(f"served again after p50 {np.median(waits):.2f} s, max {max(waits):.2f} s over {CHURN_RUNS} runs")


def test_switching_scene_collections_back_and_forth(obs):
    for name in ("other", "test") * 4:
        obs.ws.call("SetCurrentSceneCollection", sceneCollectionName=name)
        deadline = time.monotonic() + 20
        while obs.ws.call("GetSceneCollectionList")["currentSceneCollectionName"] != name:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        _serves_within(obs, SERVE_WITHIN_S)
    assert len(obs.worker_pids()) <= 1


def test_obs_callbacks_return_in_well_under_10_ms(obs):
    """The OBS side logs how long OBS's threads spent in each callback; none waits on the worker."""
    line = obs.wait_for_log("callback time: create", 10)
    last = [ln for ln in line.splitlines() if "callback time: create" in ln][-1]
    worst = {m[0]: float(m[1]) for m in re.findall(r"(\w+) max ([\d.]+) mean", last)}
    print(last)
    assert {"create", "destroy"} <= set(worst), last
    for callback in ("create", "destroy", "update", "get_properties"):
        if callback not in worst:
            continue
        # the figure in the README comes from this line; the bound here only catches a blocking wait
        assert worst[callback] < 50, f"{callback} took {worst[callback]} ms: {last}"

