"""README screenshots of the demo, taken in real OBS Studio under Xvfb.

    python -m facefusion_obs.demo.screenshots --out docs/

Starts OBS (throw-away home, see ``facefusion_obs.bench.obs_instance``) on the very collection that
``facefusion-obs demo`` writes, waits until the filter's output is on screen, and saves

* ``obs_demo_scene.png``: the demo scene as OBS composites it (obs-websocket GetSourceScreenshot);
* ``obs_filter_properties.png``: the Filters dialog with FaceFusion Live's properties, grabbed from
  the X display (Pillow's ImageGrab over XCB).

The worker runs on this interpreter (``sys.executable``), so run it from the worker's venv.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops

from facefusion_obs.bench.obs_instance import ObsInstance
from facefusion_obs.demo.assets import DemoAssets, prepare_assets
from facefusion_obs.demo.clip import ClipRenderer
from facefusion_obs.demo.collection import COLLECTION_NAME, MEDIA_SOURCE, SCENE_NAME, write_collection
from facefusion_obs.presets import PresetStore

MAX_PNG_BYTES = 300 * 1024


def start_demo_obs(root: Path, frames: int, python: str = sys.executable,
                   renderer: ClipRenderer | None = None) -> tuple[ObsInstance, DemoAssets]:
    """OBS on the demo collection, with the demo's assets and preset inside the instance's own home."""
    presets = root / "home" / ".local" / "share" / "facefusion-obs" / "presets"
    if renderer is None:
        from facefusion_obs.runtime.pool import ModelPool

        with ModelPool() as pool:  # the clip needs the segmentation model once, to cut out its subject
            renderer = ClipRenderer(pool)
    inst = ObsInstance(root, None, python, (renderer.width, renderer.height),
                       env={"FACEFUSION_OBS_PRESETS": str(presets)},
                       collection=COLLECTION_NAME, scene=SCENE_NAME)
    assets = prepare_assets(frames, folder=root / "home" / ".local" / "share" / "facefusion-obs" / "demo",
                            store=PresetStore(presets), renderer=renderer)
    write_collection(assets, inst.obs_config)
    return inst.start(), assets


def screen_fraction(rgb: np.ndarray, region: tuple[slice, slice]) -> float:
    """Share of pixels in ``region`` that still look like the green screen (green well above red/blue)."""
    patch = rgb[region].astype(np.int32)
    greenish = (patch[..., 1] > patch[..., 0] + 40) & (patch[..., 1] > patch[..., 2] + 40)
    return float(greenish.mean())


def wait_for_keyed_scene(inst: ObsInstance, timeout: float = 90.0) -> np.ndarray:
    """Poll the scene until the corners show the virtual background instead of the screen (the
    filter's RGBA is being drawn); returns that RGB screenshot."""
    assert inst.ws is not None
    w, h = inst.size
    corners = (slice(0, h // 5), slice(0, w // 5))
    deadline = time.monotonic() + timeout
    while True:
        shot = inst.ws.screenshot(SCENE_NAME, w, h)[..., :3]
        if shot.mean() > 10 and screen_fraction(shot, corners) < 0.02:
            return shot
        if time.monotonic() > deadline:
            raise TimeoutError(f"the demo scene still shows the green screen after {timeout} s "
                               f"(screen fraction {screen_fraction(shot, corners):.2f}):\n"
                               f"{inst.log_text()[-2000:]}")
        time.sleep(0.5)


def save_small_png(image: Image.Image, path: Path, limit: int = MAX_PNG_BYTES) -> Path:
    """Save as PNG under ``limit`` bytes: as is, else 256 colours, else smaller and 256 colours."""
    candidates = [image, image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)]
    scale = 0.8
    while scale > 0.3:
        small = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
        candidates.append(small.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE))
        scale -= 0.15
    for candidate in candidates:
        buf = io.BytesIO()
        candidate.save(buf, "PNG", optimize=True)
        if buf.tell() <= limit:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(buf.getvalue())
            return path
    raise RuntimeError(f"could not fit {path.name} under {limit} bytes")


def grab_display(display: str) -> Image.Image:
    """The whole X screen (Pillow's XCB grab; no extra packages needed)."""
    from PIL import ImageGrab

    return ImageGrab.grab(xdisplay=display).convert("RGB")


def crop_to_new_window(before: Image.Image, after: Image.Image) -> Image.Image:
    """The part of the screen a newly mapped window covers: where ``after`` differs from ``before``.

    No window manager runs under Xvfb, so there is nobody to ask for the dialog's geometry. Pixels
    that changed for other reasons (the main window's live preview) only widen the box a little.
    """
    diff = Image.eval(ImageChops.difference(before, after).convert("L"), lambda v: 255 if v > 24 else 0)
    box = diff.getbbox()
    if box is None or (box[2] - box[0]) * (box[3] - box[1]) > 0.9 * after.width * after.height:
        return after
    return after.crop(box)


def take(out: Path, frames: int = 60, root: Path | None = None) -> list[Path]:
    with tempfile.TemporaryDirectory(prefix="ffobs-shots-") as tmp:
        inst, _ = start_demo_obs(Path(root or tmp), frames)
        try:
            inst.wait_for_log("worker running", 90)
            scene = wait_for_keyed_scene(inst)
            time.sleep(2.0)  # let tracking settle on the face before the picture
            scene = wait_for_keyed_scene(inst)
            shots = [save_small_png(Image.fromarray(scene), out / "obs_demo_scene.png")]
            assert inst.ws is not None
            before = grab_display(inst.env["DISPLAY"])
            inst.ws.call("OpenInputFiltersDialog", inputName=MEDIA_SOURCE)
            time.sleep(3.0)  # the dialog maps and its live preview starts
            dialog = crop_to_new_window(before, grab_display(inst.env["DISPLAY"]))
            shots.append(save_small_png(dialog, out / "obs_filter_properties.png"))
            return shots
        finally:
            inst.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs", help="folder for the PNGs (default: docs)")
    parser.add_argument("--frames", type=int, default=60, help="length of the demo clip used")
    args = parser.parse_args(argv)
    for path in take(Path(args.out), args.frames):
        print(f"{path} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
