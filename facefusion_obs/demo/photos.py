"""Real photos for the demo and the benchmarks, fetched from the package index like the models.

Two pinned wheels, downloaded with pip into the cache (SHA-256 checked, never installed), provide them:
the insightface 2.1 wheel (MIT) ships ``insightface/data/images/*`` (``t1.jpg``: six people,
``Tom_Hanks_54745.png``, ``mask_*.jpg``), and the scikit-image 0.26.0 wheel (BSD) ships
``skimage/data/astronaut.png``. Only these files are extracted, so the product needs neither package
installed: ``bench`` and ``demo`` work after the installer alone. Tests use the same photos.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from facefusion_obs.config import locations
from facefusion_obs.models.errors import FetchError
from facefusion_obs.models.fetching import fetch_wheel
from facefusion_obs.models.manifest import WheelSpec
from facefusion_obs.models.verify import sha256_file

INSIGHTFACE_WHEEL = WheelSpec(
    requirement="insightface==2.1",
    filename="insightface-2.1-py3-none-any.whl",
    sha256="dcd58ee79d99d689572477315f3149353afd65a36dc575f597cbb217a7bde399",
    size=1169452,
    platform="manylinux_2_28_x86_64",
    python_version="3.11",
    license="MIT",
)
IMAGES_PREFIX = "insightface/data/images/"

SKIMAGE_WHEEL = WheelSpec(
    requirement="scikit-image==0.26.0",
    filename="scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
    sha256="74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af",
    size=13711217,
    platform="manylinux_2_28_x86_64",
    python_version="3.11",
    license="BSD-3-Clause",
)
ASTRONAUT_MEMBER = "skimage/data/astronaut.png"
ASTRONAUT_SHA256 = "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"


def _extract(wheel: WheelSpec, members: list[str] | str, out: Path, strip: str) -> Path:
    """Extract ``members`` (names, or a folder prefix) of the pinned ``wheel`` into ``out`` once."""
    stamp = out / ".sha256"
    if stamp.is_file() and stamp.read_text().strip() == wheel.sha256:
        return out
    path = fetch_wheel(wheel, quiet=True)
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path) as zf:
        if isinstance(members, str):
            names = [n for n in zf.namelist() if n.startswith(members) and not n.endswith("/")]
        else:
            names = [n for n in members if n in zf.namelist()]
        if not names:
            raise FetchError(f"{path.name} has no {members}")
        for name in names:
            target = out / name[len(strip):]
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            tmp.write_bytes(zf.read(name))
            os.replace(tmp, target)
    if sha256_file(path) != wheel.sha256:  # fetch_wheel checked; re-check the bytes we used
        raise FetchError(f"{path} changed while extracting")
    stamp.write_text(wheel.sha256 + "\n")
    return out


# What a preset made from these photos records as consent (every preset records one): the truth, that
# no one pictured agreed to anything here; these are published sample images, used as test material.
SAMPLE_CONSENT = ("no personal consent: published sample photos (insightface 2.1 data/images, scikit-image "
                  "0.26 astronaut, NASA public domain), used only as demo and test material")


def sample_images_dir() -> Path:
    """Folder with ``t1.jpg`` (six people), ``Tom_Hanks_54745.png`` (aligned 112x112), ``mask_*.jpg``."""
    return _extract(INSIGHTFACE_WHEEL, IMAGES_PREFIX, locations().cache_dir / "testdata" / "insightface-2.1-images",
                    IMAGES_PREFIX)


def sample_image(name: str) -> Path:
    """One sample photo by file name, e.g. ``sample_image("t1.jpg")``."""
    path = sample_images_dir() / name
    if not path.is_file():
        raise FetchError(f"sample image {name!r} is not in the insightface 2.1 wheel")
    return path


def astronaut_path() -> Path:
    """scikit-image's astronaut photograph (512x512, one frontal face), SHA-256 checked."""
    out = _extract(SKIMAGE_WHEEL, [ASTRONAUT_MEMBER], locations().cache_dir / "testdata" / "skimage-0.26.0",
                   "skimage/data/")
    path = out / "astronaut.png"
    if sha256_file(path) != ASTRONAUT_SHA256:
        raise FetchError(f"{path} does not have the expected SHA-256 {ASTRONAUT_SHA256}; delete {out} and retry")
    return path


def astronaut() -> np.ndarray:
    """The astronaut as RGB uint8 (512, 512, 3): the same pixels as ``skimage.data.astronaut()``."""
    import cv2

    bgr = cv2.imread(str(astronaut_path()), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FetchError(f"could not decode {astronaut_path()}")
    return np.ascontiguousarray(bgr[..., ::-1])
