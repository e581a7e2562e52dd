"""``facefusion-obs process`` under bad input: one line, a non-zero exit, nothing lost, nothing half-done.

Every case drives the command as a user would and checks the same four things (:func:`_refused`):
the exit status, exactly one line on stderr naming the culprit, no traceback, and the folder the user
handed us byte-for-byte as it was (inputs unchanged, no file or folder left behind).
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from facefusion_obs.bench.greenscreen import make_sequence
from facefusion_obs.cli.main import main
from facefusion_obs.demo.photos import SAMPLE_CONSENT

FRAME_H, FRAME_W = 72, 128


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return make_sequence("green", frames=10, height=FRAME_H, width=FRAME_W, seed=5).frames


@pytest.fixture()
def work(tmp_path: Path) -> Path:
    """The user's folder: everything a case makes lives here, and :func:`_snapshot` watches it."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def _save(path: Path, rgb: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def _snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (hidden ones too) -> its SHA-256, "dir" or its link target."""
    seen: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                seen[key] = f"-> {os.readlink(path)}"
            elif path.is_dir():
                seen[key] = "dir"
            else:
                seen[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return seen


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["process", *map(str, args)])
    return code, capsys.readouterr().err


def _refused(code: int, err: str, *named: object) -> None:
    assert code != 0
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("facefusion-obs process: error: "), err
    for thing in named:
        assert str(thing) in err, (thing, err)


# ------------------------------------------------------------------------------ 1. no input overwritten
def _image_into_its_folder(work: Path, frames: list[np.ndarray]) -> tuple[Path, Path, Path]:
    shot = _save(work / "shot.png", frames[0])
    return shot, work, shot


def _image_into_same_folder_spelled_otherwise(work: Path, frames: list[np.ndarray]) -> tuple[Path, Path, Path]:
    (work / "sub").mkdir()
    shot = _save(work / "shot.png", frames[0])
    return shot, work / "sub" / "..", shot


def _image_into_a_symlink_to_its_folder(work: Path, frames: list[np.ndarray]) -> tuple[Path, Path, Path]:
    shot = _save(work / "shot.png", frames[0])
    (work / "alias").symlink_to(work, target_is_directory=True)
    return shot, work / "alias", shot


def _image_hard_linked_into_output(work: Path, frames: list[np.ndarray]) -> tuple[Path, Path, Path]:
    (work / "in").mkdir()
    (work / "out").mkdir()
    shot = _save(work / "in" / "shot.png", frames[0])
    os.link(shot, work / "out" / "shot.png")
    return shot, work / "out", shot


def _folder_frame_hard_linked_into_output(work: Path, frames: list[np.ndarray]) -> tuple[Path, Path, Path]:
    (work / "in").mkdir()
    (work / "out").mkdir()
    for i in range(3):
        _save(work / "in" / f"f{i}.png", frames[i])
    os.link(work / "in" / "f2.png", work / "out" / "f2.png")
    return work / "in", work / "out", work / "in" / "f2.png"


def _folder_frame_symlinked_into_output(work: Path, frames: list[np.ndarray]) -> tuple[Path, Path, Path]:
    (work / "in").mkdir()
    (work / "out").mkdir()
    for i in range(3):
        _save(work / "in" / f"f{i}.png", frames[i])
    (work / "out" / "f1.png").symlink_to(work / "in" / "f1.png")
    return work / "in", work / "out", work / "in" / "f1.png"


@pytest.mark.parametrize("layout", [
    _image_into_its_folder, _image_into_same_folder_spelled_otherwise, _image_into_a_symlink_to_its_folder,
    _image_hard_linked_into_output, _folder_frame_hard_linked_into_output, _folder_frame_symlinked_into_output,
], ids=lambda f: f.__name__.strip("_"))
def test_an_output_that_would_replace_an_input_is_refused(work, frames, capsys, layout) -> None:
    source, out, victim = layout(work, frames)
    before = _snapshot(work)
    code, err = _cli(capsys, source, out, "--engine", "none")
    _refused(code, err, victim, "would overwrite the input")
    assert _snapshot(work) == before


# ------------------------------------------------------------------------- 2. a --source it cannot use
def _flat_grey(tmp: Path, astronaut: np.ndarray, photos: Path) -> Path:
    return _save(tmp / "grey.png", np.full((256, 256, 3), 128, np.uint8))


