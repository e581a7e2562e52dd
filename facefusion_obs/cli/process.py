"""``facefusion-obs process INPUT OUTPUT_DIR``: run the worker's frame pipeline over files.

INPUT is an image, a video file, or a folder of frames (taken in name order as one stream, so the
temporal state carries from frame to frame). Each frame becomes one straight-alpha RGBA PNG named
after its input frame (``frame_000000.png``… for a video).

Nothing is lost and nothing is half-done (reading and writing live in :mod:`.frame_files`): a run
whose outputs would replace an input is refused before it starts, frames over 8192 pixels on a side
are refused from their header, a ``--source`` the swap could not use is refused before the first
frame, and the PNGs appear in OUTPUT_DIR only when the whole run succeeded (``--keep-partial`` keeps
the finished ones of a failed run).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from facefusion_obs.cli.main import CliError
from facefusion_obs.config import MATTING_MODES, OPTIONS, SWAP_ENGINES


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
    p.add_argument("--keep-partial", action="store_true",
                   help="when a run fails part-way, keep the frames it finished (default: remove them)")
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
        if args.source:  # a swap asked for but never run would pass the frames through unnoticed
            raise CliError(f"--source {args.source!r} needs --engine ({' or '.join(SWAP_ENGINES)}); "
                           "--engine none only mats")
        options["swap_enabled"] = False
    else:
        if not args.source.strip():
            raise CliError(f"--engine {args.engine} needs --source (a face preset name or an image)")
        options.update(swap_enabled=True, engine=args.engine, preset=args.source)
    return validate_options(options)


def check_source(value: str, pool: Any) -> None:
    """Refuse a ``--source`` the swap could not use, before any frame is processed.

    The pipeline's swap engines treat a preset they cannot load as "no preset" and pass frames through
    (right for a live filter, which must keep running); offline, that would be a silent no-op run.
    A photo is analysed here with the run's model pool, so its face models load once.
    """
    import shlex

    from facefusion_obs.cli.frame_files import IMAGE_SUFFIXES, image_size
    from facefusion_obs.models import ModelUnavailable
    from facefusion_obs.presets import resolve_source
    from facefusion_obs.presets.analyse import analyse_photo, read_rgb
    from facefusion_obs.presets.names import PresetError

    path = Path(value.strip()).expanduser()
    try:
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            image_size(path)  # from the header: an empty file or a bomb never reaches the decoder
            found = analyse_photo(read_rgb(path), repr(str(path)), face_index=0, pool=pool).faces_found
            if found > 1:  # the pipeline takes no face index: a preset made with --face carries one
                raise CliError(f"--source {str(path)!r} shows {found} faces and process swaps in one; make a "
                               f"preset of one: facefusion-obs presets add NAME {shlex.quote(str(path))} --face "
                               f"INDEX (0 = largest ... {found - 1} = smallest), then pass --source NAME")
        elif resolve_source(value) is None:
            raise CliError(f"--source {value!r} names no preset or image")
    except PresetError as exc:
        raise CliError(f"--source {value!r}: {exc}") from None
    except ModelUnavailable as exc:
        raise CliError(str(exc)) from None


def process(source: Path, output_dir: Path, options: dict[str, Any], keep_partial: bool = False) -> list[Path]:
    """Run one FramePipeline over ``source``; returns the written files in order."""
    from facefusion_obs.runtime.pool import ModelPool

    with ModelPool() as pool:  # the run's models, loaded once and closed at the end
        return _process(source, output_dir, options, pool, keep_partial)


def _process(source: Path, output_dir: Path, options: dict[str, Any], pool: Any, keep_partial: bool) -> list[Path]:
    import numpy as np

    from facefusion_obs.cli.frame_files import OutputRun, open_source
    from facefusion_obs.config import OptionError
    from facefusion_obs.models import ModelUnavailable
    from facefusion_obs.pipeline.frame import FramePipeline

    frames = open_source(source)
    run = OutputRun(output_dir, frames, keep_partial)  # refuses an output that would replace an input
    if options["swap_enabled"]:
        check_source(str(options["preset"]), pool)
    try:
        pipeline = FramePipeline(options, pool)
    except (OptionError, ModelUnavailable) as exc:
        raise CliError(str(exc)) from exc
    with run:
        try:
            size: tuple[int, int] | None = None
            first = ""
            for name, rgb in frames.frames():
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
                run.write(name, np.asarray(rgba))
        except CliError as exc:
            note = run.abort()  # the one error line also says what became of the finished frames
            raise CliError(f"{exc}; {note}" if note else str(exc)) from None
        return run.commit()


def _run(args: argparse.Namespace) -> int:
    from facefusion_obs.config import OptionError

    try:
        options = build_options(args)
    except OptionError as exc:
        raise CliError(str(exc)) from exc
    written = process(args.input, args.output_dir, options, keep_partial=args.keep_partial)
    print(f"wrote {len(written)} frame{'s' if len(written) != 1 else ''} to {args.output_dir}")
    return 0
