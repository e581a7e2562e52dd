"""Streamer safety in real OBS: privacy that fails closed, the panic key, the AI label.

The worker runs the pixel-exact diagnostic effects: ``test-pattern`` (which reports its output as
hiding the face, so it stands for "every face swapped") and ``passthrough`` (which reports nothing
swapped, and whose output *is* the camera picture, so any leak of it is visible exactly).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from oracles import expected_test_pattern
from PIL import Image

from facefusion_obs.bench.obs_instance import ObsInstance, facefusion_filter, image_source

pytestmark = pytest.mark.obs
W, H = 192, 144
KILLS = 8
DOCS = Path(__file__).resolve().parent.parent / "docs"


def _camera() -> np.ndarray:
    """A real photograph (a person), so the README's pictures show what a streamer would see."""
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((W, H), Image.BILINEAR))


def _item(name: str, item_id: int) -> dict:
    return {"name": name, "id": item_id, "visible": True, "locked": False, "rot": 0.0, "pos": {"x": 0.0, "y": 0.0},
            "scale": {"x": 1.0, "y": 1.0}, "align": 5, "bounds_type": 0, "bounds": {"x": 0.0, "y": 0.0}}


def _collection(scenes: dict[str, list[str]], sources: list[dict], script_settings: dict | None = None) -> dict:
    """A scene collection with several scenes (the first is current) and the script loaded."""
    from facefusion_obs.config import PROJECT_ROOT

    scene_sources = [{"id": "scene", "versioned_id": "scene", "name": name,
                      "settings": {"items": [_item(n, i + 1) for i, n in enumerate(items)],
                                   "id_counter": len(items), "custom_size": False}}
                     for name, items in scenes.items()]
    first = next(iter(scenes))
    return {"name": "test", "current_scene": first, "current_program_scene": first,
            "scene_order": [{"name": n} for n in scenes], "sources": [*scene_sources, *sources],
            "modules": {"scripts-tool": [{"path": str(PROJECT_ROOT / "facefusion_obs.py"),
                                          "settings": script_settings or {}}]}}


def _start(root: Path, collection: dict, size: tuple[int, int] = (320, 240)) -> ObsInstance:
    inst = ObsInstance(root, None, sys.executable, size, collection="test", scene=collection["current_scene"])
    (inst.obs_config / "basic" / "scenes" / "test.json").write_text(json.dumps(collection))
    return inst.start()


@pytest.fixture(scope="module")
def obs(tmp_path_factory, request):
    """Two sources with the filter, in two scenes: "Img" (privacy on) in the current one, "Img2"
    (privacy off) in a scene that is not on air."""
    root = tmp_path_factory.mktemp("obs-safety")
    rgb = _camera()
    Image.fromarray(rgb).save(root / "img.png")
    Image.fromarray(rgb[::-1].copy()).save(root / "img2.png")
    Image.fromarray(np.full((H, W, 3), (200, 40, 160), np.uint8)).save(root / "cover.png")
    sources = [image_source("Img", root / "img.png",
                            [facefusion_filter(effect="test-pattern", privacy=True, ai_label=False)]),
               image_source("Img2", root / "img2.png", [facefusion_filter(effect="test-pattern", ai_label=False)])]
    inst = _start(root, _collection({"Scene": ["Img"], "Backstage": ["Img2"]}, sources))
    alpha = np.full((H, W), 255, np.uint8)
    inst.raw = np.dstack([rgb, alpha])
    inst.pattern = expected_test_pattern(np.dstack([rgb[..., ::-1], alpha]))
    inst.pattern2 = expected_test_pattern(np.dstack([rgb[::-1, :, ::-1], alpha]))
    inst.root = root
    inst.wait_for_log("worker running", 60)
    yield inst
    code = inst.stop()
    if not request.session.testsfailed:
        assert code == 0, "OBS shuts down cleanly"


def _shot(obs) -> np.ndarray | None:
    try:
        return obs.ws.screenshot("Img", W, H)
    except RuntimeError:
        return None


