"""Damaged and hostile presets on disk: refused by the store as PresetDamaged naming the preset and the file,
reported by the CLI as one line, repaired by ``presets add --replace``, kept private whatever the umask, and
never allowed to take the swap or the matting away from a live worker channel.

Each damage case starts from a copy of one real preset (made once, from a real photo with the real
embedded face models) and breaks one thing the way disks, crashes, editors or attackers do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable
from multiprocessing import Pipe
from pathlib import Path

import cv2
import numpy as np
import pytest

from facefusion_obs.cli.main import main
from facefusion_obs.demo.photos import SAMPLE_CONSENT
from facefusion_obs.presets import PresetDamaged, PresetStore, PresetWatcher, files
from facefusion_obs.presets.store import META

NAME = "face"


# ------------------------------------------------------------------------------------- material
@pytest.fixture(scope="module")
def good(tmp_path_factory, embedded_models, sample_images_dir) -> Path:
    """One real preset's folder, copied by each test that breaks it."""
    root = tmp_path_factory.mktemp("good")
    PresetStore(root).add(NAME, [sample_images_dir / "Tom_Hanks_54745.png"], consent=SAMPLE_CONSENT)
    return root / NAME


@pytest.fixture
def root(tmp_path, good, monkeypatch) -> Path:
    """A presets folder holding a fresh copy of the good preset; the CLI and the worker use it too."""
    presets = tmp_path / "presets"
    presets.mkdir()
    shutil.copytree(good, presets / NAME)
    monkeypatch.setenv("FACEFUSION_OBS_PRESETS", str(presets))
    return presets


def _copy_as(root: Path, name: str) -> Path:
    """A good copy of the preset under another name."""
    shutil.copytree(root / NAME, root / name)
    _edit_meta(_set("name", name))(root / name)
    return root / name


def _meta(folder: Path) -> dict:
    return json.loads((folder / META).read_text())


def _edit_meta(edit: Callable[[dict], object]) -> Callable[[Path], str]:
    def damage(folder: Path) -> str:
        meta = _meta(folder)
        edit(meta)
        (folder / META).write_text(json.dumps(meta))
        return META
    return damage


def _faces(folder: Path) -> Path:
    return folder / _meta(folder)["face_data"]


def _edit_faces(edit: Callable[[dict], object]) -> Callable[[Path], str]:
    def damage(folder: Path) -> str:
        path = _faces(folder)
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        edit(arrays)
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)  # savez pickles object arrays: the reader must refuse them
        return path.name
    return damage


def _texture(folder: Path) -> Path:
    return folder / _meta(folder)["texture"]


