"""Every user-facing option and every on-disk location, in one place.

Standard library only: the OBS side builds its properties dialog from ``OPTIONS`` and the worker
validates the settings it receives against the same table, so the two can never disagree about a
name, a choice or a range.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent

FILTER_ID = "facefusion_obs_filter"
FILTER_NAME = "FaceFusion Live"
WORKER_CONFIG_NAME = "worker.json"  # beside the OBS script (per checkout) and in the config folder

GROUPS = ("Face", "Matting", "Advanced")

MATTING_MODES = ("off", "chroma", "chroma+person", "person")
SWAP_ENGINES = ("mesh", "inswapper")
EFFECTS = ("pipeline", "passthrough", "test-pattern")
KEY_COLOR_PRESETS = ("green", "blue", "auto")
LABEL_CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")
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
        "The face to swap in. Presets are made with "
        "'facefusion-obs presets add NAME IMAGE --consent \"WHO, WHEN, HOW\"'.",
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
    Option(
        "privacy",
        "bool",
        False,
        "Never show my real face",
        "Whenever a face is not swapped (lost, covered, worker down or restarting, models missing, Enable "
        "off), show a cover instead of the camera: the last swapped picture, blurred and dimmed, or the "
        "cover image. Hiding the filter itself (its eye in OBS's Filters list) bypasses it: don't.",
        "Face",
    ),
    Option(
        "cover_image",
        "text",
        "",
        "Cover image",
        "A picture file (PNG or JPEG) to show as the cover instead of the blurred last picture. Empty: blur.",
        "Face",
    ),
    Option(
        "ai_label",
        "bool",
        True,
        "Show the \"AI face swap\" label (recommended)",
        "While a face is swapped, a small badge in the picture tells viewers the face is generated, so "
        "nobody mistakes it for the person it shows. Untick only if you disclose the swap another way "
        "(a scene overlay, the stream title): a swapped face with no label can mislead and, in some "
        "places and on some platforms, break the rules on synthetic media.",
        "Face",
    ),
    Option(
        "ai_label_text",
        "text",
        "AI face swap",
        "Label text",
        "The badge's words (Latin letters, digits and punctuation; up to 40 characters). Empty: "
        "\"AI face swap\".",
        "Face",
    ),
    Option(
        "ai_label_corner",
        "choice",
        "bottom-right",
        "Label corner",
        "Where the badge sits in the picture.",
        "Face",
        choices=LABEL_CORNERS,
    ),
    Option(
        "ai_label_size",
        "float",
        0.06,
        "Label size",
        "The badge's height as a share of the picture's height (0.06: 65 pixels of a 1080p frame).",
        "Face",
        minimum=0.03,
        maximum=0.2,
        step=0.01,
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
        object.__setattr__(self, "worker_config", self.config_dir / WORKER_CONFIG_NAME)


def _base_dir(env: str, windows_env: str, posix_default: str) -> Path:
    if os.environ.get(env):
        return Path(os.environ[env])
    if sys.platform == "win32":
        return Path(os.environ.get(windows_env) or Path.home() / "AppData" / "Local")
    return Path.home() / posix_default


def _default_models_dir(data_dir: Path) -> Path:
    """A source checkout keeps its models beside it (``models/``, git-ignored), so two checkouts with
    different manifests never quarantine each other's files; an installed wheel uses the data folder."""
    if (PROJECT_ROOT / "pyproject.toml").is_file():
        return PROJECT_ROOT / "models"
    return data_dir / "models"


def locations() -> Locations:
    """Resolve every location now (not at import), so a changed environment is honoured."""
    config = _base_dir("XDG_CONFIG_HOME", "APPDATA", ".config") / "facefusion-obs"
    data = _base_dir("XDG_DATA_HOME", "LOCALAPPDATA", ".local/share") / "facefusion-obs"
    cache = _base_dir("XDG_CACHE_HOME", "LOCALAPPDATA", ".cache") / "facefusion-obs"
    models = Path(os.environ.get("FACEFUSION_OBS_MODELS") or _default_models_dir(data))
    presets = Path(os.environ.get("FACEFUSION_OBS_PRESETS") or data / "presets")
    return Locations(
        config_dir=config, data_dir=data, cache_dir=cache, models_dir=models, presets_dir=presets
    )


# Package data, so a wheel install of the worker has it too.
MODEL_MANIFEST = Path(__file__).resolve().parent / "models" / "manifest.json"


# ------------------------------------------------------------------------------------ worker setup


@dataclass(frozen=True)
class WorkerSetup:
    """The worker interpreter and folders OBS starts the worker with, and where that was found."""

    python: str
    models_dir: Path
    presets_dir: Path
    origin: str  # shown in the Scripts window: which file or variable decided

    def env(self) -> dict[str, str]:
        """The worker's environment additions: the folders the installer chose, whatever OBS's own
        environment (a Flatpak, another user's HOME) would resolve them to."""
        return {"FACEFUSION_OBS_MODELS": str(self.models_dir), "FACEFUSION_OBS_PRESETS": str(self.presets_dir)}

    def to_json(self) -> str:
        return json.dumps({"python": self.python, "models_dir": str(self.models_dir),
                           "presets_dir": str(self.presets_dir)}, indent=2) + "\n"


def _venv_python(venv_dir: Path) -> Path:
    return venv_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def setup_from_file(path: Path, defaults: Locations) -> WorkerSetup | None:
    """A worker.json, or None when it is missing, unreadable or names an interpreter that is gone."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("python"), str) or not os.path.exists(data["python"]):
        return None

    def folder(key: str, env: str, default: Path) -> Path:
        recorded = data.get(key)
        return Path(os.environ.get(env) or (recorded if isinstance(recorded, str) and recorded else default))

    return WorkerSetup(data["python"], folder("models_dir", "FACEFUSION_OBS_MODELS", defaults.models_dir),
                       folder("presets_dir", "FACEFUSION_OBS_PRESETS", defaults.presets_dir), str(path))


def worker_setup(script_dir: Path) -> WorkerSetup | None:
    """How the OBS script at ``script_dir`` starts its worker, first match wins:

    1. ``FACEFUSION_OBS_PYTHON`` (tests, and anyone overriding by hand);
    2. ``worker.json`` beside the script, written by this checkout's installer;
    3. the venv beside the script (``.venv``), when the installer's file is missing;
    4. the user-wide ``worker.json`` in the config folder (a script copied away from its checkout).

    Per-checkout first, so installing a second checkout never repoints the first, and an OBS whose
    config folder is elsewhere (Flatpak, portable, another user) still finds the worker. Environment
    variables for the folders win over what a file recorded, as they do everywhere else.
    """
    defaults = locations()
    python = os.environ.get("FACEFUSION_OBS_PYTHON")
    if python:
        return WorkerSetup(python, defaults.models_dir, defaults.presets_dir, "FACEFUSION_OBS_PYTHON")
    beside = setup_from_file(script_dir / WORKER_CONFIG_NAME, defaults)
    if beside is not None:
        return beside
    venv = _venv_python(script_dir / ".venv")
    if venv.exists():
        return WorkerSetup(str(venv), defaults.models_dir, defaults.presets_dir, str(script_dir / ".venv"))
    return setup_from_file(defaults.worker_config, defaults)
