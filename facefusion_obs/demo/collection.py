"""The demo's OBS scene collection: background image, looping green-screen clip with the filter on top,
and the entry script loaded the way Tools → Scripts loads it.

OBS finds a collection by the ``name`` inside its JSON (``obs --collection NAME``), not by file name.
We only ever write our own file, and refuse when that file holds some other collection.
"""

from __future__ import annotations

import configparser
import json
import os
import sys
from pathlib import Path
from typing import Any

from facefusion_obs.config import FILTER_ID, FILTER_NAME, PROJECT_ROOT
from facefusion_obs.demo.assets import FILTER_SETTINGS, DemoAssets

COLLECTION_NAME = "FaceFusion Demo"
COLLECTION_FILE = "facefusion_demo.json"
SCENE_NAME = "FaceFusion Demo"
BACKGROUND_SOURCE = "Virtual background"
MEDIA_SOURCE = "Green-screen camera (demo clip)"
DEFAULT_CANVAS = (1920, 1080)
OBS_BOUNDS_SCALE_INNER = 2  # obs_bounds_type: fit inside the bounds, keeping the aspect ratio


class CollectionError(RuntimeError):
    """The collection cannot be written without clobbering something; the message names the file."""


def obs_config_dir() -> Path:
    """OBS Studio's own config folder (where ``basic/scenes`` lives) on this platform."""
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "obs-studio"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "obs-studio"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "obs-studio"


def canvas_size(config_dir: Path) -> tuple[int, int]:
    """The current profile's base canvas, so the demo fills the user's canvas; OBS's default otherwise."""
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(config_dir / "global.ini", encoding="utf-8-sig")
        profile = parser.get("Basic", "ProfileDir", fallback="")
        if profile:
            parser.read(config_dir / "basic" / "profiles" / profile / "basic.ini", encoding="utf-8-sig")
            return int(parser.get("Video", "BaseCX")), int(parser.get("Video", "BaseCY"))
    except (OSError, ValueError, configparser.Error):
        pass
    return DEFAULT_CANVAS


def _item(name: str, item_id: int, canvas: tuple[int, int]) -> dict[str, Any]:
    return {"name": name, "id": item_id, "visible": True, "locked": False, "rot": 0.0,
            "pos": {"x": 0.0, "y": 0.0}, "scale": {"x": 1.0, "y": 1.0}, "align": 5,
            "bounds_type": OBS_BOUNDS_SCALE_INNER, "bounds_align": 0,
            "bounds": {"x": float(canvas[0]), "y": float(canvas[1])}, "crop_left": 0, "crop_top": 0,
            "crop_right": 0, "crop_bottom": 0}


def build_collection(assets: DemoAssets, canvas: tuple[int, int] = DEFAULT_CANVAS,
                     name: str = COLLECTION_NAME, scene: str = SCENE_NAME) -> dict[str, Any]:
    """The collection JSON as OBS 29 saves it (the fields it needs; OBS fills in the rest on save)."""
    settings = {**FILTER_SETTINGS, "preset": assets.preset}
    background = {"id": "image_source", "versioned_id": "image_source", "name": BACKGROUND_SOURCE,
                  "settings": {"file": str(assets.background), "unload": False}, "filters": []}
    media = {"id": "ffmpeg_source", "versioned_id": "ffmpeg_source", "name": MEDIA_SOURCE,
             "settings": {"local_file": str(assets.clip), "is_local_file": True, "looping": True,
                          "restart_on_activate": True, "close_when_inactive": False, "hw_decode": False},
             "filters": [{"id": FILTER_ID, "versioned_id": FILTER_ID, "name": FILTER_NAME,
                          "settings": settings}]}
    # items are listed bottom first: the background, then the keyed camera over it
    items = [_item(BACKGROUND_SOURCE, 1, canvas), _item(MEDIA_SOURCE, 2, canvas)]
    scene_source = {"id": "scene", "versioned_id": "scene", "name": scene,
                    "settings": {"items": items, "id_counter": len(items), "custom_size": False}}
    return {"name": name, "current_scene": scene, "current_program_scene": scene,
            "scene_order": [{"name": scene}], "sources": [scene_source, background, media],
            "modules": {"scripts-tool": [{"path": str(PROJECT_ROOT / "facefusion_obs.py"), "settings": {}}]}}


def write_collection(assets: DemoAssets, config_dir: Path | None = None, name: str = COLLECTION_NAME,
                     scene: str = SCENE_NAME, file_name: str = COLLECTION_FILE) -> Path:
    """Write ``basic/scenes/<file_name>`` under OBS's config; returns its path."""
    config_dir = config_dir or obs_config_dir()
    path = config_dir / "basic" / "scenes" / file_name
    if path.exists():
        try:
            existing = json.loads(path.read_text(encoding="utf-8")).get("name")
        except (OSError, ValueError, AttributeError):
            existing = None
        if existing != name:
            raise CollectionError(f"{path} already holds the scene collection {existing!r}, not the demo's "
                                  f"{name!r}; rename or move that file, then run the demo again")
    path.parent.mkdir(parents=True, exist_ok=True)
    collection = build_collection(assets, canvas_size(config_dir), name, scene)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(collection, indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return path
