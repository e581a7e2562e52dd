"""Tracking that keeps up (flow-predicted crops, motion-compensated smoothing), the per-face consistency
gate (never a torn or stale face), and one contract for the CLI and the filter (frame time, every
option a flag, several faces), on real photos moved by known similarities (``bench/motion.py``) with
the real MediaPipe models."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from facefusion_obs.bench import motion
from facefusion_obs.cli import process as process_cli
from facefusion_obs.cli.main import main
from facefusion_obs.config import OPTIONS, validate_options
from facefusion_obs.faces import OneEuroFilter
from facefusion_obs.faces.smoothing import carry
from facefusion_obs.pipeline.frame import FramePipeline
from facefusion_obs.swap.mesh import MeshSwapper


@pytest.fixture(scope="module")
def photos(model_pool):
    return motion.face_photos(model_pool)


@pytest.fixture
def preset(tmp_path, monkeypatch, embedded_models):
    from facefusion_obs.bench.faces import astronaut_preset

    monkeypatch.setenv("FACEFUSION_OBS_PRESETS", str(tmp_path / "presets"))
    return astronaut_preset(tmp_path)


def _error(drawn: np.ndarray, truth: np.ndarray) -> float:
    """Mean landmark distance as a share of the true face size."""
    return float(np.linalg.norm(drawn[:, :2] - truth, axis=1).mean()) / float(max(truth.max(0) - truth.min(0)))


def _drawn(swapper: MeshSwapper, truth: np.ndarray) -> np.ndarray | None:
    """The landmarks the swap drew for the face at ``truth`` (None when that face was not swapped)."""
    for face, result in zip(swapper.faces, swapper.last, strict=True):
        if result.swapped and _error(face.landmarks, truth) < 0.5:
            return face.landmarks
    return None


def _save_folder(folder: Path, frames: list[np.ndarray]) -> None:
    folder.mkdir()
    for i, rgb in enumerate(frames):
        assert cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _load_rgba(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)


def _face_changed(before: np.ndarray, after: np.ndarray, truth: np.ndarray) -> float:
    """Mean absolute change (grey levels) inside the true face's hull."""
    mask = np.zeros(before.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(truth).astype(np.int32)), 1)
    diff = np.abs(before.astype(np.int16) - after[..., :3].astype(np.int16)).mean(-1)
    return float(diff[mask > 0].mean())


# ------------------------------------------------------------------------------------ keeping up
@pytest.mark.parametrize("seed", [11, 12])
def test_fast_head_is_swapped_on_its_current_pose(photos, preset, model_pool, seed):
    """35-45 px a frame at 720p with roll ±15° and scale ±15%: every frame swapped, every drawn face
    within 3% of the face size of the true pose (the seed's tracker: 7-22% mean on these clips)."""
    seq = motion.make_sequence("fast", photos, seed, frames=30)
    assert seq.speed >= 30
    swapper = MeshSwapper(validate_options({"preset": preset}), model_pool)
    errors = []
    for i, frame in enumerate(seq.frames):
        swapper.process(frame, i / seq.fps)
        drawn = _drawn(swapper, seq.truth[i][0])
        if drawn is not None:
            errors.append(_error(drawn, seq.truth[i][0]))
    assert len(errors) >= 0.95 * len(seq.frames)
    assert max(errors) <= 0.03, f"worst frame {max(errors):.1%}, mean {np.mean(errors):.1%}"
    assert swapper.tracker.stats["flow_runs"] >= len(seq.frames) - 2  # the crops were predicted by flow


