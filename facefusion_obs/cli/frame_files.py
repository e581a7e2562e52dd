"""Frames read from image, video and folder inputs, and RGBA PNGs written for one ``process`` run.

Reading refuses what would hurt the machine or the user before it is decoded:
- an image or video frame larger than :data:`MAX_SIDE` (8192) pixels on a side (the product's frame
  limit, the same one the shared-memory frames have); an image's size is read from its header first,
  so a decompression bomb is never decoded;
- a video that ends early: the decoded frame count is checked against the count the container
  declares, so a truncated file is reported instead of silently yielding fewer frames.

Writing never loses data: :class:`OutputRun` writes every PNG of a run into a hidden staging folder
inside the output folder and moves them into place (one ``os.replace`` per file, so each file appears
whole) only when the run succeeds. A failed run therefore leaves the output folder as it was, files
from earlier runs included, unless ``keep_partial`` moves the finished frames into place. No output
may replace an input file (checked by inode, so symlinks and hard links count).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facefusion_obs.cli.main import CliError
from facefusion_obs.ipc.frames import MAX_SIDE

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# AVI (its index) and MP4/MOV (the sample table) store how many frames they hold, so one missing frame
# there means the file was cut. Other containers (Matroska, WebM...) only store a duration and OpenCV
# estimates the count as duration x fps, which may round up: there a video counts as "ended early" only
# when more than FRAME_COUNT_TOLERANCE frames are missing.
EXACT_COUNT_SUFFIXES = (".avi", ".mp4", ".m4v", ".mov")
FRAME_COUNT_TOLERANCE = 1

STAGING_PREFIX = ".facefusion-obs-partial-"


def _too_large(label: str, width: int | None = None, height: int | None = None) -> CliError:
    size = f" is {width}x{height} pixels;" if width is not None else " is too large;"
    return CliError(f"{label}{size} the limit is {MAX_SIDE} pixels on each side")


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file from its header alone; CliError if unreadable or too large."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:  # lazy: reads the header, decodes nothing
                width, height = image.size
    except Image.DecompressionBombError:
        raise _too_large(f"image {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a readable image file"
        raise CliError(f"cannot read image {path}: {why}") from None
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise _too_large(f"image {path}", width, height)
    return width, height


def read_image(path: Path) -> Any:
    """RGB uint8 (H, W, 3) of an image file, size-checked before decoding; CliError naming it."""
    import cv2
    import numpy as np

    if not path.is_file():
        raise CliError(f"cannot read image {path}: not a file")
    image_size(path)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise CliError(f"cannot read image {path}: {_why(exc)}") from None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise CliError(f"cannot read image {path}: not a readable image file")
    if image.dtype != np.uint8:  # 16-bit PNG/TIFF: keep the top 8 bits
        image = (image >> 8).astype(np.uint8) if image.dtype == np.uint16 else image.astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class FrameSource:
    """One ``process`` input: an image, a folder of images (one stream, name order) or a video."""

    path: Path
    kind: str  # "image" | "folder" | "video"
    files: tuple[Path, ...] = ()  # the image files, in stream order; empty for a video

    def inputs(self) -> tuple[Path, ...]:
        """Every file this source reads (none of them may be overwritten)."""
        return self.files or (self.path,)

    def output_names(self) -> tuple[str, ...] | None:
        """The PNG names this source will write, when they are known before decoding (not for video)."""
        return tuple(f"{p.stem}.png" for p in self.files) if self.files else None

    def frames(self) -> Iterator[tuple[str, Any]]:
        """(output file name, RGB frame) in stream order; CliError for anything unreadable."""
        for name, rgb, _ in self.timed():
            yield name, rgb

    def timed(self, fps: float = 30.0) -> Iterator[tuple[str, Any, float]]:
        """(output file name, RGB frame, frame time in seconds) in stream order.

        The time is the video's own timestamp, or index / ``fps`` for a folder (0 for one image):
        the pipeline's temporal filters run on it, so a run's output never depends on how fast the
        machine is."""
        if self.kind != "video":
            for index, path in enumerate(self.files):
                yield f"{path.stem}.png", read_image(path), index / fps
            return
        yield from _video_frames(self.path)


def open_source(source: Path) -> FrameSource:
    """Classify and list ``source`` without decoding it; CliError when it cannot be used."""
    st = _probe(source, "input")
    if st is None:
        raise CliError(f"input {source} does not exist")
    if stat.S_ISDIR(st.st_mode):
        try:
            files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        except OSError as exc:
            raise CliError(f"cannot list input folder {source}: {_why(exc)}") from None
        if not files:
            raise CliError(f"folder {source} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        stems = [p.stem for p in files]
        clash = sorted({s for s in stems if stems.count(s) > 1})
        if clash:
            raise CliError(f"folder {source}: several frames would write {clash[0]}.png "
                           "(same name, different extensions)")
        return FrameSource(source, "folder", tuple(files))
    if not stat.S_ISREG(st.st_mode):  # a FIFO or a device would block the decoder or never end
        raise CliError(f"input {source} is not a regular file or folder")
    if source.suffix.lower() in IMAGE_SUFFIXES:
        return FrameSource(source, "image", (source,))
    return FrameSource(source, "video")


def _video_frames(source: Path) -> Iterator[tuple[str, Any, float]]:
    # A damaged file makes the decoders print to file descriptor 2, which would bury the one-line error
    # below. libav is quietened by this setting (OpenCV reads it when it first opens a video in the
    # process: the CLI's case; a value the user set is kept); OpenCV's fallback readers (its own MJPEG
    # one, GStreamer) print unconditionally, so FFmpeg, which reads every common container, is the only
    # backend tried where the build has it.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    import cv2

    backend = cv2.CAP_FFMPEG if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG) else cv2.CAP_ANY
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # "can't open" is said below
    try:
        capture = cv2.VideoCapture(str(source), backend)
    finally:
        cv2.utils.logging.setLogLevel(level)
    try:
        if not capture.isOpened():
            raise CliError(f"cannot read {source}: not an image, or a video that is damaged (an MP4 cut "
                           "short loses its index) or in a format OpenCV cannot open")
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width > MAX_SIDE or height > MAX_SIDE:
            raise _too_large(f"video {source}", width, height)
        declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        rate = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        rate = rate if 0.0 < rate <= 1000.0 else 30.0
        index, last = 0, -1.0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if max(frame.shape[:2]) > MAX_SIDE:
                raise _too_large(f"video {source} frame {index}", frame.shape[1], frame.shape[0])
            # the frame's presentation time; where the container gives none (or not increasing ones),
            # index / the declared rate
            stamp = float(capture.get(cv2.CAP_PROP_POS_MSEC) or 0.0) / 1e3
            t = stamp if stamp > last else (index / rate if index / rate > last else last + 1.0 / rate)
            last = t
            yield f"frame_{index:06d}.png", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), t
            index += 1
        if index == 0:
            raise CliError(f"cannot read {source}: the video has no readable frames")
        tolerance = 0 if source.suffix.lower() in EXACT_COUNT_SUFFIXES else FRAME_COUNT_TOLERANCE
        if declared > 0 and index < declared - tolerance:
            raise CliError(f"video {source} ends early: only {index} of the {declared} frames its "
                           "container declares could be decoded (a truncated or damaged file)")
    finally:
        capture.release()


def write_png_atomic(path: Path, rgba: Any) -> None:
    """Write an RGBA image as PNG through a temporary file in the same folder and os.replace.

    OSError passes through unchanged (the caller names the file); nothing partial is left behind.
    """
    import cv2

    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    if not ok:
        raise CliError(f"cannot encode {path.name} as PNG")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(encoded.tobytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _probe(path: Path, label: str) -> os.stat_result | None:
    """``stat`` with "not there" as None; any other OSError (a name too long, a symlink loop, a path
    the kernel refuses) is one line naming the path, where ``Path.exists`` would raise a traceback."""
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise CliError(f"{label} {path}: {_why(exc)}") from None


class OutputRun:
    """The PNGs of one run: staged in a hidden folder, moved into ``output_dir`` by :meth:`commit`.

    Use as a context manager: leaving it with an exception calls :meth:`abort`, which removes what
    this run wrote (and the folders it created, if empty), or with ``keep_partial`` moves the
    finished frames into place.
    """

    def __init__(self, output_dir: Path, source: FrameSource, keep_partial: bool = False) -> None:
        self.output_dir, self.keep_partial = output_dir, keep_partial
        self._inputs = {i for i in map(_identity, source.inputs()) if i is not None}
        self._names: list[str] = []
        self._created: list[Path] = []  # the folders this run creates, innermost first
        self._staging: Path | None = None
        check_output_dir(output_dir, source)

    def __enter__(self) -> OutputRun:
        for folder in (self.output_dir, *self.output_dir.parents):
            if _probe(folder, "output folder") is not None:
                break
            self._created.append(folder)
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._remove_created()  # mkdir(parents=True) may fail after making some of them
            raise CliError(f"cannot create output folder {self.output_dir}: {_why(exc)}") from None
        try:
            self._staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.output_dir))
        except OSError as exc:
            self._remove_created()
            raise CliError(f"cannot write to output folder {self.output_dir}: {_why(exc)}") from None
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()

    @property
    def count(self) -> int:
        return len(self._names)

    def write(self, name: str, rgba: Any) -> None:
        """Stage one finished frame; OSError becomes one line naming the file."""
        assert self._staging is not None, "OutputRun used outside its with-block"
        try:
            write_png_atomic(self._staging / name, rgba)
        except OSError as exc:
            raise CliError(f"cannot write {self.output_dir / name}: {_why(exc)}") from None
        self._names.append(name)

    def commit(self) -> list[Path]:
        """Move every staged frame into place; returns the final paths in stream order."""
        assert self._staging is not None, "OutputRun used outside its with-block"
        # every target is checked before the first move, so a refusal leaves the folder as it was
        for name in self._names:
            target = self.output_dir / name
            st = _probe(target, "output")
            if st is None:
                continue
            if (st.st_dev, st.st_ino) in self._inputs:  # a video's outputs, or a link made meanwhile
                raise CliError(f"output {target} is an input file; choose another output folder")
            if stat.S_ISDIR(st.st_mode):
                raise CliError(f"cannot write {target}: a folder of that name is in the way")
        written = []
        for name in self._names:
            target = self.output_dir / name
            try:
                os.replace(self._staging / name, target)
            except OSError as exc:
                raise CliError(f"cannot write {target}: {_why(exc)}") from None
            written.append(target)
        self._names.clear()
        shutil.rmtree(self._staging, ignore_errors=True)
        self._staging = None
        return written

    def abort(self) -> str:
        """After a fatal error: drop (or, with keep_partial, keep) this run's frames; says which."""
        if self._staging is None:
            return ""
        count = self.count
        note = f"removed the {count} frame(s) this run wrote (--keep-partial keeps them)"
        if self.keep_partial and count:
            try:
                self.commit()
                note = f"kept the {count} finished frame(s) in {self.output_dir} (--keep-partial)"
            except CliError as exc:
                note = f"could not keep the finished frames: {exc}"
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        self._remove_created()
        return note if count else ""

    def _remove_created(self) -> None:
        """Remove the folders this run created, innermost first, as long as they are empty."""
        for folder in self._created:
            try:
                folder.rmdir()
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    return  # something else wrote there: keep it and the folders above it
                # otherwise mkdir stopped before this one (not there, a name too long...): go on up
        self._created = []


def check_output_dir(output_dir: Path, source: FrameSource) -> None:
    """Refuse an output folder that is a file, is the input folder, or would overwrite an input."""
    st = _probe(output_dir, "output folder")
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise CliError(f"output folder {output_dir} is a file, not a folder")
    if st is None:
        for parent in output_dir.parents:
            parent_st = _probe(parent, "output folder")
            if parent_st is not None:
                if not stat.S_ISDIR(parent_st.st_mode):
                    raise CliError(f"cannot create output folder {output_dir}: {parent} is a file")
                break
    if source.kind == "folder" and st is not None and (st.st_dev, st.st_ino) == _identity(source.path):
        raise CliError(f"output folder {output_dir} is the input folder; choose another one")
    inputs = {_identity(path): path for path in source.inputs()}
    inputs.pop(None, None)
    for name in source.output_names() or ():
        target = output_dir / name
        hit = inputs.get(_identity(target))
        if hit is not None:  # the same file, or a symlink or hard link to it
            raise CliError(f"output {target} would overwrite the input {hit}; choose another output folder")
