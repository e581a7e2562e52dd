"""``facefusion-obs process``: inputs, output names, one stream's temporal state, errors, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from facefusion_obs.bench.greenscreen import make_sequence
from facefusion_obs.cli import frame_files
from facefusion_obs.cli import process as process_cli
from facefusion_obs.cli.main import CliError, main
from facefusion_obs.pipeline.frame import FramePipeline
from facefusion_obs.runtime.pool import ModelPool


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return make_sequence("green", frames=3, height=72, width=128, seed=5).frames


def _save(path: Path, rgb: np.ndarray) -> None:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _load_rgba(path: Path) -> np.ndarray:
    bgra = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert bgra is not None and bgra.shape[2] == 4
    return cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)


def test_single_image_gives_one_rgba_png_named_after_it(tmp_path, frames) -> None:
    source = tmp_path / "shot.jpg"
    _save(source, frames[0])
    assert main(["process", str(source), str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["shot.png"]
    rgba = _load_rgba(tmp_path / "out" / "shot.png")
    assert rgba.shape == (72, 128, 4)
    assert rgba[:8, :8, 3].max() <= 10 and rgba[60:, 60:68, 3].min() >= 240  # corner screen, body


def test_folder_is_one_stream_in_name_order(tmp_path, frames) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    names = ["b_001.png", "a_002.png", "c_000.png"]  # name order: a_002, b_001, c_000
    for name, frame in zip(names, frames, strict=True):
        _save(folder / name, frame)
    (folder / "notes.txt").write_text("not a frame")
    assert main(["process", str(folder), str(tmp_path / "out"), "--temporal", "0.9"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)
    # the same frames through one pipeline in name order, carrying its temporal state
    pipeline = FramePipeline({"swap_enabled": False, "matting": "chroma", "temporal": 0.9}, ModelPool())
    for name in sorted(names):
        rgb = frames[names.index(name)]
        bgra = np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 255, np.uint8)])
        expected = pipeline.process(bgra)
        assert np.array_equal(_load_rgba(tmp_path / "out" / name), expected), name


def test_video_frames_are_numbered(tmp_path, frames) -> None:
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (128, 72))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    assert main(["process", str(video), str(tmp_path / "out"), "--key-color", "green"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "frame_000000.png", "frame_000001.png", "frame_000002.png"]


def test_tuning_flags_are_the_config_options() -> None:
    flags = {o.key for o in process_cli.OPTION_FLAGS}
    assert {"key_tolerance", "key_softness", "despill", "temporal"} <= flags


@pytest.mark.parametrize(("args", "message"), [
    (["--key-color", "chartreuse"], "'chartreuse' is not a key colour"),
    (["--key-color", "#777777"], "#777777 is not a keyable screen colour"),
    (["--key-softness", "7"], "'key_softness': 7.0 is outside"),
    (["--engine", "mesh"], "--engine mesh needs --source"),
])
def test_bad_options_are_one_line_errors(tmp_path, frames, capsys, args, message) -> None:
    source = tmp_path / "shot.png"
    _save(source, frames[0])
    assert main(["process", str(source), str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_unreadable_file_is_named(tmp_path, frames, capsys) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    _save(folder / "000.png", frames[0])
    (folder / "001.png").write_bytes(b"\x89PNG but not really")
    assert main(["process", str(folder), str(tmp_path / "out")]) == 2
    assert f"cannot read image {folder / '001.png'}" in capsys.readouterr().err


def test_mixed_frame_sizes_are_refused(tmp_path, frames) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    _save(folder / "000.png", frames[0])
    _save(folder / "001.png", frames[1][:64, :100])
    with pytest.raises(CliError, match=r"frame 001.png is 100x64 but 000.png is 128x72"):
        process_cli.process(folder, tmp_path / "out", process_cli.build_options(
            process_cli_args(folder, tmp_path / "out")))


def test_missing_input_and_empty_folder_and_not_a_video(tmp_path, capsys) -> None:
    assert main(["process", str(tmp_path / "nope.png"), str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["process", str(tmp_path / "empty"), str(tmp_path / "out")]) == 2
    assert "holds no image files" in capsys.readouterr().err
    (tmp_path / "clip.mp4").write_bytes(b"garbage")
    assert main(["process", str(tmp_path / "clip.mp4"), str(tmp_path / "out")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_writes_are_atomic(tmp_path, frames, monkeypatch) -> None:
    """A write that fails half-way leaves neither a partial PNG nor a temporary file behind."""
    out = tmp_path / "out"
    out.mkdir()
    target = out / "frame.png"
    target.write_bytes(b"previous")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    rgba = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(OSError, match="disk full"):
        frame_files.write_png_atomic(target, rgba)
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in out.iterdir()) == ["frame.png"]
    monkeypatch.undo()
    frame_files.write_png_atomic(target, rgba)
    assert _load_rgba(target).shape == (4, 4, 4)
    assert sorted(p.name for p in out.iterdir()) == ["frame.png"]


def process_cli_args(source: Path, out: Path):
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    process_cli.register(sub)
    return parser.parse_args(["process", str(source), str(out)])
