"""A preset's files, read and written safely: private modes, atomic writes, limits a hostile file cannot pass.

A preset is personal data (photos of a face), so its folders are created 0700 and its files 0600,
whatever the umask. Every read checks what it can before spending memory on it:

- any preset file: a regular file (not a link, folder or FIFO) of at most ``MAX_FILE_BYTES`` (64 MiB);
- ``preset.json``: at most ``MAX_JSON_BYTES`` (1 MiB), nested at most ``MAX_JSON_DEPTH`` (16) deep;
- ``.npz``: at most ``MAX_NPZ_MEMBERS`` (16) members, each at most ``MAX_NPZ_MEMBER_BYTES`` (4 MiB) and
  ``MAX_NPZ_TOTAL_BYTES`` (16 MiB) in all once decompressed. The sizes come from the zip's central
  directory and are checked before anything is decompressed; a member whose data runs past its
  declared size fails the zip's own CRC check, so a lying directory cannot pass either. No pickle.
- images: the size comes from the file's header and is checked before decoding: a photo given to
  ``presets add`` at most ``MAX_PHOTO_SIDE`` (16384) px on a side, ``MAX_PHOTO_PIXELS`` (50 million
  pixels) and ``MAX_PHOTO_BYTES`` (256 MiB); a preset's own PNGs at most ``MAX_STORED_SIDE`` (2048) px on a
  side.

Problems raise :class:`BadFile` (a PresetError) naming the file; the store adds the preset's name.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import struct
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facefusion_obs.presets.names import PresetError

MAX_FILE_BYTES = 64 << 20
MAX_JSON_BYTES = 1 << 20
MAX_JSON_DEPTH = 16
MAX_NPZ_MEMBERS = 16
MAX_NPZ_MEMBER_BYTES = 4 << 20
MAX_NPZ_TOTAL_BYTES = 16 << 20
MAX_PHOTO_SIDE = 16384
MAX_PHOTO_PIXELS = 50_000_000
MAX_PHOTO_BYTES = 256 << 20  # an uncompressed TIFF of MAX_PHOTO_PIXELS is 150 MB
MAX_STORED_SIDE = 2048
DIR_MODE, FILE_MODE = 0o700, 0o600


class BadFile(PresetError):
    """One file is missing, unreadable or not what it should be. ``missing`` tells "not there" apart."""

    def __init__(self, path: Path, reason: str, *, missing: bool = False) -> None:
        self.path, self.reason, self.missing = Path(path), reason, missing
        super().__init__(f"{path}: {reason}")


# ------------------------------------------------------------------------------------- folders
def make_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) and make it 0700, whatever the umask."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)


# ------------------------------------------------------------------------------------- reading
def read_bytes(path: Path, limit: int = MAX_FILE_BYTES, *, follow_links: bool = False) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (a FIFO would hang, and inside a preset a
    link could lead anywhere; a photo the user names may be a link, hence ``follow_links``).

    Checked before opening, and again on the open file (it may have been swapped in between); only the
    file's own size is allocated, never ``limit``."""
    try:
        st = os.stat(path) if follow_links else os.lstat(path)
    except FileNotFoundError:
        raise BadFile(path, "is missing", missing=True) from None
    except OSError as exc:
        raise BadFile(path, f"cannot be read ({exc.strerror or exc})") from None
    _check_regular(path, st, limit)
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        with os.fdopen(os.open(path, flags), "rb") as fh:
            st = os.fstat(fh.fileno())
            _check_regular(path, st, limit)
            data = fh.read(st.st_size + 1)
    except OSError as exc:
        raise BadFile(path, f"cannot be read ({exc.strerror or exc})") from None
    if len(data) != st.st_size:
        raise BadFile(path, "changed while being read")
    return data


