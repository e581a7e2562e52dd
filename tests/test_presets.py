"""Face presets on disk: real photos in, JSON/PNG/npz out (no pickle), atomic revisions, reloads."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from facefusion_obs.demo.photos import SAMPLE_CONSENT
from facefusion_obs.presets import PresetError, PresetStore, PresetWatcher, resolve_source, validate_name


@pytest.fixture
def store(tmp_path, embedded_models):
    return PresetStore(tmp_path / "presets")


@pytest.fixture
def astronaut_png(tmp_path, astronaut_rgb):
    path = tmp_path / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2BGR))
    return path


def test_preset_round_trips_through_disk(store, astronaut_png, sample_images_dir):
    made = store.add("Astro 1", [astronaut_png, sample_images_dir / "Tom_Hanks_54745.png"], consent=SAMPLE_CONSENT)
    assert store.names() == ["Astro 1"]
    loaded = store.load("Astro 1")
    assert np.array_equal(loaded.texture, made.texture)
    assert np.allclose(loaded.texture_points, made.texture_points)
    assert loaded.landmarks.shape == (2, 468, 3)
    info = store.show("Astro 1")
    assert [s["original"] for s in info["sources"]] == ["astronaut.png", "Tom_Hanks_54745.png"]
    thumb = cv2.imread(info["thumbnail"])
    assert thumb.shape == (128, 128, 3)
    folder = store.folder("Astro 1")
    assert not list(folder.glob("*.pkl")) and not list(folder.glob("*.pickle"))
    with np.load(folder / loaded.meta["face_data"], allow_pickle=False) as data:
        assert set(data.files) == {"landmarks", "texture_points"}
    assert [im.shape[2] for im in loaded.images()] == [3, 3]
    store.remove("Astro 1")
    assert store.names() == []
    with pytest.raises(PresetError, match="does not exist"):
        store.load("Astro 1")


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "a\\b", ".hidden", "con", "LPT1.txt", "x" * 65,
                                 "trailing ", "dot.", "nul", None, 3, "x\n", "x\r", "a\tb", "face/.."])
def test_unsafe_names_are_refused(bad):
    with pytest.raises(PresetError, match="invalid preset name"):
        validate_name(bad)


def test_good_names_are_accepted():
    for good in ("a", "Streamer Face", "face_2.v3", "x" * 64):
        assert validate_name(good) == good


def test_image_without_a_face_or_with_several_gives_a_clear_error(store, tmp_path, sample_images_dir):
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((300, 400, 3), 128, np.uint8))
    with pytest.raises(PresetError, match=r"no face found in .*wall\.png"):
        store.add("wall", [blank], consent=SAMPLE_CONSENT)
    with pytest.raises(PresetError, match=r"t1\.jpg' shows \d faces; choose one with --face"):
        store.add("group", [sample_images_dir / "t1.jpg"], consent=SAMPLE_CONSENT)
    with pytest.raises(PresetError, match="does not exist"):
        store.add("ghost", [tmp_path / "missing.jpg"], consent=SAMPLE_CONSENT)
    assert store.names() == []
    assert store.add("group", [sample_images_dir / "t1.jpg"], face_index=0, consent=SAMPLE_CONSENT).revision == 1


def test_replace_is_atomic_revisioned_and_watched(store, astronaut_png, sample_images_dir):
    store.add("me", [astronaut_png], consent=SAMPLE_CONSENT)
    watcher = PresetWatcher("me", store, interval=0.0)
    first = watcher.preset
    with pytest.raises(PresetError, match="already exists"):
        store.add("me", [astronaut_png], consent=SAMPLE_CONSENT)
    store.add("me", [sample_images_dir / "Tom_Hanks_54745.png"], replace=True, consent=SAMPLE_CONSENT)
    meta = json.loads((store.folder("me") / "preset.json").read_text())
    assert meta["revision"] == 2
    files = {p.name for p in store.folder("me").iterdir()}
    assert not any(".r1." in f for f in files)  # the old revision's files are gone
    assert watcher.poll() is True and watcher.preset.revision == 2
    assert not np.array_equal(watcher.preset.texture, first.texture)
    assert watcher.poll() is False


def test_derived_arrays_are_cached_in_the_preset(store, astronaut_png):
    preset = store.add("me", [astronaut_png], consent=SAMPLE_CONSENT)
    calls = []

    def embed(p):
        calls.append(p.name)
        return {"embedding": np.arange(512, dtype=np.float32)}

    first = preset.cached_arrays("arcface_w600k_r50", embed)
    again = store.load("me").cached_arrays("arcface_w600k_r50", embed)
    assert calls == ["me"] and np.array_equal(first["embedding"], again["embedding"])
    assert "arcface_w600k_r50" in store.show("me")["derived"]
    with pytest.raises(PresetError, match="derived key"):
        store.put_derived("me", "../x", {"a": np.zeros(1)})
    with pytest.raises(PresetError, match="pickle"):
        store.put_derived("me", "objs", {"a": np.array([object()], dtype=object)})


def test_resolve_source_takes_a_name_or_an_image_path(store, astronaut_png):
    store.add("me", [astronaut_png], consent=SAMPLE_CONSENT)
    assert resolve_source("me", store).name == "me"
    transient = resolve_source(str(astronaut_png), store)
    assert transient.folder is None and transient.texture.shape == (384, 384, 3)
    assert resolve_source("", store) is None
    with pytest.raises(PresetError, match="source image"):
        resolve_source("/no/such/face.png", store)


def test_presets_cli(store, astronaut_png, monkeypatch, capsys):
    from facefusion_obs.cli.main import main

    monkeypatch.setenv("FACEFUSION_OBS_PRESETS", str(store.root))
    assert main(["presets", "add", "cli", str(astronaut_png), "--consent", SAMPLE_CONSENT]) == 0
    assert main(["presets", "list"]) == 0
    assert "cli" in capsys.readouterr().out
    assert main(["presets", "show", "cli"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "cli"
    assert main(["presets", "add", "../bad", str(astronaut_png)]) == 2
    assert "invalid preset name" in capsys.readouterr().err
    for name in ("x\n", "cli\n"):  # matched in full: a trailing newline is no way around the check
        assert main(["presets", "add", name, str(astronaut_png)]) == 2
        assert main(["presets", "show", name]) == 2
        assert capsys.readouterr().err.count("invalid preset name") == 2
    assert main(["presets", "remove", "cli"]) == 0
