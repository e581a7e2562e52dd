"""Every user-facing option and every on-disk location, in one place.

Standard library only: the OBS side builds its properties dialog from ``OPTIONS`` and the worker
validates the settings it receives against the same table, so the two can never disagree about a
name, a choice or a range.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent

FILTER_ID = "facefusion_obs_filter"
FILTER_NAME = "FaceFusion Live"

GROUPS = ("Face", "Matting", "Advanced")

MATTING_MODES = ("off", "chroma", "chroma+person", "person")
SWAP_ENGINES = ("mesh", "inswapper")
EFFECTS = ("pipeline", "passthrough", "test-pattern")
KEY_COLOR_PRESETS = ("green", "blue", "auto")
_HEX_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")


class OptionError(ValueError):
    """A setting that is unknown or out of range; the message names the field and the value."""


@dataclass(frozen=True)
class Option:
    """One setting: its type, default, limits and the words a streamer sees."""

    key: str
    kind: str  # "bool" | "choice" | "float" | "int" | "text" | "key_color"
    default: Any
    label: str
    tooltip: str
    group: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None

    def validate(self, value: Any) -> Any:
        """Return ``value`` coerced to this option's type, or raise OptionError naming the field."""
        bad = OptionError(f"option {self.key!r}: invalid value {value!r}")
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise bad
            return value
        if self.kind == "choice":
            if value not in self.choices:
                raise OptionError(f"option {self.key!r}: {value!r} is not one of {', '.join(self.choices)}")
            return value
        if self.kind in ("float", "int"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise bad
            if self.kind == "int" and value != int(value):
                raise bad
            if (self.minimum is not None and value < self.minimum) or (
                self.maximum is not None and value > self.maximum
            ):
                raise OptionError(f"option {self.key!r}: {value!r} is outside {self.minimum}..{self.maximum}")
            return int(value) if self.kind == "int" else float(value)
        if self.kind == "key_color":
            parse_key_color(value, field_name=self.key)
            return value
        if self.kind == "text":
            if not isinstance(value, str) or len(value) > 256:
                raise bad
            return value
        raise bad


def parse_key_color(value: Any, field_name: str = "key_color") -> tuple[int, int, int] | str:
    """``green``/``blue``/``auto`` stay names; ``#RRGGBB`` becomes an (R, G, B) tuple."""
    if isinstance(value, str):
        if value in KEY_COLOR_PRESETS:
            return value
        if _HEX_COLOR.match(value):
            return (int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16))
    raise OptionError(
        f"option {field_name!r}: {value!r} is not a key colour (use green, blue, auto or #RRGGBB)"
    )