def _coffee_cup(tmp: Path, astronaut: np.ndarray, photos: Path) -> Path:
    from skimage import data

    return _save(tmp / "coffee.jpg", np.ascontiguousarray(data.coffee()))


def _astronaut_without_face(tmp: Path, astronaut: np.ndarray, photos: Path) -> Path:
    return _save(tmp / "suit.png", np.ascontiguousarray(astronaut[300:, 250:]))  # suit and flag only


def _two_astronauts(tmp: Path, astronaut: np.ndarray, photos: Path) -> Path:
    return _save(tmp / "pair.png", np.hstack([astronaut, astronaut[:, ::-1]]))


def _group_photo(tmp: Path, astronaut: np.ndarray, photos: Path) -> Path:
    return photos / "t1.jpg"


def _faces_in(path: Path, pool) -> int:
    from facefusion_obs.faces.detector import FULL_RANGE, SHORT_RANGE, FaceDetector

    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    found = pool.load(FaceDetector, SHORT_RANGE.model).get(rgb) or pool.load(FaceDetector, FULL_RANGE.model).get(rgb)
    return len(found)


@pytest.mark.parametrize("photo", [_flat_grey, _coffee_cup, _astronaut_without_face],
                         ids=lambda f: f.__name__.strip("_"))
def test_source_photo_without_a_face_is_refused_before_any_frame(
        isolated_home, work, frames, capsys, astronaut_rgb, sample_images_dir, embedded_models, photo) -> None:
    target = _save(work / "target.png", frames[0])
    source = photo(isolated_home, astronaut_rgb, sample_images_dir)
    before = _snapshot(work)
    code, err = _cli(capsys, target, work / "out", "--engine", "mesh", "--source", source)
    _refused(code, err, source, "no face found")
    assert _snapshot(work) == before


@pytest.mark.parametrize("photo", [_two_astronauts, _group_photo], ids=lambda f: f.__name__.strip("_"))
def test_source_photo_with_several_faces_says_how_many_and_how_to_pick(
        isolated_home, work, frames, capsys, astronaut_rgb, sample_images_dir, model_pool, photo) -> None:
    target = _save(work / "target.png", frames[0])
    source = photo(isolated_home, astronaut_rgb, sample_images_dir)
    count = _faces_in(source, model_pool)
    assert count > 1
    before = _snapshot(work)
    code, err = _cli(capsys, target, work / "out", "--engine", "mesh", "--source", source)
    _refused(code, err, source, f"shows {count} faces", "facefusion-obs presets add NAME", "--face INDEX")
    assert _snapshot(work) == before


def _zero_bytes(tmp: Path) -> tuple[str, str]:
    (tmp / "empty.png").write_bytes(b"")
    return str(tmp / "empty.png"), "cannot read image"


def _text_named_jpg(tmp: Path) -> tuple[str, str]:
    (tmp / "notes.jpg").write_text("not a photo")
    return str(tmp / "notes.jpg"), "cannot read image"


def _huge_photo(tmp: Path) -> tuple[str, str]:
    _save(tmp / "wide.png", np.zeros((1, 9000, 3), np.uint8))
    return str(tmp / "wide.png"), "8192"


def _missing_photo(tmp: Path) -> tuple[str, str]:
    return str(tmp / "gone" / "me.png"), "does not exist"


def _unknown_preset(tmp: Path) -> tuple[str, str]:
    return "nobody", "does not exist"


def _bad_preset_name(tmp: Path) -> tuple[str, str]:
    return "me*?", "invalid preset name"


@pytest.mark.parametrize("case", [_zero_bytes, _text_named_jpg, _huge_photo, _missing_photo, _unknown_preset,
                                  _bad_preset_name], ids=lambda f: f.__name__.strip("_"))
def test_unusable_source_is_refused_before_any_frame(isolated_home, work, frames, capsys, embedded_models,
                                                     case) -> None:
    target = _save(work / "target.png", frames[0])
    value, why = case(isolated_home)
    before = _snapshot(work)
    code, err = _cli(capsys, target, work / "out", "--engine", "mesh", "--source", value)
    _refused(code, err, value.strip(), why)
    assert _snapshot(work) == before


def test_source_without_an_engine_is_refused(work, frames, capsys) -> None:
    """Today's default engine is 'none': a --source alone would be ignored and the frames pass through."""
    target = _save(work / "target.png", frames[0])
    before = _snapshot(work)
    code, err = _cli(capsys, target, work / "out", "--source", "astro")
    _refused(code, err, "--source 'astro'", "--engine")
    assert _snapshot(work) == before


