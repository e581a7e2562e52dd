"""Real face photos for tests, benchmarks and demos, fetched from the package index like the models.

The insightface 2.1 wheel (MIT code; the sample photos ship inside it) is downloaded with pip into
the cache, its SHA-256 checked, and ``insightface/data/images/*`` extracted next to it. CI needs only
PyPI access; nothing is committed.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

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


def sample_images_dir() -> Path:
    """Folder with ``t1.jpg`` (six people), ``Tom_Hanks_54745.png`` (aligned 112x112), ``mask_*.jpg``."""
    out = locations().cache_dir / "testdata" / "insightface-2.1-images"
    stamp = out / ".sha256"
    if stamp.is_file() and stamp.read_text().strip() == INSIGHTFACE_WHEEL.sha256:
        return out
    wheel = fetch_wheel(INSIGHTFACE_WHEEL, quiet=True)
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        members = [n for n in zf.namelist() if n.startswith(IMAGES_PREFIX) and not n.endswith("/")]
        if not members:
            raise FetchError(f"{wheel.name} has no {IMAGES_PREFIX} folder")
        for name in members:
            target = out / name[len(IMAGES_PREFIX):]
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            tmp.write_bytes(zf.read(name))
            os.replace(tmp, target)
    if sha256_file(wheel) != INSIGHTFACE_WHEEL.sha256:  # fetch_wheel checked; re-check the bytes we used
        raise FetchError(f"{wheel} changed while extracting")
    stamp.write_text(INSIGHTFACE_WHEEL.sha256 + "\n")
    return out


def sample_image(name: str) -> Path:
    """One sample photo by file name, e.g. ``sample_image("t1.jpg")``."""
    path = sample_images_dir() / name
    if not path.is_file():
        raise FetchError(f"sample image {name!r} is not in the insightface 2.1 wheel")
    return path