OPTIONS: tuple[Option, ...] = (
    Option(
        "enabled",
        "bool",
        True,
        "Enable",
        "Process this source. Off passes frames through unchanged.",
        "Advanced",
    ),
    # --- Face -------------------------------------------------------------------------------------
    Option(
        "swap_enabled",
        "bool",
        True,
        "Swap face",
        "Replace faces in this source with the preset's face.",
        "Face",
    ),
    Option(
        "preset",
        "text",
        "",
        "Face preset",
        "The face to swap in. Presets are made with 'facefusion-obs presets add NAME IMAGE'.",
        "Face",
    ),
    Option(
        "engine",
        "choice",
        "mesh",
        "Swap engine",
        "mesh: built in, no download, runs anywhere. inswapper: neural, best quality, needs its "
        "(non-commercial) models fetched and ideally an NVIDIA GPU.",
        "Face",
        choices=SWAP_ENGINES,
    ),
    Option(
        "max_faces",
        "int",
        1,
        "Faces to swap",
        "How many faces in this source are swapped (largest first). Each extra face costs a few ms.",
        "Face",
        minimum=1,
        maximum=8,
        step=1,
    ),
    # --- Matting ----------------------------------------------------------------------------------
    Option(
        "matting",
        "choice",
        "off",
        "Matting",
        "off: keep the background. chroma: key out a green or blue screen. chroma+person: key, helped "
        "by person segmentation (keeps green clothing, removes walls beyond the screen). person: "
        "segmentation only, for setups without a screen.",
        "Matting",
        choices=MATTING_MODES,
    ),
    Option(
        "key_color",
        "key_color",
        "green",
        "Key colour",
        "The screen colour: green, blue, auto (estimated from the frame) or #RRGGBB.",
        "Matting",
    ),
    Option(
        "key_tolerance",
        "float",
        0.3,
        "Key tolerance",
        "How unevenly the screen may be lit (noise, creases, shadows) and still key as fully "
        "transparent. Raise it if a haze of screen remains; lower it if faint hair strands vanish.",
        "Matting",
        minimum=0.05,
        maximum=0.8,
        step=0.01,
    ),
    Option(
        "key_softness",
        "float",
        0.55,
        "Edge softness",
        "How much of the screen's colour a pixel must lose before it is solid. Higher gives softer, "
        "more see-through edges and hair; lower gives harder edges. 0.5-0.6 suits most screens.",
        "Matting",
        minimum=0.1,
        maximum=1.0,
        step=0.01,
    ),
    Option(
        "despill",
        "float",
        1.0,
        "Despill",
        "How much of the screen's green (or blue) cast is taken off the subject's edges, hair and "
        "clothes. Skin tones are never changed.",
        "Matting",
        minimum=0.0,
        maximum=1.0,
        step=0.05,
    ),
    Option(
        "temporal",
        "float",
        0.5,
        "Temporal smoothing",
        "Calms flicker of the edges while the subject is still. Moving edges are never smoothed, "
        "so motion does not lag or leave trails. 0 turns it off.",
        "Matting",
        minimum=0.0,
        maximum=1.0,
        step=0.05,
    ),
    # --- Advanced ---------------------------------------------------------------------------------
    Option(
        "effect",
        "choice",
        "pipeline",
        "Processing",
        "pipeline: face swap and matting. passthrough and test-pattern are diagnostics that exercise "
        "the worker and shared memory only.",
        "Advanced",
        choices=EFFECTS,
    ),
)

OPTIONS_BY_KEY: dict[str, Option] = {o.key: o for o in OPTIONS}


def default_options() -> dict[str, Any]:
    return {o.key: o.default for o in OPTIONS}


def validate_options(values: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Validate a settings dict. Unknown keys are refused (they usually mean a typo or a version skew).

    With ``partial`` only the given keys are returned; otherwise missing keys take their defaults.
    """
    if not isinstance(values, dict):
        raise OptionError(f"options must be a mapping, got {type(values).__name__}")
    out = {} if partial else default_options()
    for key, value in values.items():
        option = OPTIONS_BY_KEY.get(key)
        if option is None:
            raise OptionError(f"unknown option {key!r}")
        out[key] = option.validate(value)
    return out


# ------------------------------------------------------------------------------------------ places
@dataclass(frozen=True)
class Locations:
    """Where things live on disk. Environment variables override each, which tests rely on."""

    config_dir: Path
    data_dir: Path
    cache_dir: Path
    models_dir: Path
    presets_dir: Path
    worker_config: Path = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "worker_config", self.config_dir / "worker.json")


def _base_dir(env: str, windows_env: str, posix_default: str) -> Path:
    if os.environ.get(env):
        return Path(os.environ[env])
    if sys.platform == "win32":
        return Path(os.environ.get(windows_env) or Path.home() / "AppData" / "Local")
    return Path.home() / posix_default


def locations() -> Locations:
    """Resolve every location now (not at import), so a changed environment is honoured."""
    config = _base_dir("XDG_CONFIG_HOME", "APPDATA", ".config") / "facefusion-obs"
    data = _base_dir("XDG_DATA_HOME", "LOCALAPPDATA", ".local/share") / "facefusion-obs"
    cache = _base_dir("XDG_CACHE_HOME", "LOCALAPPDATA", ".cache") / "facefusion-obs"
    models = Path(os.environ.get("FACEFUSION_OBS_MODELS") or PROJECT_ROOT / "models")
    presets = Path(os.environ.get("FACEFUSION_OBS_PRESETS") or data / "presets")
    return Locations(
        config_dir=config, data_dir=data, cache_dir=cache, models_dir=models, presets_dir=presets
    )


MODEL_MANIFEST = PROJECT_ROOT / "models" / "manifest.json"
