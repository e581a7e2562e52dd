"""``facefusion-obs demo``: the generated clip, the scene collection, the headless render, and the demo
scene in real OBS Studio. Everything is real: the MediaPipe models, insightface's sample photos, the
mesh swap and chroma matting, and Debian's OBS under Xvfb."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from facefusion_obs.cli.main import main
from facefusion_obs.config import FILTER_ID, PROJECT_ROOT
from facefusion_obs.demo.assets import PRESET_NAME, filter_options, prepare_assets
from facefusion_obs.demo.clip import ClipRenderer, virtual_background
from facefusion_obs.demo.collection import (
    BACKGROUND_SOURCE,
    COLLECTION_FILE,
    COLLECTION_NAME,
    MEDIA_SOURCE,
    SCENE_NAME,
    CollectionError,
    write_collection,
)
from facefusion_obs.demo.photos import SAMPLE_CONSENT
from facefusion_obs.demo.screenshots import screen_fraction, start_demo_obs, wait_for_keyed_scene
from facefusion_obs.pipeline.label import render_badge
from facefusion_obs.presets import PresetError, PresetStore


@pytest.fixture
def demo_home(tmp_path, monkeypatch, embedded_models, sample_images_dir):
    """Fresh config/data folders (the sample-photo cache stays shared) and no display."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("FACEFUSION_OBS_PRESETS", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def renderer(model_pool, sample_images_dir):
    return ClipRenderer(model_pool)


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image[..., [2, 1, 0, 3]] if image.shape[2] == 4 else image[..., ::-1]


def test_clip_has_the_person_on_an_uneven_green_screen(renderer):
    rgb, alpha = renderer.frame(0)
    assert rgb.shape == (540, 960, 3) and alpha.shape == (540, 960)
    assert alpha[:50, :50].max() == 0 and alpha[-20:, 470:490].min() > 0.99  # screen corner, solid body
    screen = rgb[alpha == 0].astype(int)
    assert (screen[:, 1] > screen[:, 0] + 60).mean() > 0.99  # really green
    assert np.ptp(rgb[:100, :, 1].mean(0)) > 15  # unevenly lit across the width
    moved = np.abs(renderer.frame(30)[1] - alpha).mean()
    assert moved > 0.01  # gentle motion between frames