def test_the_check_refuses_what_the_swap_cannot_use_and_nothing_else(
        isolated_home, work, frames, capsys, astronaut_rgb, embedded_models) -> None:
    from facefusion_obs.presets import PresetStore

    target = _save(work / "target.png", frames[0])
    faceless = _save(isolated_home / "grey.png", np.full((256, 256, 3), 128, np.uint8))
    code, err = _cli(capsys, target, work / "out", "--engine", "mesh", "--source", faceless)
    _refused(code, err, faceless, "no face found")
    photo = _save(isolated_home / "astro.png", astronaut_rgb)  # one frontal face, and a preset made of it
    PresetStore().add("astro", [photo], consent=SAMPLE_CONSENT)
    for source, consent in ((photo, ["--consent", SAMPLE_CONSENT]), ("astro", [])):
        assert main(["process", str(target), str(work / "out"), "--engine", "mesh", "--source", str(source),
                     *consent]) == 0
        assert sorted(p.name for p in (work / "out").iterdir()) == ["target.png"]


# ---------------------------------------------------------------------------------- 3. truncated video
_BOXES_WITH_CHILDREN = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def _boxes(buf: bytes | bytearray, start: int, end: int):
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", buf, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        yield kind, pos, pos + size, header
        pos += size


def _shift_chunk_offsets(buf: bytearray, start: int, end: int, shift: int) -> None:
    for kind, s, e, header in _boxes(buf, start, end):
        if kind in _BOXES_WITH_CHILDREN:
            _shift_chunk_offsets(buf, s + header, e, shift)
        elif kind in (b"stco", b"co64"):
            fmt, width = (">I", 4) if kind == b"stco" else (">Q", 8)
            for i in range(struct.unpack_from(">I", buf, s + header + 4)[0]):
                at = s + header + 8 + i * width
                struct.pack_into(fmt, buf, at, struct.unpack_from(fmt, buf, at)[0] + shift)


def _faststart(mp4: bytes) -> bytes:
    """The same MP4 with its index (moov) ahead of the frames, as streaming encoders write it.

    OpenCV's writer puts moov last, so any cut removes the index and the file no longer opens at all;
    with moov first a cut file opens, declares every frame and decodes fewer: the silent case.
    """
    boxes = list(_boxes(mp4, 0, len(mp4)))
    assert boxes[0][0] == b"ftyp" and boxes[-1][0] == b"moov"
    _, start, end, _ = boxes[-1]
    moov = bytearray(mp4[start:end])
    _shift_chunk_offsets(moov, 0, len(moov), len(moov))
    return mp4[:boxes[0][2]] + bytes(moov) + mp4[boxes[0][2]:start]


def _clip(folder: Path, frames: list[np.ndarray], suffix: str, cut: float) -> tuple[Path, int]:
    """A clip of every frame, cut to ``cut`` of its bytes; returns it and how many frames still decode."""
    fourcc = {".avi": "MJPG", ".mp4": "mp4v"}[suffix]
    whole = folder / f"whole{suffix}"
    writer = cv2.VideoWriter(str(whole), cv2.VideoWriter_fourcc(*fourcc), 10, (FRAME_W, FRAME_H))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    data = whole.read_bytes()
    whole.unlink()
    if suffix == ".mp4":
        data = _faststart(data)
    clip = folder / f"clip{suffix}"
    clip.write_bytes(data[:int(len(data) * cut)])
    capture = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
    decodable = 0
    while capture.read()[0]:
        decodable += 1
    capture.release()
    assert 0 < decodable < len(frames), (suffix, cut, decodable)  # the cut really lost frames
    return clip, decodable


CUTS = [(".avi", 0.3), (".avi", 0.6), (".avi", 0.95), (".mp4", 0.3), (".mp4", 0.6), (".mp4", 0.95)]


@pytest.mark.parametrize(("suffix", "cut"), CUTS)
def test_truncated_video_is_refused_and_its_frames_removed(work, frames, capsys, suffix, cut) -> None:
    clip, decodable = _clip(work, frames, suffix, cut)
    before = _snapshot(work)
    code, err = _cli(capsys, clip, work / "out")
    _refused(code, err, clip, "ends early", f"only {decodable} of the {len(frames)} frames", "removed")
    assert _snapshot(work) == before  # the decoded frames were written, then removed with the folder


