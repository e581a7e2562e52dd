"""``facefusion-obs process INPUT OUTPUT_DIR``: run the worker's frame pipeline over files.

INPUT is an image, a video file, or a folder of frames (taken in name order as one stream, so the
temporal state carries from frame to frame). Each frame becomes one straight-alpha RGBA PNG named
after its input frame (``frame_000000.png``… for a video). Tracking and smoothing run on frame time
(the video's timestamps, or index / ``--fps`` for a folder), so the same input gives the same bytes on
any machine. Every filter option of ``config.OPTIONS`` is a flag (``--max-faces 2``...), except the
few that only OBS can carry out (``OBS_ONLY``).

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


# The options that have a flag of their own below (with offline defaults: matting chroma, no swap), and
# the ones that mean nothing offline because OBS itself carries them out (there is no camera to cover
# and no filter to switch off). Every other option in config.OPTIONS becomes a flag of the same name,
# generated, so the CLI and the filter take the same settings and a new option needs no CLI code.
OWN_FLAGS = {"swap_enabled": "--engine none", "engine": "--engine", "preset": "--source", "matting": "--matting",
             "key_color": "--key-color"}
OBS_ONLY = {
    "enabled": "switches the filter off in OBS; offline, do not run process",
    "effect": "the worker's diagnostics; process always runs the pipeline",
    "privacy": "OBS draws the cover over the camera; offline there is no live camera to hide",
    "cover_image": "the cover drawn by OBS with privacy on",
}
OPTION_FLAGS = tuple(o for o in OPTIONS if o.key not in OWN_FLAGS and o.key not in OBS_ONLY)
MAX_FPS = 1000.0
DEFAULT_FPS = 30.0  # a folder of frames without --fps


def parse_fps(text: str | None) -> float | None:
    """``--fps`` as a number, or None when not given; CliError (one line) when it is no frame rate."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise CliError(f"--fps {text!r} is not a number of frames per second") from None
    if not 0 < value <= MAX_FPS:
        raise CliError(f"--fps {text!r} is outside 0..{MAX_FPS:g} frames per second")
    return value


def _add_option_flag(p: argparse.ArgumentParser, option: Any) -> None:
    """One flag for ``option``, typed by its kind (choices for a choice, --x/--no-x for a bool)."""
    default = f"default {option.default}"
    if option.kind == "bool":
        p.add_argument(_flag(option.key), action=argparse.BooleanOptionalAction, default=None, dest=option.key,
                       help=f"{option.tooltip} ({default})")
    elif option.kind == "choice":
        p.add_argument(_flag(option.key), choices=option.choices, default=None, dest=option.key,
                       help=f"{option.tooltip} ({default})")
    elif option.kind in ("float", "int"):
        # parsed as a number of either kind: config's validation names the field when it is not whole
        p.add_argument(_flag(option.key), type=float, default=None, dest=option.key,
                       help=f"{option.tooltip} ({option.minimum:g}..{option.maximum:g}, {default})")
    else:
        p.add_argument(_flag(option.key), default=None, dest=option.key, help=f"{option.tooltip} ({default})")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("process", help="process an image, a video or a folder of frames into RGBA PNGs",
                       description=__doc__.splitlines()[0])
    p.add_argument("input", type=Path, help="image, video file, or folder of frames")
    p.add_argument("output_dir", type=Path, help="folder for the RGBA PNGs (created if missing)")
    p.add_argument("--engine", choices=("none", *SWAP_ENGINES), default="none",
                   help="face swap engine; 'none' only mats (default)")
    p.add_argument("--source", default="", help="face preset name or source image (with --engine)")
    p.add_argument("--consent", default=None, metavar="TEXT",
                   help="with --source IMAGE: who agreed to be used, when and how (a preset records its own)")
    p.add_argument("--matting", choices=MATTING_MODES, default="chroma", help="matting mode (default chroma)")
    p.add_argument("--key-color", default="green", help="green, blue, auto or #RRGGBB (default green)")
    p.add_argument("--keep-partial", action="store_true",
                   help="when a run fails part-way, keep the frames it finished (default: remove them)")
    p.add_argument("--fps", default=None,
                   help="frame rate of a folder of frames, for tracking and smoothing (default 30; a video "
                        "carries its own timestamps)")
    for option in OPTION_FLAGS:
        _add_option_flag(p, option)
    p.set_defaults(handler=_run)


def build_options(args: argparse.Namespace) -> dict[str, Any]:
    """The pipeline options for these arguments, validated (OptionError names a bad field)."""
    from facefusion_obs.config import validate_options

    options: dict[str, Any] = {"matting": args.matting, "key_color": args.key_color}
    for option in OPTION_FLAGS:
        value = getattr(args, option.key)
        if value is not None:
            options[option.key] = int(value) if option.kind == "int" and value == int(value) else value
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