def test_cli_renders_the_demo_to_files_without_a_display(demo_home, capsys, renderer):
    out = demo_home / "render"
    assert main(["demo", "--frames", "5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "no display" in printed and str((out / "contact_sheet.png").resolve()) in printed

    frames = sorted((out / "frames").glob("*.png"))
    assert [p.name for p in frames] == [f"{i:04d}.png" for i in range(5)]
    assert (out / "demo.mp4").stat().st_size > 0 and (out / "contact_sheet.png").is_file()

    data = demo_home / "data" / "facefusion-obs"
    clip = cv2.VideoCapture(str(data / "demo" / "clip.mp4"))
    ok, first = clip.read()
    clip.release()
    assert ok and first.shape == (540, 960, 3)
    camera = first[..., ::-1].astype(int)
    background = _read_rgb(data / "demo" / "background.png").astype(int)
    assert np.array_equal(background, virtual_background())
    shown = _read_rgb(frames[0]).astype(int)
    rgba = _read_rgb(out / "filter_rgba_0000.png")

    _, truth = renderer.frame(0)
    # the "AI face swap" badge sits over the screen in its corner, opaque, while the face is swapped
    options = filter_options()
    badge = render_badge(options["ai_label_text"], 960, 540, options["ai_label_corner"], options["ai_label_size"])
    assert badge is not None
    x0, y0, x1, y1 = badge.box
    assert (rgba[y0:y1, x0:x1, 3][badge.coverage == 1] == 255).all()
    outside = np.ones(truth.shape, bool)
    outside[y0:y1, x0:x1] = False
    screen, body = (truth == 0) & outside, truth > 0.999
    assert np.abs(rgba[..., 3][screen]).mean() < 2 and rgba[..., 3][body].mean() > 250
    # where the screen was, the background shows; where he stands, he does
    assert np.abs(shown[screen] - background[screen]).mean() < 3
    assert np.abs(shown[body] - background[body]).mean() > 30
    assert screen_fraction(shown.astype(np.uint8), (slice(None), slice(None))) < 0.005
    # the face was swapped: the face region changed, the shirt did not
    face, shirt = (slice(130, 260), slice(420, 560)), (slice(400, 520), slice(360, 460))
    assert np.abs(shown[face] - camera[face]).mean() > 8
    assert np.abs(shown[shirt] - camera[shirt]).mean() < 8

    assert PresetStore().names() == [PRESET_NAME]
    collection_path = demo_home / "config" / "obs-studio" / "basic" / "scenes" / COLLECTION_FILE
    collection = json.loads(collection_path.read_text())
    assert collection["name"] == COLLECTION_NAME and collection["current_scene"] == SCENE_NAME
    sources = {s["name"]: s for s in collection["sources"]}
    assert [i["name"] for i in sources[SCENE_NAME]["settings"]["items"]] == [BACKGROUND_SOURCE, MEDIA_SOURCE]
    assert Path(sources[BACKGROUND_SOURCE]["settings"]["file"]).is_file()
    media = sources[MEDIA_SOURCE]
    assert media["id"] == "ffmpeg_source" and media["settings"]["looping"] is True
    assert Path(media["settings"]["local_file"]) == data / "demo" / "clip.mp4"
    (flt,) = media["filters"]
    assert flt["id"] == FILTER_ID and flt["settings"]["preset"] == PRESET_NAME
    assert flt["settings"]["engine"] == "mesh" and flt["settings"]["matting"] == "chroma"
    (script,) = collection["modules"]["scripts-tool"]
    assert Path(script["path"]) == PROJECT_ROOT / "facefusion_obs.py" and Path(script["path"]).is_file()

    # a second run reuses its own preset and collection
    assert main(["demo", "--frames", "2", "--no-launch", "--out", str(out)]) == 0
    assert PresetStore().meta(PRESET_NAME)["revision"] == 1


def test_demo_never_replaces_a_users_preset_or_collection(demo_home, sample_images_dir, renderer, capsys):
    store = PresetStore()
    store.add(PRESET_NAME, [sample_images_dir / "t1.jpg"], face_index=0, consent=SAMPLE_CONSENT)
    assert main(["demo", "--frames", "2", "--out", str(demo_home / "r")]) == 2
    err = capsys.readouterr().err
    assert "preset named 'demo' already exists and is not the demo's" in err and "--preset" in err
    assert store.meta(PRESET_NAME)["sources"][0]["original"] == "t1.jpg"

    assets = prepare_assets(2, store=store, preset="demo-face", renderer=renderer)
    config = demo_home / "obs"
    theirs = config / "basic" / "scenes" / COLLECTION_FILE
    theirs.parent.mkdir(parents=True)
    theirs.write_text(json.dumps({"name": "My show"}))
    with pytest.raises(CollectionError, match="'My show'"):
        write_collection(assets, config)
    assert json.loads(theirs.read_text()) == {"name": "My show"}
    with pytest.raises(PresetError):
        prepare_assets(1, store=store, renderer=renderer)


def test_bad_frame_count_is_a_clear_error(demo_home, capsys):
    assert main(["demo", "--frames", "0"]) == 2
    assert "--frames must be at least 1, got 0" in capsys.readouterr().err


@pytest.mark.obs
def test_demo_scene_renders_in_real_obs_with_the_filter(tmp_path, renderer, request):
    """The collection the demo writes, opened by real OBS: the filter keys the clip, and the virtual
    background shows where the green screen was. The worker runs on this interpreter."""
    inst, assets = start_demo_obs(tmp_path, frames=30, python=sys.executable, renderer=renderer)
    try:
        filters = inst.ws.call("GetSourceFilterList", sourceName=MEDIA_SOURCE)["filters"]
        assert [(f["filterKind"], f["filterEnabled"]) for f in filters] == [(FILTER_ID, True)]
        inst.wait_for_log("worker running", 90)
        shot = wait_for_keyed_scene(inst)
        background = _read_rgb(assets.background).astype(int)
        corner = (slice(0, 100), slice(0, 160))
        assert np.abs(shot[corner].astype(int) - background[corner]).mean() < 4
        assert screen_fraction(shot, (slice(None), slice(None))) < 0.01
        body = (slice(430, 540), slice(430, 530))  # his shirt, whatever the sway
        assert np.abs(shot[body].astype(int) - background[body]).mean() > 30
        # OBS 29.0.2 itself sometimes segfaults in Qt on shutdown while a looping media source exists
        # (reproduced with no script and no filter loaded: exit -11 in about 1 run of 12). Removing the
        # clip first keeps the clean-exit check about us; it also destroys our filter while live.
        inst.ws.call("RemoveInput", inputName=MEDIA_SOURCE)
        deadline = time.monotonic() + 10
        while inst.worker_pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert inst.worker_pids() == [], "the worker stops with its last filter"
    finally:
        code = inst.stop()
    if not request.session.testsfailed:
        assert code == 0