@pytest.mark.parametrize(("suffix", "cut"), [(".avi", 0.6), (".mp4", 0.6)])
def test_truncated_video_keep_partial_keeps_the_decoded_frames(work, frames, capsys, suffix, cut) -> None:
    clip, decodable = _clip(work, frames, suffix, cut)
    code, err = _cli(capsys, clip, work / "out", "--keep-partial")
    _refused(code, err, clip, "ends early", f"kept the {decodable} finished frame(s)")
    assert sorted(p.name for p in (work / "out").iterdir()) == [f"frame_{i:06d}.png" for i in range(decodable)]


def test_truncated_video_is_one_line_on_the_real_stderr(work, frames) -> None:
    """A fresh process, as a user runs it: the decoder's own complaints must not reach the terminal.

    The one other line there is LiteRT's banner when the pipeline builds its face detector (printed by
    the interpreter itself, runtime/litert.py); it is not about the input and is left out here.
    """
    clip, _ = _clip(work, frames, ".avi", 0.6)
    before = _snapshot(work)
    done = subprocess.run([sys.executable, "-m", "facefusion_obs.cli.main", "process", str(clip), str(work / "out")],
                          capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"})
    _refused(done.returncode, done.stderr, clip, "ends early")  # LiteRT's own banner held back too
    assert _snapshot(work) == before


# ------------------------------------------------------------------------------- 4. OS errors, one line
def _output_is_a_file(work: Path) -> tuple[Path, str]:
    (work / "out").write_text("my notes")
    return work / "out", "is a file, not a folder"


def _output_parent_is_a_file(work: Path) -> tuple[Path, str]:
    (work / "notes.txt").write_text("my notes")
    return work / "notes.txt" / "a" / "out", "notes.txt is a file"


def _output_name_too_long(work: Path) -> tuple[Path, str]:
    return work / ("x" * 300), "File name too long"


def _output_under_a_name_too_long(work: Path) -> tuple[Path, str]:
    return work / "new" / ("x" * 300) / "out", "File name too long"


def _output_symlink_loop(work: Path) -> tuple[Path, str]:
    (work / "loop").symlink_to(work / "loop")
    return work / "loop" / "out", "Too many levels of symbolic links"


def _output_is_a_device(work: Path) -> tuple[Path, str]:
    return Path("/dev/null"), "is a file, not a folder"


def _output_in_proc_cannot_be_created(work: Path) -> tuple[Path, str]:
    return Path("/proc/self/facefusion-obs-out"), "cannot create output folder"


def _output_in_proc_cannot_be_written(work: Path) -> tuple[Path, str]:
    return Path("/proc/self/fd"), "cannot write to output folder"


@pytest.mark.parametrize("case", [
    _output_is_a_file, _output_parent_is_a_file, _output_name_too_long, _output_under_a_name_too_long,
    _output_symlink_loop, _output_is_a_device, _output_in_proc_cannot_be_created, _output_in_proc_cannot_be_written,
], ids=lambda f: f.__name__.strip("_"))
def test_output_folder_os_errors_are_one_line(work, frames, capsys, case) -> None:
    shot = _save(work / "shot.png", frames[0])
    out, why = case(work)
    before = _snapshot(work)
    code, err = _cli(capsys, shot, out)
    _refused(code, err, out, why)
    assert _snapshot(work) == before


def test_a_folder_in_the_way_of_an_output_is_refused_before_anything_moves(work, frames, capsys) -> None:
    (work / "in").mkdir()
    for i in range(3):
        _save(work / "in" / f"f{i}.png", frames[i])
    (work / "out" / "f2.png").mkdir(parents=True)
    (work / "out" / "f0.png").write_bytes(b"an earlier run")
    before = _snapshot(work)
    code, err = _cli(capsys, work / "in", work / "out")
    _refused(code, err, work / "out" / "f2.png", "in the way")
    assert _snapshot(work) == before


@pytest.mark.parametrize(("source", "why"), [
    ("x" * 300 + ".png", "File name too long"),
    ("/dev/null", "not a regular file"),
])
def test_input_os_errors_are_one_line(work, capsys, source, why) -> None:
    source = source if source.startswith("/") else str(work / source)
    before = _snapshot(work)
    code, err = _cli(capsys, source, work / "out")
    _refused(code, err, source, why)
    assert _snapshot(work) == before


# ------------------------------------------------------------------------ 5. a run that fails part-way
def _garbage(path: Path, rgb: np.ndarray) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n but not really")


def _empty(path: Path, rgb: np.ndarray) -> None:
    path.write_bytes(b"")


def _cut_in_half(path: Path, rgb: np.ndarray) -> None:
    _save(path, rgb)
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])