def check_source(value: str, pool: Any, consent: str | None = None) -> None:
    """Refuse a ``--source`` the swap could not use, before any frame is processed.

    The pipeline's swap engines treat a preset they cannot load as "no preset" and pass frames through
    (right for a live filter, which must keep running); offline, that would be a silent no-op run.
    A photo is analysed here with the run's model pool, so its face models load once.

    Consent is checked once the source is known to be usable: a photo needs ``consent`` (``--consent``),
    a stored preset its own recorded statement (``presets consent`` adds one to an older preset).
    """
    import shlex

    from facefusion_obs.cli.frame_files import IMAGE_SUFFIXES, image_size
    from facefusion_obs.models import ModelUnavailable
    from facefusion_obs.presets import resolve_source
    from facefusion_obs.presets.analyse import analyse_photo, read_rgb
    from facefusion_obs.presets.consent import ConsentMissing
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
            _check_photo_consent(str(path), consent)
        elif (preset := resolve_source(value)) is None:
            raise CliError(f"--source {value!r} names no preset or image")
        elif consent is not None:
            raise CliError(f"--consent is for --source IMAGE; preset {preset.name!r} records its own (change it "
                           f"with: facefusion-obs presets consent {shlex.quote(preset.name)} TEXT --replace)")
        elif preset.consent is None:
            raise ConsentMissing(preset.name)
    except PresetError as exc:
        raise CliError(f"--source {value!r}: {exc}") from None
    except ModelUnavailable as exc:
        raise CliError(str(exc)) from None


def _check_photo_consent(photo: str, consent: str | None) -> None:
    """A photo carries no consent of its own: swapping it in needs ``--consent``, checked like a preset's."""
    from facefusion_obs.presets.consent import EXAMPLE, check_statement

    if consent is None:
        raise CliError(f"--source {photo!r} is a photo: swapping its face in needs the consent of the person "
                       f"pictured: --consent {EXAMPLE} (or make a preset: facefusion-obs presets add NAME PHOTO "
                       "--consent TEXT)")
    check_statement(consent)


def process(source: Path, output_dir: Path, options: dict[str, Any], keep_partial: bool = False,
            consent: str | None = None, fps: float | None = None) -> list[Path]:
    """Run one FramePipeline over ``source``; returns the written files in order. ``consent`` is the
    statement for a photo given as the source (a stored preset records its own)."""
    from facefusion_obs.runtime.pool import ModelPool

    with ModelPool() as pool:  # the run's models, loaded once and closed at the end
        return _process(source, output_dir, options, pool, keep_partial, consent, fps)


def _process(source: Path, output_dir: Path, options: dict[str, Any], pool: Any, keep_partial: bool,
             consent: str | None = None, fps: float | None = None) -> list[Path]:
    import numpy as np

    from facefusion_obs.cli.frame_files import OutputRun, open_source
    from facefusion_obs.config import OptionError
    from facefusion_obs.models import ModelUnavailable
    from facefusion_obs.pipeline.frame import FramePipeline

    frames = open_source(source)
    if fps is not None and frames.kind == "video":
        raise CliError(f"--fps is for a folder of frames: video {source} carries its own timestamps")
    run = OutputRun(output_dir, frames, keep_partial)  # refuses an output that would replace an input
    if options["swap_enabled"]:
        check_source(str(options["preset"]), pool, consent)
    try:
        pipeline = FramePipeline(options, pool)
    except (OptionError, ModelUnavailable) as exc:
        raise CliError(str(exc)) from exc
    with run:
        try:
            size: tuple[int, int] | None = None
            first = ""
            # frame times (the video's timestamps, or index / fps): tracking and smoothing run on them,
            # so the output is the same on any machine, however fast
            for name, rgb, t in frames.timed(fps or DEFAULT_FPS):
                if size is None:
                    size, first = rgb.shape[:2], name
                elif rgb.shape[:2] != size:
                    raise CliError(f"frame {name} is {rgb.shape[1]}x{rgb.shape[0]} but {first} is "
                                   f"{size[1]}x{size[0]}: all frames of one stream must have the same size")
                bgra = np.empty((*rgb.shape[:2], 4), np.uint8)
                bgra[..., :3] = rgb[..., ::-1]
                bgra[..., 3] = 255
                try:
                    rgba = pipeline.process(bgra, t=t)
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
    if args.consent is not None and not options["swap_enabled"]:
        raise CliError("--consent goes with --source IMAGE and --engine: nothing is swapped without them")
    written = process(args.input, args.output_dir, options, keep_partial=args.keep_partial, consent=args.consent,
                      fps=parse_fps(args.fps))
    print(f"wrote {len(written)} frame{'s' if len(written) != 1 else ''} to {args.output_dir}")
    return 0