def _set(obs, **settings) -> None:
    obs.ws.call("SetSourceFilterSettings", sourceName="Img", filterName="FaceFusion", filterSettings=settings)


def _leaks(obs, shot: np.ndarray) -> bool:
    """The camera picture, or anything close to it (a cover is blurred and dimmed, far from it)."""
    diff = np.abs(shot[..., :3].astype(np.int16) - obs.raw[..., :3].astype(np.int16))
    return bool(np.mean(diff) < 12)


def _until_pattern(obs, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        shot = _shot(obs)
        if shot is not None:
            assert not _leaks(obs, shot), "the camera picture reached the output"
            if np.array_equal(shot, obs.pattern):
                return
        assert time.monotonic() < deadline, f"no output within {timeout} s:\n{obs.log_text()[-2000:]}"
        time.sleep(0.03)


def _watch(obs, seconds: float) -> list[np.ndarray]:
    """Every screenshot for ``seconds``; none may show the camera."""
    shots, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        shot = _shot(obs)
        if shot is not None:
            assert not _leaks(obs, shot), "the camera picture reached the output"
            shots.append(shot)
        time.sleep(0.02)
    return shots


def _is_blurred_cover(obs, shot: np.ndarray) -> bool:
    """Dimmed (darker than the output it blurs) and neither the output nor the camera."""
    return not np.array_equal(shot, obs.pattern) and shot[..., :3].mean() < 0.7 * obs.pattern[..., :3].mean()


def test_privacy_never_shows_the_camera_while_the_worker_is_killed(obs):
    _until_pattern(obs, 60)
    rng = np.random.default_rng(23)
    covers = seen = 0
    for _ in range(KILLS):
        for pid in obs.worker_pids():
            os.kill(pid, signal.SIGKILL)
        shots = _watch(obs, float(rng.uniform(0.1, 0.8)))  # the worker dead, restarting, starting, back
        covers += sum(_is_blurred_cover(obs, s) for s in shots)
        seen += len(shots)
        _until_pattern(obs, 15)  # every screenshot until the output is back is checked too
    print(f"{KILLS} kills: {seen} screenshots while down or restarting, {covers} of them the cover, none the camera")
    assert covers, "the cover was never drawn while the worker was down"


def test_privacy_covers_every_frame_that_is_not_swapped(obs):
    """passthrough outputs the camera itself and says no face was swapped: the gate must cover it."""
    _until_pattern(obs, 30)
    _set(obs, effect="passthrough")
    shots = _watch(obs, 2.0)
    assert shots and _is_blurred_cover(obs, shots[-1])
    _set(obs, effect="test-pattern")
    _until_pattern(obs, 10)


def test_privacy_covers_a_disabled_filter_and_shows_the_chosen_image(obs):
    _until_pattern(obs, 30)
    _set(obs, enabled=False)
    assert _is_blurred_cover(obs, _watch(obs, 1.0)[-1])
    _set(obs, cover_image=str(obs.root / "cover.png"))
    shot = _watch(obs, 1.0)[-1]
    assert np.abs(shot[..., :3].astype(int) - (200, 40, 160)).max() <= 2, "the streamer's cover image"
    _set(obs, enabled=True, cover_image="")
    _until_pattern(obs, 10)


def test_without_privacy_a_dead_worker_passes_the_camera_through(obs):
    """The option, not the worker, decides: off keeps the old pass-through."""
    _until_pattern(obs, 30)
    _set(obs, privacy=False, effect="passthrough")
    deadline = time.monotonic() + 5
    while not ((shot := _shot(obs)) is not None and np.array_equal(shot, obs.raw)):
        assert time.monotonic() < deadline, "pass-through without privacy"
        time.sleep(0.05)
    _set(obs, effect="test-pattern")  # the pattern first: settings apply on OBS's next video tick
    deadline = time.monotonic() + 10
    while not ((shot := _shot(obs)) is not None and np.array_equal(shot, obs.pattern)):
        assert time.monotonic() < deadline, "the pattern again"
        time.sleep(0.05)
    _set(obs, privacy=True)
    time.sleep(0.2)
    _until_pattern(obs, 10)


def test_privacy_holds_while_the_worker_is_frozen_and_restarted(obs):
    """SIGSTOP: the worker stops answering; the supervisor declares it stalled, kills it and starts
    another. Throughout, the output is the last verified picture or the cover, never the camera."""
    _until_pattern(obs, 30)
    (pid,) = obs.worker_pids()
    start = len(obs.log_text())
    os.kill(pid, signal.SIGSTOP)
    try:
        shots = _watch(obs, 1.0)
        assert shots and all(np.array_equal(s, obs.pattern) for s in shots), "the last verified output holds"
        obs.wait_for_log("stalled", 15, after=start)
        _watch(obs, 1.0)
    finally:
        with contextlib.suppress(ProcessLookupError):  # killed by the supervisor by now, normally
            os.kill(pid, signal.SIGCONT)
    _until_pattern(obs, 20)
    assert pid not in obs.worker_pids()


def _covered(obs, shot: np.ndarray, pattern: np.ndarray) -> bool:
    return not np.array_equal(shot, pattern) and shot[..., :3].mean() < 0.7 * pattern[..., :3].mean()


def test_the_panic_key_covers_every_filter_in_every_scene_from_the_next_frame(obs):
    names = obs.ws.call("GetHotkeyList")["hotkeys"]
    for hotkey in ("cover_now", "next_preset", "previous_preset", "toggle_swap", "toggle_matting"):
        assert f"facefusion_obs.{hotkey}" in names, "the new key, and the old ones stay"
    _until_pattern(obs, 30)
    deadline = time.monotonic() + 10
    while not np.array_equal(obs.ws.screenshot("Img2", W, H), obs.pattern2):
        assert time.monotonic() < deadline, "Img2 (privacy off, another scene) shows its output"
        time.sleep(0.05)
    start = len(obs.log_text())
    obs.ws.call("TriggerHotkeyByName", hotkeyName="facefusion_obs.cover_now")
    # OBS's Python scripting runs hotkey callbacks on its own thread, a moment after the request
    # returns: once the script has said it handled the key, the very next frames must be covered
    obs.wait_for_log("hotkey cover_now: cover ON", 5, after=start)
    first = {name: obs.ws.screenshot(name, W, H) for name in ("Img", "Img2")}
    assert _covered(obs, first["Img"], obs.pattern), "privacy on: covered"
    assert _covered(obs, first["Img2"], obs.pattern2), "privacy off, scene not on air: covered too"
    for _ in range(20):
        for name, pattern in (("Img", obs.pattern), ("Img2", obs.pattern2)):
            shot = obs.ws.screenshot(name, W, H)
            assert _covered(obs, shot, pattern) and not _leaks(obs, shot)
    obs.wait_for_log("panic key: press it again to uncover", 5)  # and the status line says why
    start = len(obs.log_text())
    obs.ws.call("TriggerHotkeyByName", hotkeyName="facefusion_obs.cover_now")
    obs.wait_for_log("hotkey cover_now: cover off", 5, after=start)
    _until_pattern(obs, 5)
    deadline = time.monotonic() + 5
    while not np.array_equal(obs.ws.screenshot("Img2", W, H), obs.pattern2):
        assert time.monotonic() < deadline, "the same key uncovers"
        time.sleep(0.05)



# ------------------------------------------------------------------------------------- the AI label
def test_the_ai_label_is_in_the_output_while_a_face_is_swapped(tmp_path, request, astronaut_rgb, embedded_models,
                                                               sample_images_dir):
    """The real mesh pipeline on a photo of a person (another person's face swapped in): badge in the
    chosen corner while swapped, none with the swap off; with privacy on and the swap off, the cover."""
    from facefusion_obs.pipeline.label import DEFAULT_TEXT, PLATE_RGB, render_badge
    from facefusion_obs.presets import PresetStore

    size = 512
    Image.fromarray(astronaut_rgb).save(tmp_path / "face.png")
    face_filter = facefusion_filter(effect="pipeline", engine="mesh", matting="off", preset="david",
                                    ai_label_corner="top-left")
    inst = ObsInstance(tmp_path, None, sys.executable, (size, size), collection="test", scene="Scene")
    PresetStore(inst.home / ".local/share/facefusion-obs/presets").add(
        "david", [sample_images_dir / "t1.jpg"], face_index=1,
        consent="insightface sample photo t1.jpg (bundled test data), test use only")
    collection = _collection({"Scene": ["Face"]}, [image_source("Face", tmp_path / "face.png", [face_filter])])
    (inst.obs_config / "basic" / "scenes" / "test.json").write_text(json.dumps(collection))
    inst.start()
    badge = render_badge(DEFAULT_TEXT, size, size, "top-left", 0.06)
    x0, y0, x1, y1 = badge.box

    def plate_share(shot: np.ndarray) -> float:
        return float(np.all(shot[y0:y1, x0:x1, :3] == PLATE_RGB, axis=2).mean())

    try:
        deadline = time.monotonic() + 90
        while plate_share(shot := inst.ws.screenshot("Face", size, size)) < 0.5:
            assert time.monotonic() < deadline, f"no badge:\n{inst.log_text()[-2000:]}"
            time.sleep(0.2)
        assert np.all(shot[y0:y1, x0:x1, 3][badge.coverage >= 1] == 255)
        assert (shot[y0:y1, x0:x1, :3].min(axis=2) > 200).sum() > 40, "legible white text"
        right = shot[y0:y1, size - x1 : size - x0, :3]
        assert not np.all(right == PLATE_RGB, axis=2).any(), "only in the chosen corner"
        DOCS.mkdir(exist_ok=True)
        Image.fromarray(shot).save(DOCS / "ai_label.png")

        def change(**settings) -> None:
            inst.ws.call("SetSourceFilterSettings", sourceName="Face", filterName="FaceFusion",
                         filterSettings=settings)

        # privacy on, swap off: no face is swapped, so the cover (the last swapped picture, blurred
        # and dimmed) and never the photo itself
        change(privacy=True, swap_enabled=False)
        end, covers = time.monotonic() + 4, []
        while time.monotonic() < end:
            cover = inst.ws.screenshot("Face", size, size)
            face = (slice(80, 180), slice(180, 275))  # the astronaut's face
            diff = np.abs(cover[face][..., :3].astype(np.int16) - astronaut_rgb[face].astype(np.int16)).mean()
            assert diff > 5, "the real face reached the output"  # swapped (a frame before the change) or covered
            covers.append(cover)
            time.sleep(0.1)
        assert covers[-1][..., :3].mean() < 0.7 * shot[..., :3].mean(), "dimmed"
        Image.fromarray(np.hstack([shot, covers[-1]])).save(DOCS / "privacy_cover.png")
        change(privacy=False)
        deadline = time.monotonic() + 20
        while not np.array_equal((shot := inst.ws.screenshot("Face", size, size))[..., :3], astronaut_rgb):
            assert time.monotonic() < deadline, f"swap off: the picture itself, no badge (plate {plate_share(shot)})"
            time.sleep(0.2)
    finally:
        code = inst.stop()
    if not request.session.testsfailed:
        assert code == 0


# ------------------------------------------------------------------------------------- audio sync
OWN_OFFSET_MS = 20  # the streamer's own correction, kept under ours and restored
FRAME_MS = 1000 / 30


def _tone(path: Path) -> None:
    """One second of a 440 Hz sine, 48 kHz mono 16-bit, for an ffmpeg_source to loop."""
    t = np.arange(48000) / 48000
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes((np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes())


def _audio_collection(root: Path, wanted: str) -> dict:
    tone = {"id": "ffmpeg_source", "versioned_id": "ffmpeg_source", "name": "Tone", "sync": OWN_OFFSET_MS * 10**6,
            "settings": {"local_file": str(root / "tone.wav"), "is_local_file": True, "looping": True}}
    img = image_source("Img", root / "img.png", [facefusion_filter(effect="test-pattern", ai_label=False)])
    return _collection({"Scene": ["Img", "Tone"]}, [img, tone], {"audio_sync_source": wanted})


def _offset_ms(inst) -> int:
    return inst.ws.call("GetInputAudioSyncOffset", inputName="Tone")["inputAudioSyncOffset"]


def test_audio_sync_follows_the_latency_and_is_restored(tmp_path, request):
    Image.fromarray(_camera()).save(tmp_path / "img.png")
    _tone(tmp_path / "tone.wav")
    inst = _start(tmp_path / "on", _audio_collection(tmp_path, "Tone"))
    try:
        assert _offset_ms(inst) == OWN_OFFSET_MS
        deadline = time.monotonic() + 60
        while (offset := _offset_ms(inst)) == OWN_OFFSET_MS:
            assert time.monotonic() < deadline, f"the offset never followed:\n{inst.log_text()[-2000:]}"
            time.sleep(0.2)
        after = len(inst.log_text())
        text = inst.wait_for_log("latency p50", 5, after=after)
        latency = float(re.findall(r"latency p50 (\d+)", text)[-1])
        delay = offset - OWN_OFFSET_MS
        frames = delay / FRAME_MS
        print(f"latency p50 {latency:.0f} ms -> audio offset {offset} ms ({frames:.2f} frames over its own)")
        assert abs(frames - round(frames)) < 0.05, "a whole number of frames (ms as obs-websocket rounds them)"
        assert abs(delay - latency) <= FRAME_MS + 1, "within one frame of the measured latency"
        status = inst.wait_for_log("audio sync: 'Tone' offset", 5, after=after)  # the status line shows it
        shown = int(re.findall(r"audio sync: 'Tone' offset (\d+) ms", status)[-1])
        assert abs(shown - offset) <= 1, "obs-websocket truncates to whole ms, the status line rounds"
        time.sleep(2)
        assert _offset_ms(inst) == offset, "steady latency: the offset stays put"
    finally:
        code = inst.stop()
    assert code == 0
    saved = json.loads((inst.obs_config / "basic" / "scenes" / "test.json").read_text())
    tone = next(s for s in saved["sources"] if s["name"] == "Tone")
    print(f"saved on exit: sync {tone['sync'] / 1e6:.0f} ms")
    # OBS saves the collection before scripts unload, so the saved offset is ours: the source's own
    # one stays recorded in the config folder, and the next start puts it back (below). While OBS
    # shuts down the script changes nothing (the collection is saved; OBS's widgets are going).
    assert "OBS is closing; 'Tone' gets its own offset back at the next start" in inst.log_text()
    record = inst.home / ".config" / "facefusion-obs" / "audio_sync.json"
    assert json.loads(record.read_text()) == {"source": "Tone", "offset_ns": OWN_OFFSET_MS * 10**6}

    # turned off (the setting cleared while OBS was closed): the next start gives the source its own
    # offset back, whatever the collection saved, and leaves it alone
    collection = saved
    script = next(m for m in collection["modules"]["scripts-tool"] if m["path"].endswith("facefusion_obs.py"))
    script["settings"]["audio_sync_source"] = ""
    off = ObsInstance(tmp_path / "off", None, sys.executable, (320, 240), collection="test", scene="Scene")
    (off.obs_config / "basic" / "scenes" / "test.json").write_text(json.dumps(collection))
    (off.home / ".config" / "facefusion-obs").mkdir(parents=True)
    (off.home / ".config" / "facefusion-obs" / "audio_sync.json").write_text(record.read_text())  # same user
    off.start()
    try:
        off.wait_for_log("worker running", 60)
        deadline = time.monotonic() + 10
        while _offset_ms(off) != OWN_OFFSET_MS:
            assert time.monotonic() < deadline, f"not restored:\n{off.log_text()[-2000:]}"
            time.sleep(0.2)
        time.sleep(4)  # longer than the hold: nothing takes it over again
        assert _offset_ms(off) == OWN_OFFSET_MS
        assert not (off.home / ".config" / "facefusion-obs" / "audio_sync.json").exists(), "the record is used up"
    finally:
        code = off.stop()
    if not request.session.testsfailed:
        assert code == 0
