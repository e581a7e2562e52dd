"""What the demo puts on disk: the clip, the background and the face preset, and the filter settings.

Assets live in ``locations().data_dir / "demo"`` (the scene collection points at them, so they must
outlive ``--out``). The preset goes into the user's preset store, but only ever as the demo's own:
a user's preset that happens to share the name is never replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facefusion_obs.config import locations, validate_options
from facefusion_obs.demo.clip import FPS, SIZE, ClipRenderer, virtual_background, write_clip, write_png
from facefusion_obs.demo.photos import SAMPLE_CONSENT, sample_image
from facefusion_obs.presets import PresetError, PresetStore

PRESET_NAME = "demo"
PRESET_PHOTO = "Tom_Hanks_54745.png"  # insightface's aligned sample face: a different man from the clip's
DEFAULT_FRAMES = 4 * FPS  # one full sway, so the loop is seamless

# what the demo's filter runs with, in OBS and in the headless render alike
FILTER_SETTINGS: dict[str, Any] = {
    "preset": PRESET_NAME,
    "engine": "mesh",
    "matting": "chroma",  # chroma+person keeps the screen enclosed between his arm and head
    "key_color": "green",
}


def filter_options(preset: str = PRESET_NAME) -> dict[str, Any]:
    """The validated pipeline options (the filter's settings over the defaults)."""
    return validate_options({**FILTER_SETTINGS, "preset": preset})


@dataclass(frozen=True)
class DemoAssets:
    folder: Path
    clip: Path
    background: Path
    preset: str
    frames: int
    size: tuple[int, int]


def demo_dir() -> Path:
    return locations().data_dir / "demo"


def ensure_demo_preset(store: PresetStore, name: str = PRESET_NAME) -> str:
    """Create the demo preset unless it is already there; refuse to touch someone else's ``name``.

    Its consent is the truthful :data:`SAMPLE_CONSENT` (a published sample photo, not a person who
    agreed); a demo preset made before consent was recorded gets it, so the worker accepts it."""
    if name in store.names():
        meta = store.meta(name)
        sources = [s.get("original") for s in meta.get("sources", [])]
        if sources != [PRESET_PHOTO]:
            raise PresetError(
                f"a preset named {name!r} already exists and is not the demo's (made from "
                f"{', '.join(map(str, sources))}); keep it and pass --preset OTHER_NAME to the demo")
        if meta.get("consent") is None:
            store.set_consent(name, SAMPLE_CONSENT)
        return name
    store.add(name, [sample_image(PRESET_PHOTO)], consent=SAMPLE_CONSENT)
    return name


def prepare_assets(frames: int = DEFAULT_FRAMES, *, folder: Path | None = None,
                   store: PresetStore | None = None, preset: str = PRESET_NAME,
                   renderer: ClipRenderer) -> DemoAssets:
    """Write clip.mp4 and background.png (regenerated each run: cheap, and never stale) and the preset."""
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    folder = folder or demo_dir()
    clip = write_clip(folder / "clip.mp4", frames, renderer)
    background = write_png(folder / "background.png", virtual_background(renderer.width, renderer.height))
    name = ensure_demo_preset(store or PresetStore(), preset)
    return DemoAssets(folder, clip, background, name, frames, (renderer.width, renderer.height))


__all__ = ["DEFAULT_FRAMES", "FILTER_SETTINGS", "PRESET_NAME", "SIZE", "DemoAssets", "demo_dir",
           "ensure_demo_preset", "filter_options", "prepare_assets"]
