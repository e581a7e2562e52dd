"""Named shared memory behind one small interface: POSIX ``/dev/shm`` files or Windows tagged mmaps.

Not ``multiprocessing.shared_memory``: inside OBS it would start a resource-tracker child with
``sys.executable``, which is OBS itself (see the OBS 29 notes). Names are random, carry the creating
process id (so a later session can sweep segments whose creator died) and are created 0600.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import re
import secrets
import sys

PREFIX = "ffobs-"
_NAME = re.compile(r"^ffobs-[0-9]{1,10}-[0-9a-f]{32}$")
_POSIX_DIR = "/dev/shm"


class ShmError(OSError):
    """A segment that cannot be created or attached; the message names the segment and the reason."""


def new_name() -> str:
    return f"{PREFIX}{os.getpid()}-{secrets.token_hex(16)}"


def check_name(name: object) -> str:
    """Refuse anything that is not one of our generated names (it would otherwise name a path)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ShmError(f"shared-memory name {name!r} is not a facefusion-obs segment name")
    return name


class SharedRegion:
    """A mapped segment. ``address`` is stable for the mapping's lifetime, for ctypes copies."""

    def __init__(self, name: str, mm: mmap.mmap, size: int) -> None:
        self.name = name
        self.size = size
        self.mm = mm
        self._anchor = ctypes.c_char.from_buffer(mm)  # exporting the buffer pins the mapping
        self.address = ctypes.addressof(self._anchor)

    @classmethod
    def create(cls, size: int) -> SharedRegion:
        name = new_name()
        if sys.platform == "win32":
            return cls(name, mmap.mmap(-1, size, tagname=name), size)
        path = os.path.join(_POSIX_DIR, name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size)
        except OSError as exc:
            os.unlink(path)
            raise ShmError(f"cannot create shared memory {name} of {size} bytes: {exc}") from exc
        finally:
            os.close(fd)
        return cls(name, mm, size)

    @classmethod
    def attach(cls, name: str, size: int) -> SharedRegion:
        """Map an existing segment, refusing one that is too small, not ours, or readable by others."""
        check_name(name)
        if sys.platform == "win32":
            return cls(name, mmap.mmap(-1, size, tagname=name), size)
        path = os.path.join(_POSIX_DIR, name)
        try:
            fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            raise ShmError(f"cannot open shared memory {name}: {exc.strerror}") from exc
        try:
            st = os.fstat(fd)
            if st.st_uid != os.getuid():
                raise ShmError(f"shared memory {name} belongs to uid {st.st_uid}, not us")
            if st.st_mode & 0o077:
                raise ShmError(f"shared memory {name} has mode {st.st_mode & 0o777:o}; expected 600")
            if st.st_size < size:
                raise ShmError(f"shared memory {name} has {st.st_size} bytes; expected {size}")
            mm = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        return cls(name, mm, size)

    def close(self) -> None:
        if self.mm.closed:
            return
        del self._anchor
        # A memoryview over the mapping may still be alive somewhere; the OS frees it at exit then.
        with contextlib.suppress(BufferError):
            self.mm.close()


def unlink(name: str) -> bool:
    """Remove a segment's name (the memory lives on while mapped). True if it existed."""
    if sys.platform == "win32":
        return False  # a tagged mapping disappears with its last handle
    try:
        os.unlink(os.path.join(_POSIX_DIR, check_name(name)))
        return True
    except FileNotFoundError:
        return False


def sweep_orphans() -> list[str]:
    """Unlink our segments whose creating process is gone (left by a crash). Returns the names."""
    if sys.platform == "win32" or not os.path.isdir(_POSIX_DIR):
        return []
    removed = []
    for entry in os.listdir(_POSIX_DIR):
        if not _NAME.match(entry):
            continue
        pid = int(entry.split("-")[1])
        if pid == os.getpid() or alive(pid):
            continue
        if unlink(entry):
            removed.append(entry)
    return removed


def alive(pid: int) -> bool:
    """True while process ``pid`` exists (a process of another user counts as existing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_segments() -> list[str]:
    """Our segment names currently present (tests use it to prove nothing is left behind)."""
    if sys.platform == "win32" or not os.path.isdir(_POSIX_DIR):
        return []
    return sorted(e for e in os.listdir(_POSIX_DIR) if _NAME.match(e))