def _check_regular(path: Path, st: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise BadFile(path, "is not a regular file")
    if st.st_size > limit:
        raise BadFile(path, f"is {st.st_size} bytes, above the limit of {limit}")


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of parsed JSON, giving up once past ``limit`` (iterative: no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def read_json(path: Path) -> Any:
    data = read_bytes(path, MAX_JSON_BYTES)
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise BadFile(path, "is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise BadFile(path, f"is not valid JSON ({exc})") from None
    except (RecursionError, ValueError) as exc:
        raise BadFile(path, f"is not valid JSON ({exc})") from None
    if _depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise BadFile(path, f"is nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz``, refusing before decompression anything above the limits."""
    data = read_bytes(path)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise BadFile(path, f"is not an .npz (zip) file ({exc})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_NPZ_MEMBERS:
            raise BadFile(path, f"has {len(infos)} members, above the limit of {MAX_NPZ_MEMBERS}")
        total = 0
        for info in infos:
            if not info.filename.endswith(".npy") or "/" in info.filename or "\\" in info.filename:
                raise BadFile(path, f"member {info.filename!r} is not a .npy array")
            if info.file_size > MAX_NPZ_MEMBER_BYTES:
                raise BadFile(path, f"member {info.filename!r} inflates to {info.file_size} bytes, above "
                                    f"the limit of {MAX_NPZ_MEMBER_BYTES}")
            total += info.file_size
        if total > MAX_NPZ_TOTAL_BYTES:
            raise BadFile(path, f"inflates to {total} bytes, above the limit of {MAX_NPZ_TOTAL_BYTES}")
        arrays: dict[str, np.ndarray] = {}
        for info in infos:
            key = info.filename[:-4]
            if key in arrays:
                raise BadFile(path, f"member {info.filename!r} appears twice")
            try:
                with zf.open(info) as member:
                    raw = member.read(info.file_size + 1)
                if len(raw) != info.file_size:
                    raise ValueError("size differs from the zip directory")
                arrays[key] = np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
            except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError,
                    RuntimeError, SyntaxError, TypeError) as exc:
                raise BadFile(path, f"member {info.filename!r} is not a readable array ({exc})") from None
    return arrays


def image_size(path: Path, data: bytes | None = None, *, verify: bool = False) -> tuple[str, int, int]:
    """(format, width, height) from an image's header, without decoding its pixels; from ``data`` if
    given, else from the file. ``verify`` also checks the file's own checksums (a PNG's chunk CRCs), which
    catches truncation and bit rot without decoding either."""
    from PIL import Image, UnidentifiedImageError

    if data is not None and not data:
        raise BadFile(path, "is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data) if data is not None else path) as im:
                size = str(im.format), int(im.width), int(im.height)
                if verify:
                    im.verify()
                return size
    except Image.DecompressionBombError as exc:
        raise BadFile(path, f"is too large to open ({exc})") from None
    except UnidentifiedImageError:
        raise BadFile(path, "is not a readable image (truncated, damaged or not an image format)") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        raise BadFile(path, f"is not a readable image ({exc})") from None


def decode_rgb(path: Path, data: bytes) -> np.ndarray:
    """Decode image bytes to RGB uint8; a decoder failure is a BadFile naming ``path``."""
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise BadFile(path, f"could not be decoded ({str(exc).strip().splitlines()[-1]})") from None
    if bgr is None:
        raise BadFile(path, "could not be decoded")
    return np.ascontiguousarray(bgr[..., ::-1])


def png_size(path: Path, data: bytes, max_side: int = MAX_STORED_SIDE) -> tuple[int, int]:
    """(width, height) of a preset's own PNG from its header, checksums verified; refused above
    ``max_side`` px on a side before anything is decoded."""
    fmt, width, height = image_size(path, data, verify=True)
    if fmt != "PNG":
        raise BadFile(path, f"is a {fmt} image, not a PNG")
    if max(width, height) > max_side:
        raise BadFile(path, f"is {width}x{height} px, above the limit of {max_side} px on a side")
    return width, height


def read_png(path: Path, max_side: int = MAX_STORED_SIDE) -> np.ndarray:
    """A preset's own PNG as RGB uint8, size-checked (``png_size``) before decoding."""
    data = read_bytes(path)
    png_size(path, data, max_side)
    return decode_rgb(path, data)


def check_photo_size(path: Path) -> None:
    """Refuse, from its header, a photo above ``MAX_PHOTO_SIDE`` or ``MAX_PHOTO_PIXELS``."""
    if not path.exists():
        raise BadFile(path, "does not exist", missing=True)
    if not path.is_file():  # a FIFO would block the header read
        raise BadFile(path, "is not a regular file")
    if path.stat().st_size == 0:
        raise BadFile(path, "is empty (0 bytes)")
    _, width, height = image_size(path)
    if max(width, height) > MAX_PHOTO_SIDE:
        raise BadFile(path, f"is {width}x{height} px, above the limit of {MAX_PHOTO_SIDE} px on a side")
    if width * height > MAX_PHOTO_PIXELS:
        raise BadFile(path, f"is {width}x{height} px ({width * height} pixels), above the limit of "
                            f"{MAX_PHOTO_PIXELS} pixels")


# ------------------------------------------------------------------------------------- writing
def write_atomic(path: Path, write: Callable[[Any], None]) -> None:
    """Write through ``write(binary file)`` to a private temporary file, then rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            os.chmod(tmp, FILE_MODE)  # the umask may have masked O_CREAT's mode; never widen it either
            write(fh)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_png(path: Path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise PresetError(f"could not encode {path.name}")
    write_atomic(path, lambda fh: fh.write(buf.tobytes()))


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays as an ``.npz``; refused if reading it back would be (object dtype, above the limits)."""
    values = {k: np.asarray(v) for k, v in arrays.items()}
    for key, value in values.items():
        if value.dtype == object:
            raise PresetError(f"array {key!r} has dtype object, which cannot be stored without pickle")
        if value.nbytes > MAX_NPZ_MEMBER_BYTES - 4096:
            raise PresetError(f"array {key!r} is {value.nbytes} bytes, above the limit of {MAX_NPZ_MEMBER_BYTES}")
    if len(values) > MAX_NPZ_MEMBERS or sum(v.nbytes for v in values.values()) > MAX_NPZ_TOTAL_BYTES - 65536:
        raise PresetError(f"{path.name}: too many or too large arrays for a preset")
    write_atomic(path, lambda fh: np.savez(fh, **values))


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    write_atomic(path, lambda fh: fh.write(text.encode("utf-8")))
