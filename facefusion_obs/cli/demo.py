"""``facefusion-obs demo [--out DIR] [--no-launch] [--frames N] [--preset NAME]``.

Writes a ready OBS scene collection (green-screen clip with the filter over a virtual background) and
opens OBS on it. Where OBS cannot be shown (no display, or ``--no-launch``) it runs the very same
pipeline over the clip and writes the result to files instead, so the demo proves itself anywhere.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from facefusion_obs.cli.main import CliError


def register(sub: argparse._SubParsersAction) -> None:
    from facefusion_obs.demo.assets import DEFAULT_FRAMES, PRESET_NAME

    p = sub.add_parser("demo", help="write a ready OBS demo scene and open it (or render it to files)")
    p.add_argument("--out", default="out/demo", help="folder for the headless render (default: out/demo)")
    p.add_argument("--no-launch", action="store_true",
                   help="do not start OBS: write the scene collection and render the demo to files")
    p.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                   help=f"length of the demo clip in frames at 30 fps (default: {DEFAULT_FRAMES})")
    p.add_argument("--preset", default=PRESET_NAME,
                   help=f"name of the demo's face preset (default: {PRESET_NAME}); an existing preset "
                        "of that name is used only if the demo made it")
    p.set_defaults(handler=_run)


def has_display() -> bool:
    """Whether a window can be shown: always on Windows/macOS, X11 or Wayland elsewhere."""
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def obs_command() -> tuple[list[str], Path | None] | None:
    """How to start OBS here, and the folder it must start in (Windows OBS needs its bin folder)."""
    if sys.platform == "darwin":
        app = Path("/Applications/OBS.app")
        return (["open", "-a", str(app), "--args"], None) if app.exists() else None
    if sys.platform == "win32":
        found = shutil.which("obs64")
        exe = Path(found) if found else (Path(os.environ.get("PROGRAMFILES", r"C:\Program Files"))
                                         / "obs-studio" / "bin" / "64bit" / "obs64.exe")
        return ([str(exe)], exe.parent) if exe.exists() else None
    found = shutil.which("obs")
    return ([found], None) if found else None


def _prepare(args: argparse.Namespace, pool: Any):
    from facefusion_obs.demo.assets import prepare_assets
    from facefusion_obs.demo.clip import ClipRenderer, DemoClipError
    from facefusion_obs.models import ModelUnavailable
    from facefusion_obs.models.errors import FetchError
    from facefusion_obs.presets import PresetError

    if args.frames < 1:
        raise CliError(f"--frames must be at least 1, got {args.frames}")
    try:
        return prepare_assets(args.frames, preset=args.preset, renderer=ClipRenderer(pool))
    except FetchError as exc:
        raise CliError(f"the demo's sample photos (insightface 2.1 wheel) could not be fetched from the "
                       f"package index: {exc}") from None
    except ModelUnavailable as exc:
        raise CliError(f"{exc} (or run: python3 installer/install.py)") from None
    except (PresetError, DemoClipError) as exc:
        raise CliError(str(exc)) from None


def _launch(command: list[str], cwd: Path | None, collection_name: str, scene: str) -> None:
    from facefusion_obs.config import PROJECT_ROOT, worker_setup

    if worker_setup(PROJECT_ROOT) is None:
        raise CliError("OBS would start without a worker: no worker.json beside the script, no .venv beside "
                       "it and none in the config folder; run: python3 installer/install.py")
    argv = [*command, "--collection", collection_name, "--scene", scene]
    subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)
    print(f"started OBS: {' '.join(argv)}")


def _run(args: argparse.Namespace) -> int:
    from facefusion_obs.runtime.pool import ModelPool

    with ModelPool() as pool:  # the demo's models, loaded once for the clip and the render
        return _demo(args, pool)


def _demo(args: argparse.Namespace, pool: Any) -> int:
    from facefusion_obs.demo.collection import COLLECTION_NAME, SCENE_NAME, CollectionError, write_collection

    assets = _prepare(args, pool)
    print(f"demo clip:        {assets.clip} ({assets.frames} frames, {assets.size[0]}x{assets.size[1]})")
    print(f"background:       {assets.background}")
    print(f"face preset:      {assets.preset}")
    try:
        collection = write_collection(assets)
    except (CollectionError, OSError) as exc:
        raise CliError(str(exc)) from None
    print(f"scene collection: {collection} (Scene Collection → {COLLECTION_NAME!r} in OBS)")

    command = obs_command()
    if not args.no_launch and has_display() and command is not None:
        _launch(*command, COLLECTION_NAME, SCENE_NAME)
        return 0
    if not args.no_launch:
        why = "no display" if not has_display() else "OBS Studio is not installed"
        print(f"not starting OBS ({why}): rendering the demo scene to files instead")
    return _render(assets, Path(args.out), pool)


def _render(assets, out: Path, pool: Any) -> int:
    import statistics

    from facefusion_obs.demo.render import render_headless
    from facefusion_obs.models import ModelUnavailable

    try:
        result = render_headless(assets, out, pool)
    except ModelUnavailable as exc:
        raise CliError(f"{exc} (or run: python3 installer/install.py)") from None
    except OSError as exc:
        raise CliError(f"cannot write the demo render to {out}: {exc}") from None
    ms = sorted(result.process_ms)
    print(f"rendered {len(result.frames)} frames, pipeline {statistics.median(ms):.0f} ms/frame median "
          f"(CPU, {assets.size[0]}x{assets.size[1]})")
    print(f"frames:           {result.frames[0].parent.resolve()}/0000.png … {result.frames[-1].name}")
    print(f"filter output:    {result.rgba.resolve()} (RGBA, straight alpha, as the filter hands it to OBS)")
    print(f"contact sheet:    {result.contact_sheet.resolve()} (camera | result)")
    if result.video is not None:
        print(f"video:            {result.video.resolve()}")
    return 0