def test_motion_compensated_smoothing_does_not_lag_and_still_calms_noise():
    """The filter's state is carried by the flow's motion: a 30 px-a-frame slide with roll is followed
    to within a fraction of a pixel, where plain One-Euro trails; noise on a still point is calmed."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 200, (40, 2))
    plain, carried = OneEuroFilter(), OneEuroFilter()
    lag_plain, lag_carried = [], []
    pose = np.eye(3)
    step = cv2.getRotationMatrix2D((100.0, 100.0), 1.5, 1.01)
    step[0, 2] += 30.0
    step3 = np.vstack([step, [0, 0, 1]])
    for i in range(30):
        pose = step3 @ pose
        true = carry(base, pose[:2])
        noisy = true + rng.normal(0, 0.3, true.shape)
        lag_plain.append(np.abs(plain.filter(noisy, i / 30, 200.0) - true).max())
        lag_carried.append(np.abs(carried.filter(noisy, i / 30, 200.0, step if i else None) - true).max())
    assert max(lag_carried[5:]) < 1.5 and max(lag_carried[5:]) < max(lag_plain[5:])
    still = OneEuroFilter()
    out = [still.filter(base + rng.normal(0, 0.3, base.shape), i / 30, 200.0) for i in range(90)]
    assert np.std(np.array(out[45:]), axis=0).mean() < 0.5 * 0.3


# ------------------------------------------------------------------------------------ never torn
def _astronaut_frame(astronaut_rgb: np.ndarray, x: int = 384) -> np.ndarray:
    frame = np.full((720, 1280, 3), 90, np.uint8)
    frame[104:616, x : x + 512] = astronaut_rgb
    return frame


def test_face_under_a_grey_block_is_left_untouched_and_swapped_right_after(astronaut_rgb, preset, model_pool):
    """A hand-sized grey block over the face for three frames: those frames pass through (no stale
    face pasted on the block, the block's pixels are the input's), and the first clear frame is swapped."""
    frame = _astronaut_frame(astronaut_rgb)
    covered = frame.copy()
    covered[150:330, 540:740] = 128  # over the astronaut's face (box ~ x 560-680, y 165-300)
    swapper = MeshSwapper(validate_options({"preset": preset}), model_pool)
    seq = [frame] * 5 + [covered] * 3 + [frame] * 3
    verdicts = []
    for i, f in enumerate(seq):
        out, mask = swapper.process(f, i / 30)
        verdicts.append(mask is not None)
        if 5 <= i <= 7:
            assert np.array_equal(out[150:330, 540:740], f[150:330, 540:740]), f"frame {i}: drawn on the block"
            assert mask is None or mask[150:330, 540:740].max() == 0
    assert verdicts[:5] == [True] * 5
    assert verdicts[8] and verdicts[9] and verdicts[10], "the face is swapped again on its first clear frame"


def test_a_face_that_jumps_where_no_flow_takes_it_is_not_drawn_misplaced(astronaut_rgb, preset, model_pool):
    """The picture cuts to the face 380 px away: the old pose is never drawn (neither where the face
    was nor carried), and the face is swapped at its new place within two frames."""
    here, there = _astronaut_frame(astronaut_rgb, 200), _astronaut_frame(astronaut_rgb, 580)
    swapper = MeshSwapper(validate_options({"preset": preset}), model_pool)
    for i in range(4):
        swapper.process(here, i / 30)
    assert swapper.last and swapper.last[0].swapped
    old = swapper.faces[0].landmarks[:, :2].copy()
    swapped_at = []
    for i in range(4, 8):
        out, mask = swapper.process(there, i / 30)
        for face, result in zip(swapper.faces, swapper.last, strict=True):
            if result.swapped:
                shift = np.linalg.norm(face.landmarks[:, :2].mean(0) - old.mean(0))
                assert abs(shift - 380) < 30, f"frame {i}: a face drawn {shift:.0f} px from the old pose"
                swapped_at.append(i)
        if mask is not None:  # nothing where the face was: those pixels are the background
            x0, y0 = np.floor(old.min(0)).astype(int)
            x1, y1 = np.ceil(old.max(0)).astype(int)
            assert np.array_equal(out[y0:y1, x0 : min(x1, 580)], there[y0:y1, x0 : min(x1, 580)])
    assert swapped_at and swapped_at[0] <= 5


def test_occluder_passing_over_the_face_is_never_pasted_over_and_face_returns(photos, preset, model_pool):
    """A hand-sized block crosses the face (three seeds): no frame with most of the face covered is
    swapped, every clear frame right after the block has left is swapped, and nothing drawn is torn."""
    for seed in (21, 22, 23):
        seq = motion.make_sequence("occluder", photos, seed, frames=36)
        swapper = MeshSwapper(validate_options({"preset": preset}), model_pool)
        was_covered = False
        for i, frame in enumerate(seq.frames):
            swapper.process(frame, i / seq.fps)
            truth, cover = seq.truth[i][0], seq.covered[i][0]
            drawn = _drawn(swapper, truth)
            if cover > 0.7:
                assert drawn is None, f"seed {seed} frame {i}: swapped with {cover:.0%} of the face covered"
            if drawn is not None:
                assert _error(drawn, truth) < 0.08, f"seed {seed} frame {i}: torn ({_error(drawn, truth):.1%})"
            if cover > 0.5:
                was_covered = True
            elif was_covered and cover == 0.0:  # the first clear frame after the block
                was_covered = False
                assert drawn is not None, f"seed {seed} frame {i}: not swapped right after the occluder"


# ------------------------------------------------------------------------ one contract: CLI = filter
def test_every_filter_option_is_a_process_flag_or_said_why_not() -> None:
    flagged = {o.key for o in process_cli.OPTION_FLAGS}
    for option in OPTIONS:
        assert (option.key in flagged) != (option.key in process_cli.OWN_FLAGS or option.key in process_cli.OBS_ONLY)
    assert "max_faces" in flagged
    parser_args = process_cli_args(["in", "out", "--max-faces", "3", "--matting", "person"])
    assert process_cli.build_options(parser_args)["max_faces"] == 3


def test_bad_option_values_and_fps_are_one_line_errors(tmp_path, capsys) -> None:
    rgb = np.full((72, 128, 3), 120, np.uint8)
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.png"), rgb)
    for args, message in (
        (["--max-faces", "9"], "'max_faces': 9 is outside 1..8"),
        (["--max-faces", "1.5"], "'max_faces': invalid value 1.5"),
        (["--fps", "0"], "--fps '0' is outside 0..1000"),
        (["--fps", "x"], "--fps 'x' is not a number"),
    ):
        assert main(["process", str(tmp_path / "in"), str(tmp_path / "out"), *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (128, 72))
    writer.write(rgb)
    writer.release()
    assert main(["process", str(video), str(tmp_path / "out"), "--fps", "25"]) == 2
    assert "carries its own timestamps" in capsys.readouterr().err


def test_same_input_gives_the_same_bytes_on_any_machine_speed(photos, preset, tmp_path, model_pool) -> None:
    """Two process runs of one moving clip write identical PNGs, and the pipeline fed the same frames
    with a slowdown between them (as on a slower machine) gives the same bytes again: tracking and
    smoothing run on frame time (index / --fps), not the wall clock."""
    seq = motion.make_sequence("fast", photos, 31, frames=6)
    _save_folder(tmp_path / "in", seq.frames)
    args = ["--engine", "mesh", "--source", preset, "--matting", "person", "--fps", "25"]
    for run in ("a", "b"):
        assert main(["process", str(tmp_path / "in"), str(tmp_path / run), *args]) == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(names) == 6
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    pipeline = FramePipeline({"engine": "mesh", "preset": preset, "matting": "person"}, model_pool)
    try:
        for i, (name, rgb) in enumerate(zip(names, seq.frames, strict=True)):
            time.sleep(0.15 if i % 2 else 0.0)  # a slow, uneven machine
            bgra = np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 255, np.uint8)])
            assert np.array_equal(pipeline.process(bgra, t=i / 25), _load_rgba(tmp_path / "a" / name)), name
    finally:
        pipeline.close()


def test_max_faces_two_swaps_both_people_each_tracked_on_its_own(photos, preset, tmp_path, model_pool) -> None:
    seq = motion.make_sequence("two-faces", photos, 41, frames=8)
    _save_folder(tmp_path / "in", seq.frames)
    base = ["--engine", "mesh", "--source", preset, "--matting", "off"]
    assert main(["process", str(tmp_path / "in"), str(tmp_path / "two"), *base, "--max-faces", "2"]) == 0
    assert main(["process", str(tmp_path / "in"), str(tmp_path / "one"), *base]) == 0
    for i in range(2, 8):  # from the third frame: the detector may need a second look for the farther face
        two = _load_rgba(tmp_path / "two" / f"{i:04d}.png")
        one = _load_rgba(tmp_path / "one" / f"{i:04d}.png")
        changed_two = [_face_changed(seq.frames[i], two, t) for t in seq.truth[i]]
        changed_one = sorted(_face_changed(seq.frames[i], one, t) for t in seq.truth[i])
        assert min(changed_two) > 4.0, f"frame {i}: {changed_two}"
        assert changed_one[0] < 0.5 and changed_one[1] > 4.0, f"frame {i}: {changed_one}"
    swapper = MeshSwapper(validate_options({"preset": preset, "max_faces": 2}), model_pool)
    ids = set()
    for i, frame in enumerate(seq.frames):
        swapper.process(frame, i / 30)
        ids |= {f.track_id for f in swapper.faces}
    assert len(swapper.faces) == 2 and len(ids) == 2  # two tracks, each kept from frame to frame
    for truth in seq.truth[-1]:
        drawn = _drawn(swapper, truth)
        assert drawn is not None and _error(drawn, truth) < 0.03


def test_worker_effect_runs_on_the_capture_time(photos, preset, model_pool) -> None:
    """The worker hands the frame header's capture time to the effect: the same frames at the same
    capture times give the same output as the pipeline given those times, whatever the delays."""
    from facefusion_obs.worker.effects import PipelineEffect

    seq = motion.make_sequence("fast", photos, 51, frames=4)
    options = validate_options({"engine": "mesh", "preset": preset, "matting": "off", "effect": "pipeline"})
    effect = PipelineEffect(options, model_pool)
    pipeline = FramePipeline(options, model_pool)
    try:
        for i, rgb in enumerate(seq.frames):
            bgra = np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 255, np.uint8)])
            out = np.empty_like(bgra)
            time.sleep(0.1 * (i % 2))
            effect.process(bgra, out, 1000.0 + i / 30)
            assert np.array_equal(out, pipeline.process(bgra, t=1000.0 + i / 30))
    finally:
        effect.pipeline.close()
        pipeline.close()


def process_cli_args(argv: list[str]):
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    process_cli.register(sub)
    return parser.parse_args(["process", *argv])


def test_a_face_the_model_loses_but_the_flow_follows_is_held_three_frames_then_faded(model_pool) -> None:
    """The seed's practice, kept only while a clean flow certifies the face is still there: the last
    good face, carried by the flow, at full strength for three frames, then fading, then gone; a flow
    that is not clean (an occluder breaks it) ends the track at once."""
    from facefusion_obs.faces.landmarker import Roi
    from facefusion_obs.faces.tracker import FADE_FRAMES, HOLD_FRAMES, Face, FaceTracker, _Flow, _Track

    tracker = FaceTracker(model_pool)
    points = np.zeros((468, 3))
    points[:, :2] = np.random.default_rng(0).uniform(500, 700, (468, 2))
    step = np.array([[1.0, 0.0, 12.0], [0.0, 1.0, -3.0]])
    track = _Track(1, Roi(600, 600, 300, 0.0), raw=points.copy())
    track.last = Face(1, points.copy(), points.copy(), track.roi, 0.9)
    opacities = []
    for _ in range(HOLD_FRAMES + FADE_FRAMES + 1):
        face = tracker._coast(track, _Flow(step, clean=True), None, 0.1, "landmark presence 0.10")
        opacities.append(None if face is None else face.opacity)
    assert opacities[:HOLD_FRAMES] == [1.0] * HOLD_FRAMES
    fading = opacities[HOLD_FRAMES : HOLD_FRAMES + FADE_FRAMES]
    assert all(0 < a < 1 for a in fading) and fading == sorted(fading, reverse=True)
    assert opacities[-1] is None and track.last is None
    moved = carry(points, np.array([[1.0, 0.0, 12.0 * HOLD_FRAMES], [0.0, 1.0, -3.0 * HOLD_FRAMES]]))
    track = _Track(2, Roi(600, 600, 300, 0.0), raw=points.copy())
    track.last = Face(2, points.copy(), points.copy(), track.roi, 0.9)
    for _ in range(HOLD_FRAMES):
        held = tracker._coast(track, _Flow(step, clean=True), None, 0.1, "lost")
    assert held is not None and np.allclose(held.landmarks, moved)  # carried along the flow, not frozen
    assert tracker._coast(track, _Flow(step, clean=False), None, 0.1, "lost") is None and track.last is None


def test_frame_times_come_from_the_video_or_from_fps(tmp_path) -> None:
    from facefusion_obs.cli.frame_files import open_source

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(4):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    assert [round(t, 6) for _, _, t in open_source(video).timed(fps=25)] == [0.0, 0.1, 0.2, 0.3]
    _save_folder(tmp_path / "frames", [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(3)])
    assert [t for _, _, t in open_source(tmp_path / "frames").timed(fps=25)] == [0.0, 0.04, 0.08]
