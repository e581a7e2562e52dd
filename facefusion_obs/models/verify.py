"""SHA-256 verification of model files, with user pins for models whose hash nobody publishes.

A file that fails verification is moved aside (never deleted: the user may want to inspect it) so the
next fetch starts clean and nothing can load it by accident.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

from facefusion_obs.config import locations
from facefusion_obs.models.errors import ModelUnavailable

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class PinsError(ModelUnavailable):
    """The user's pin file cannot be used. One line: the file, what is wrong, and what to do."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.fix = f"delete {path} (or correct it), then pin again: facefusion-obs models pin NAME SHA256"
        super().__init__(f"model pin file {path} {problem}; {self.fix}")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def matches(path: Path, expected: str) -> bool:
    """True when ``path`` hashes to ``expected``. Never cached here: a cache keyed by size and mtime
    accepts a same-size, same-mtime tamper; the model pool keeps its own stat-keyed availability cache
    and always verifies the bytes it loads."""
    return sha256_file(path) == expected


def quarantine(path: Path) -> Path:
    """Move a file that failed verification aside; returns where it went."""
    target = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.replace(path, target)
    return target


def pins_file() -> Path:
    return locations().config_dir / "model_pins.json"


def load_pins() -> dict[str, str]:
    """User-pinned hashes (model name -> sha256) for models the manifest cannot vouch for.

    Raises PinsError for a file that cannot be read or is not such a mapping; it is never rewritten
    then, so nothing the user had is lost.
    """
    path = pins_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError:
        raise PinsError(path, "is not UTF-8 text") from None
    except ValueError as exc:  # JSONDecodeError
        raise PinsError(path, f"is not valid JSON ({exc})") from None
    except OSError as exc:  # a folder, no permission
        raise PinsError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and _SHA256.match(v) for k, v in data.items()):
        raise PinsError(path, "must map model names to 64-hex-digit SHA-256 values")
    return data


def save_pin(name: str, sha256: str) -> Path:
    sha256 = sha256.strip().lower()
    if not _SHA256.match(sha256):
        raise ValueError(f"{sha256!r} is not a SHA-256 (64 hex digits)")
    pins = load_pins()
    pins[name] = sha256
    path = pins_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(pins, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