def _rewrite(pick: Callable[[Path], Path], data: Callable[[bytes], bytes]) -> Callable[[Path], str]:
    def damage(folder: Path) -> str:
        path = pick(folder)
        path.write_bytes(data(path.read_bytes()))
        return path.name
    return damage


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def huge_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid, tiny PNG whose header claims ``width`` x ``height`` pixels (30 GB decoded)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _zip(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip of (name, deflated bytes, declared size, crc) members, written by hand so that the declared
    sizes can be anything, as in a crafted file."""
    local, central = b"", b""
    for name, data, size, crc in members:
        raw = name.encode()
        header = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(raw), 0)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data), size,
                               len(raw), 0, 0, 0, 0, 0, len(local)) + raw
        local += header + raw + data
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(local), 0)
    return local + central + end


def _npy_header(shape: tuple[int, ...]) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue()


def zip_bomb(mib: int = 2048, declared: int | None = None) -> bytes:
    """An ``.npz`` of about ``mib`` KiB whose one member really inflates to ``mib`` MiB of float32 zeros.

    ``declared`` (default: the truth) is the size its zip directory states. Deflate streams of zeros
    repeat after a full flush, so the bomb is built without ever holding its inflated bytes. Its CRC is
    not computed (that would mean hashing the gigabytes): a reader must refuse it before getting there.
    """
    zeros = b"\0" * (1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    header = _npy_header(((mib << 20) // 4,))
    head = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    data = head + block * mib + c.flush()
    size = len(header) + (mib << 20)
    return _zip([("landmarks.npy", data, size if declared is None else declared, 0)])


def _members(count: int, each: int) -> bytes:
    """A zip of ``count`` honest float32 members of ``each`` bytes."""
    members = []
    for i in range(count):
        payload = _npy_header((each // 4,)) + b"\0" * each
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        members.append((f"a{i}.npy", c.compress(payload) + c.flush(), len(payload), zlib.crc32(payload)))
    return _zip(members)


def _symlink_meta(folder: Path) -> str:
    outside = folder.parent.parent / "elsewhere.json"
    (folder / META).rename(outside)
    (folder / META).symlink_to(outside)
    return META


def _fifo_faces(folder: Path) -> str:
    path = _faces(folder)
    path.unlink()
    os.mkfifo(path)  # a reader that opened it would hang
    return path.name


def _unlink(pick: Callable[[Path], Path]) -> Callable[[Path], str]:
    def damage(folder: Path) -> str:
        path = pick(folder)
        path.unlink()
        return path.name
    return damage


def _deep_meta(folder: Path) -> str:
    text = (folder / META).read_text().rstrip().removesuffix("}")
    (folder / META).write_text(text + ', "deep": ' + "[" * 200 + "]" * 200 + "}")
    return META


def _nan_meta(folder: Path) -> str:
    text = re.sub(r'"frontality": [0-9.]+', '"frontality": NaN', (folder / META).read_text())
    (folder / META).write_text(text)
    return META


def _derived_strings(folder: Path) -> str:
    meta = _meta(folder)
    file = f"derived-arcface_w600k_r50.r{meta['revision']}.npz"
    np.savez(folder / file, identity=np.array(["not", "numbers"]))
    meta["derived"] = {"arcface_w600k_r50": file}
    (folder / META).write_text(json.dumps(meta))
    return file


def _not_square(folder: Path) -> str:
    path = _texture(folder)
    cv2.imwrite(str(path), np.zeros((200, 384, 3), np.uint8))
    return path.name


def _jpeg_texture(folder: Path) -> str:
    path = _texture(folder)
    path.write_bytes(cv2.imencode(".jpg", np.zeros((384, 384, 3), np.uint8))[1].tobytes())
    return path.name


def _bit_flip(data: bytes) -> bytes:
    i = data.index(b"IDAT") + 64  # inside the compressed pixels: only the chunk's CRC notices
    return data[:i] + bytes([data[i] ^ 0x40]) + data[i + 1:]


def _folder_link(folder: Path) -> str:
    copy = folder.parent.parent / "linked-preset"
    folder.rename(copy)
    folder.symlink_to(copy, target_is_directory=True)
    return NAME


def _set(key: str, value: object) -> Callable[[dict], None]:
    return lambda meta: meta.__setitem__(key, value)


def _source_file(value: str) -> Callable[[dict], None]:
    return lambda meta: meta["sources"][0].__setitem__("file", value)


DAMAGE: dict[str, tuple[Callable[[Path], str], str]] = {
    # preset.json
    "json truncated": (_rewrite(lambda f: f / META, lambda b: b[: len(b) // 2]), "not valid JSON"),
    "json not an object": (_rewrite(lambda f: f / META, lambda b: b"[1, 2]"), "not a JSON object"),
    "json not UTF-8": (_rewrite(lambda f: f / META, lambda b: b"\xff\xfe" + b), "UTF-8"),
    "json field missing": (_edit_meta(lambda m: m.pop("texture")), "'texture' is missing"),
    "json wrong type": (_edit_meta(_set("revision", "2")), "'revision' must be an integer"),
    "json other name": (_edit_meta(_set("name", "someone else")), "names preset"),
    "json ../ path": (_edit_meta(_set("face_data", "../x.npz")), "inside the preset's folder"),
    "json absolute path": (_edit_meta(_source_file("/etc/passwd.png")), "inside the preset's folder"),
    "json newline in path": (_edit_meta(_set("texture", "texture.r1.png\n")), "inside the preset's folder"),
    "json NaN": (_nan_meta, "NaN is not a JSON number"),
    "json nested deep": (_deep_meta, "nested deeper"),
    "json huge": (_rewrite(lambda f: f / META, lambda b: b + b" " * (2 << 20)), "above the limit"),
    "json missing": (_unlink(lambda f: f / META), "is missing"),
    "json symlink": (_symlink_meta, "not a regular file"),
    # faces.npz
    "npz truncated": (_rewrite(_faces, lambda b: b[: len(b) // 2]), r"not an \.npz"),
    "npz not a zip": (_rewrite(_faces, lambda b: os.urandom(len(b))), r"not an \.npz"),
    "npz empty": (_rewrite(_faces, lambda b: b""), r"not an \.npz"),
    "npz missing": (_unlink(_faces), "is missing"),
    "npz fifo": (_fifo_faces, "not a regular file"),
    "npz array missing": (_edit_faces(lambda a: a.pop("texture_points")), "'texture_points' is missing"),
    "npz extra array": (_edit_faces(lambda a: a.__setitem__("extra", np.zeros(3))), "unexpected array 'extra'"),
    "npz wrong shape": (_edit_faces(lambda a: a.__setitem__("landmarks", a["landmarks"][:, :100])), "shape"),
    "npz wrong dtype": (_edit_faces(lambda a: a.__setitem__("landmarks", a["landmarks"].astype(np.int32))),
                        "dtype int32"),
    "npz NaN landmarks": (_edit_faces(lambda a: a["landmarks"].__setitem__((0, 5, 0), np.nan)), "NaN"),
    "npz inf points": (_edit_faces(lambda a: a["texture_points"].__setitem__((3, 1), np.inf)), "infinite"),
    "npz far landmarks": (_edit_faces(lambda a: a.__setitem__("landmarks", a["landmarks"] * 1e4)), "far outside"),
    "npz pickled object": (_edit_faces(lambda a: a.__setitem__("landmarks", np.array([{"x": 1}], dtype=object))),
                           "not a readable array"),
    "npz zip bomb": (_rewrite(_faces, lambda b: zip_bomb()), "inflates to"),
    "npz lying directory": (_rewrite(_faces, lambda b: zip_bomb(64, declared=4096)), "not a readable array"),
    "npz too many members": (_rewrite(_faces, lambda b: _members(17, 16)), "members, above the limit"),
    "npz too large in all": (_rewrite(_faces, lambda b: _members(5, (4 << 20) - 4096)), "inflates to"),
    # the PNGs
    "png truncated": (_rewrite(_texture, lambda b: b[: len(b) // 2]), "not a readable image"),
    "png bit flip": (_rewrite(_texture, _bit_flip), "not a readable image"),
    "png huge": (_rewrite(_texture, lambda b: huge_png(5000, 5000)), "above the limit of 2048"),
    "png bomb": (_rewrite(_texture, lambda b: huge_png()), "too large to open"),
    "png is a jpeg": (_jpeg_texture, "not a PNG"),
    "png not square": (_not_square, "not square"),
    "png source missing": (_unlink(lambda f: f / _meta(f)["sources"][0]["file"]), "is missing"),
    "png thumbnail empty": (_rewrite(lambda f: f / _meta(f)["thumbnail"], lambda b: b""), "empty"),
    # the rest
    "derived strings": (_derived_strings, "expected a number type"),
    "folder is a link": (_folder_link, "not a folder"),
}


# ------------------------------------------------------------------------------------- the store and CLI
@pytest.mark.parametrize("case", DAMAGE, ids=list(DAMAGE))
def test_damage_is_refused_naming_the_preset_and_file(case, root, capsys):
    damage, reason = DAMAGE[case]
    file = damage(root / NAME)
    with pytest.raises(PresetDamaged) as caught:
        PresetStore(root).load(NAME)
    err = caught.value
    assert err.preset == NAME and Path(err.file).name == file, err
    assert re.search(reason, err.reason), err.reason
    assert f"preset {NAME!r} is damaged" in str(err) and "--replace" in str(err)

    assert main(["presets", "show", NAME]) == 2
    out, text = capsys.readouterr()
    assert out == "" and text.count("\n") == 1 and file in text and "Traceback" not in text, text


@pytest.mark.parametrize("case", ["npz NaN landmarks", "npz wrong shape", "json symlink", "png not square",
                                  "npz zip bomb"])
def test_process_refuses_a_damaged_source_in_one_line(case, root, tmp_path, capsys, astronaut_rgb):
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), astronaut_rgb[..., ::-1])
    file = DAMAGE[case][0](root / NAME)
    assert main(["process", str(frame), str(tmp_path / "out"), "--source", NAME, "--engine", "mesh"]) == 2
    text = capsys.readouterr().err
    assert text.count("\n") == 1 and NAME in text and file in text and "Traceback" not in text, text
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_list_marks_damaged_presets_and_fails(root, capsys):
    shutil.copytree(root / NAME, root / "broken")
    (root / "broken" / META).write_text("{not json")
    (root / "empty").mkdir()
    assert main(["presets", "list"]) == 2
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("broken  [damaged: ") and "preset.json" in lines[0]
    assert lines[1].startswith("empty  [damaged: ") and "is missing" in lines[1]
    assert lines[2] == NAME
    assert err.count("\n") == 1 and "'broken', 'empty'" in err and "--replace" in err


def test_zip_bomb_is_refused_from_its_directory_without_inflating(tmp_path):
    bomb = tmp_path / "bomb.npz"
    bomb.write_bytes(zip_bomb(2048))  # 2 MB on disk, 2 GiB inflated
    assert bomb.stat().st_size < 3 << 20
    liar = tmp_path / "liar.npz"
    liar.write_bytes(zip_bomb(256, declared=4096))  # says 4 KiB, inflates to 256 MiB
    for path, reason in ((bomb, "inflates to 2147483"), (liar, "not a readable array")):
        tracemalloc.start()
        try:
            with pytest.raises(files.BadFile, match=reason):
                files.read_npz(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 4 * path.stat().st_size + (1 << 20), (path.name, peak)  # the file, never its content


# ------------------------------------------------------------------------------------- photos
def _photo_cases(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image at all\n")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(cv2.imencode(".jpg", np.full((64, 64, 3), 99, np.uint8))[1].tobytes()[:40])
    huge = tmp_path / "huge.png"
    huge.write_bytes(huge_png(20_000, 1000))
    folder = tmp_path / "a-folder.png"
    folder.mkdir()
    return {"empty": (empty, "empty"), "text": (text, "not a readable image"), "cut": (cut, "image"),
            "huge": (huge, "above the limit"), "folder": (folder, "not a regular file"),
            "missing": (tmp_path / "missing.jpg", "does not exist")}


def test_unreadable_photos_in_add_are_one_line_naming_the_photo(root, tmp_path, capsys):
    for label, (photo, reason) in _photo_cases(tmp_path).items():
        assert main(["presets", "add", "new", str(photo), "--consent", SAMPLE_CONSENT]) == 2, label
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(photo) in err and reason in err and "Traceback" not in err, (label, err)
    assert sorted(p.name for p in root.iterdir()) == [NAME]  # nothing half-made


# ------------------------------------------------------------------------------------- repair and privacy
@pytest.mark.parametrize("case", ["json truncated", "json not an object", "json missing", "folder is a link"])
def test_replace_repairs_a_damaged_preset(case, root, capsys, sample_images_dir):
    DAMAGE[case][0](root / NAME)
    photo = sample_images_dir / "t1.jpg"
    before = {p.name: p.read_bytes() for p in (root / NAME).iterdir() if p.is_file() and not p.is_fifo()}
    # refused: nothing touched
    assert main(["presets", "add", NAME, str(photo), "--face", "0", "--consent", SAMPLE_CONSENT]) == 2
    assert "already exists" in capsys.readouterr().err
    assert before == {p.name: p.read_bytes() for p in (root / NAME).iterdir() if p.is_file() and not p.is_fifo()}
    assert main(["presets", "add", NAME, str(photo), "--face", "0", "--replace", "--consent", SAMPLE_CONSENT]) == 0
    preset = PresetStore(root).load(NAME)
    assert preset.meta["sources"][0]["original"] == "t1.jpg"
    folder = root / NAME
    if case == "folder is a link":  # the link is replaced by a real folder; what it pointed to is kept
        assert not folder.is_symlink() and (root.parent / "linked-preset" / META).is_file()
    else:  # a fresh revision: no file that the damaged preset.json could name was written over
        assert preset.revision >= 2
    from facefusion_obs.presets.schema import referenced_files

    assert {p.name for p in folder.iterdir()} == {META, *referenced_files(preset.meta)}


def test_folders_and_files_are_private_whatever_the_umask(tmp_path, sample_images_dir):
    old = os.umask(0o022)
    try:
        store = PresetStore(tmp_path / "new" / "presets")
        store.add("me", [sample_images_dir / "Tom_Hanks_54745.png"], consent=SAMPLE_CONSENT)
        preset = store.add("me", [sample_images_dir / "t1.jpg"], face_index=0, replace=True, consent=SAMPLE_CONSENT)
        preset.cached_arrays("arcface_w600k_r50", lambda p: {"identity": np.ones(512, np.float32)})
        loose = tmp_path / "loose"
        loose.mkdir(mode=0o755)
        PresetStore(loose).add("other", [sample_images_dir / "Tom_Hanks_54745.png"], consent=SAMPLE_CONSENT)
    finally:
        os.umask(old)
    for top in (store.root, loose):
        assert stat.S_IMODE(top.stat().st_mode) == 0o700, top
        for path in top.rglob("*"):
            want = 0o700 if path.is_dir() else 0o600
            assert stat.S_IMODE(path.stat().st_mode) == want, path


# ------------------------------------------------------------------------------------- live: watcher, worker
def test_watcher_keeps_the_last_good_preset_and_follows_the_repair(root, sample_images_dir):
    store = PresetStore(root)
    (_copy_as(root, "other") / "texture.r1.png").write_bytes(b"")
    watcher = PresetWatcher(NAME, store, interval=0.0)
    good = watcher.preset
    assert good is not None and watcher.failure is None and watcher.problem == ""
    (root / NAME / META).write_text("{}")  # damaged while in use
    assert watcher.poll() is True
    assert watcher.current() is good and isinstance(watcher.failure, PresetDamaged)
    assert watcher.problem.endswith(f"still swapping to {NAME!r} until it loads")
    watcher.follow("other")  # a damaged preset chosen: the good one keeps serving
    assert watcher.preset is good and watcher.failure.preset == "other"
    assert Path(watcher.failure.file).name == "texture.r1.png"
    store.add("other", [sample_images_dir / "t1.jpg"], face_index=0, replace=True, consent=SAMPLE_CONSENT)
    assert watcher.poll() is True and watcher.failure is None
    assert watcher.preset.name == "other" and watcher.preset.revision >= 2


class _Client:
    """OBS's end of a real control connection to an in-process worker."""

    def __init__(self) -> None:
        from facefusion_obs.ipc.control import ControlConnection

        ours, theirs = Pipe()
        self.conn, self.worker_side = ControlConnection(ours), ControlConnection(theirs)

    def errors(self, channel: int) -> list[str]:
        out = []
        while self.conn.poll(0):
            msg = self.conn.recv()
            if msg["type"] == "error" and msg["channel"] == channel:
                out.append(msg["message"])
        return out


def _green_frame(face_rgb: np.ndarray) -> np.ndarray:
    """BGRA: a face photo in the middle of a green screen."""
    h, w = face_rgb.shape[:2]
    bgra = np.zeros((h, w + 256, 4), np.uint8)
    bgra[...] = (40, 200, 40, 255)
    bgra[:, 128:128 + w, :3] = face_rgb[..., ::-1]
    return bgra


def _run(worker, ch, bgra: np.ndarray) -> np.ndarray:
    ch.input.write(lambda s: np.copyto(np.frombuffer(ch.input.slot_view(s), np.uint8).reshape(bgra.shape), bgra),
                   frame_id=1, capture_ns=1)
    assert worker.process_channel(worker.channels[1])
    out = []
    assert ch.output.read(lambda s: out.append(np.frombuffer(ch.output.slot_view(s), np.uint8)
                                               .reshape(bgra.shape).copy())) is not None
    return out[0]


def test_worker_keeps_the_last_good_preset_and_the_matting_when_a_preset_is_damaged(
        root, model_pool, astronaut_rgb, sample_images_dir):
    from facefusion_obs.ipc.frames import FrameChannel
    from facefusion_obs.ipc.shm import unlink
    from facefusion_obs.worker.server import Worker

    bad = _copy_as(root, "bad")
    (bad / _meta(bad)["face_data"]).write_bytes(b"PK\x03\x04 cut short")
    bgra = _green_frame(astronaut_rgb)
    face = (slice(90, 160), slice(128 + 190, 128 + 260))  # inside the astronaut's face
    client = _Client()
    worker = Worker(client.worker_side, model_pool)
    ch = FrameChannel.create(bgra.shape[1], bgra.shape[0])
    try:
        worker._open({"channel": 1, "shm": ch.name, "width": bgra.shape[1], "height": bgra.shape[0]})

        def keyed(rgba: np.ndarray) -> bool:
            return rgba[:, :100, 3].max() < 20 and rgba[face][..., 3].min() == 255

        def swapped(rgba: np.ndarray) -> float:
            return float(np.abs(rgba[face][..., :3].astype(int) - astronaut_rgb[90:160, 190:260]).mean())

        # a damaged preset first: nothing to swap, but the matting works and the problem is reported
        worker._configure(1, {"effect": "pipeline", "matting": "chroma", "preset": "bad"})
        errors = client.errors(1)
        assert any("'bad' is damaged" in e and "faces.r1.npz" in e and "no face swap" in e for e in errors), errors
        plain = _run(worker, ch, bgra)
        assert keyed(plain) and swapped(plain) < 3

        worker._configure(1, {"preset": NAME})
        assert any(f"{NAME!r} loaded and in use" in e for e in client.errors(1))
        good = _run(worker, ch, bgra)
        assert keyed(good) and swapped(good) > 10

        # switching to the damaged one keeps the good face serving, with matting on, and says so
        worker._configure(1, {"preset": "bad", "despill": 0.5})
        errors = client.errors(1)
        assert any("'bad' is damaged" in e and "faces.r1.npz" in e and f"still swapping to {NAME!r}" in e
                   for e in errors), errors
        kept = _run(worker, ch, bgra)
        assert keyed(kept) and swapped(kept) > 10
        assert worker.channels[1].options["despill"] == 0.5  # the other options were applied

        # repaired on disk: followed without another configure
        PresetStore(root).add("bad", [sample_images_dir / "t1.jpg"], face_index=0, replace=True, consent=SAMPLE_CONSENT)
        watcher = worker.channels[1].effect.pipeline.swapper.engine.watcher
        time.sleep(watcher.interval + 0.1)  # the watcher looks at the disk at most every interval
        repaired = _run(worker, ch, bgra)
        worker._recheck(force=True)
        assert any("'bad' loaded and in use" in e for e in client.errors(1))
        assert keyed(repaired) and watcher.preset.name == "bad"
    finally:
        worker._close(1)
        unlink(ch.name)
        ch.close()
