"""``facefusion-obs process INPUT OUTPUT_DIR``: run the worker's frame pipeline over files.

INPUT is an image, a video file, or a folder of frames (taken in name order as one stream, so the
temporal state carries from frame to frame). Each frame becomes one straight-alpha RGBA PNG named
after its input frame (``frame_000000.png``… for a video). Every file is written to a temporary
name first and moved into place, so a reader never sees half a PNG.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from facefusion_obs.config import MATTING_MODES, OPTIONS, SWAP_ENGINES

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


# every numeric matting option becomes a flag of the same name, so the CLI and the OBS sliders agree
TUNING = tuple(o for o in OPTIONS if o.group == "Matting" and o.kind in ("float", "int"))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("process", help="process an image, a video or a folder of frames into RGBA PNGs",
                       description=__doc__.splitlines()[0])
    p.add_argument("input", type=Path, help="image, video file, or folder of frames")
    p.add_argument("output_dir", type=Path, help="folder for the RGBA PNGs (created if missing)")
    p.add_argument("--engine", choices=("none", *SWAP_ENGINES), default="none",
                   help="face swap engine; 'none' only mats (default)")
    p.add_argument("--source", default="", help="face preset name or source image (with --engine)")
    p.add_argument("--matting", choices=MATTING_MODES, default="chroma", help="matting mode (default chroma)")
    p.add_argument("--key-color", default="green", help="green, blue, auto or #RRGGBB (default green)")
    for option in TUNING:
        p.add_argument(_flag(option.key), type=float, default=None, dest=option.key,
                       help=f"{option.tooltip} ({option.minimum}..{option.maximum}, default {option.default})")
    p.set_defaults(handler=_run)


def build_options(args: argparse.Namespace) -> dict[str, Any]:
    """The pipeline options for these arguments, validated (OptionError names a bad field)."""
    from facefusion_obs.config import validate_options

    options: dict[str, Any] = {"matting": args.matting, "key_color": args.key_color}
    for option in TUNING:
        value = getattr(args, option.key)
        if value is not None:
            options[option.key] = value
    if args.engine == "none":
        options["swap_enabled"] = False
    else:
        if not args.source:
            from facefusion_obs.cli.main import CliError

            raise CliError(f"--engine {args.engine} needs --source (a face preset name or an image)")
        options.update(swap_enabled=True, engine=args.engine, preset=args.source)
    return validate_options(options)


def _read_image(path: Path) -> Any:
    """RGB uint8 (H, W, 3) of an image file, or CliError naming it."""
    import cv2
    import numpy as np

    from facefusion_obs.cli.main import CliError

    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data is not None and data.size else None
    if image is None:
        raise CliError(f"cannot read image {path}: not a readable image file")
    if image.dtype != np.uint8:  # 16-bit PNG/TIFF: keep the top 8 bits
        image = (image >> 8).astype(np.uint8) if image.dtype == np.uint16 else image.astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def iter_frames(source: Path) -> Iterator[tuple[str, Any]]:
    """(output file name, RGB frame) in stream order; CliError for anything unreadable."""
    import cv2

    from facefusion_obs.cli.main import CliError

    if not source.exists():
        raise CliError(f"input {source} does not exist")
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise CliError(f"folder {source} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        stems = [p.stem for p in files]
        clash = sorted({s for s in stems if stems.count(s) > 1})
        if clash:
            raise CliError(f"folder {source}: several frames would write {clash[0]}.png "
                           "(same name, different extensions)")
        for path in files:
            yield f"{path.stem}.png", _read_image(path)
        return
    if source.suffix.lower() in IMAGE_SUFFIXES:
        yield f"{source.stem}.png", _read_image(source)
        return
    capture = cv2.VideoCapture(str(source))
    try:
        if not capture.isOpened():
            raise CliError(f"cannot read {source}: not an image or a video OpenCV can open")
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            yield f"frame_{index:06d}.png", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
        if index == 0:
            raise CliError(f"cannot read {source}: the video has no readable frames")
    finally:
        capture.release()


def write_png_atomic(path: Path, rgba: Any) -> None:
    """Write an RGBA image as PNG through a temporary file in the same folder and os.replace."""
    import cv2

    from facefusion_obs.cli.main import CliError

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


def process(source: Path, output_dir: Path, options: dict[str, Any]) -> list[Path]:
    """Run one FramePipeline over ``source``; returns the written files in order."""
    from facefusion_obs.runtime.pool import ModelPool

    with ModelPool() as pool:  # the run's models, loaded once and closed at the end
        return _process(source, output_dir, options, pool)


def _process(source: Path, output_dir: Path, options: dict[str, Any], pool: Any) -> list[Path]:
    import numpy as np

    from facefusion_obs.cli.main import CliError
    from facefusion_obs.config import OptionError
    from facefusion_obs.models import ModelUnavailable
    from facefusion_obs.pipeline.frame import FramePipeline

    if source.is_dir() and output_dir.resolve() == source.resolve():
        raise CliError(f"output folder {output_dir} is the input folder; choose another one")
    try:
        pipeline = FramePipeline(options, pool)
    except (OptionError, ModelUnavailable) as exc:
        raise CliError(str(exc)) from exc
    output_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    size: tuple[int, int] | None = None
    first = ""
    for name, rgb in iter_frames(source):
        if size is None:
            size, first = rgb.shape[:2], name
        elif rgb.shape[:2] != size:
            raise CliError(f"frame {name} is {rgb.shape[1]}x{rgb.shape[0]} but {first} is "
                           f"{size[1]}x{size[0]}: all frames of one stream must have the same size")
        bgra = np.empty((*rgb.shape[:2], 4), np.uint8)
        bgra[..., :3] = rgb[..., ::-1]
        bgra[..., 3] = 255
        try:
            rgba = pipeline.process(bgra)
        except (OptionError, ModelUnavailable) as exc:
            raise CliError(str(exc)) from exc
        target = output_dir / name
        write_png_atomic(target, np.asarray(rgba))
        written.append(target)
    return written


def _run(args: argparse.Namespace) -> int:
    from facefusion_obs.cli.main import CliError
    from facefusion_obs.config import OptionError

    try:
        options = build_options(args)
    except OptionError as exc:
        raise CliError(str(exc)) from exc
    written = process(args.input, args.output_dir, options)
    print(f"wrote {len(written)} frame{'s' if len(written) != 1 else ''} to {args.output_dir}")
    return 0