def _other_size(path: Path, rgb: np.ndarray) -> None:
    _save(path, np.ascontiguousarray(rgb[:FRAME_H // 2]))


BREAKAGES: list[Callable[[Path, np.ndarray], None]] = [_garbage, _empty, _cut_in_half, _other_size]


def _five_frames_third_broken(work: Path, frames: list[np.ndarray], breakage) -> Path:
    folder = work / "in"
    folder.mkdir()
    for i in range(5):
        (breakage if i == 2 else _save)(folder / f"f{i}.png", frames[i])
    return folder


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda f: f.__name__.strip("_"))
def test_a_fatal_frame_mid_stream_leaves_the_output_folder_as_it_was(work, frames, capsys, breakage) -> None:
    source = _five_frames_third_broken(work, frames, breakage)
    out = work / "out"
    out.mkdir()
    (out / "f0.png").write_bytes(b"an earlier run's frame")  # same name as one this run finishes
    (out / "notes.txt").write_text("the user's own file")
    before = _snapshot(work)
    code, err = _cli(capsys, source, out)
    _refused(code, err, "f2.png", "removed the 2 frame(s)")
    assert _snapshot(work) == before


@pytest.mark.parametrize("breakage", BREAKAGES[:2], ids=lambda f: f.__name__.strip("_"))
def test_a_fatal_frame_mid_stream_removes_the_folders_the_run_made(work, frames, capsys, breakage) -> None:
    source = _five_frames_third_broken(work, frames, breakage)
    before = _snapshot(work)
    code, err = _cli(capsys, source, work / "new" / "deeper" / "out")
    _refused(code, err, "f2.png")
    assert _snapshot(work) == before


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda f: f.__name__.strip("_"))
def test_keep_partial_keeps_the_finished_frames_and_says_so(work, frames, capsys, breakage) -> None:
    source = _five_frames_third_broken(work, frames, breakage)
    out = work / "out"
    out.mkdir()
    (out / "notes.txt").write_text("the user's own file")
    inputs = _snapshot(source)
    code, err = _cli(capsys, source, out, "--keep-partial")
    _refused(code, err, "f2.png", f"kept the 2 finished frame(s) in {out}")
    assert sorted(p.name for p in out.iterdir()) == ["f0.png", "f1.png", "notes.txt"]
    assert (out / "notes.txt").read_text() == "the user's own file"
    assert cv2.imread(str(out / "f1.png"), cv2.IMREAD_UNCHANGED).shape == (FRAME_H, FRAME_W, 4)
    assert _snapshot(source) == inputs


# -------------------------------------------------------------------------------- 6. dimension limit
def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that claims ``width`` x ``height`` (a decompression bomb's header) and holds no pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize(("name", "width", "height"), [
    ("wide.png", 8193, 1), ("tall.jpg", 2, 9000), ("wide.webp", 8200, 2), ("wide.bmp", 9000, 1),
    ("tall.tif", 1, 8193), ("bomb.png", 100_000, 100_000), ("bomb_wide.png", 2**31 - 1, 1),
])
def test_images_over_8192_pixels_a_side_are_refused_from_the_header(work, capsys, name, width, height) -> None:
    path = work / name
    if name.startswith("bomb"):
        _png_header_only(path, width, height)
    else:
        assert cv2.imwrite(str(path), np.zeros((height, width, 3), np.uint8))
    before = _snapshot(work)
    code, err = _cli(capsys, path, work / "out")
    _refused(code, err, path, "the limit is 8192 pixels on each side")
    if not name.startswith("bomb"):
        assert f"is {width}x{height} pixels" in err
    assert _snapshot(work) == before


def test_an_oversized_frame_mid_folder_is_refused_and_nothing_kept(work, frames, capsys) -> None:
    folder = work / "in"
    folder.mkdir()
    _save(folder / "a.png", frames[0])
    _png_header_only(folder / "b.png", 20_000, 20_000)
    before = _snapshot(work)
    code, err = _cli(capsys, folder, work / "out")
    _refused(code, err, folder / "b.png", "8192")
    assert _snapshot(work) == before
