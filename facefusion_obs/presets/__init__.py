"""Face presets: named faces made from photos, stored without pickle, reloaded when they change."""

from __future__ import annotations

import logging
from pathlib import Path

from facefusion_obs.presets.consent import ConsentMissing
from facefusion_obs.presets.names import PresetDamaged, PresetError, validate_name
from facefusion_obs.presets.store import Preset, PresetStore, preset_from_image

__all__ = ["IMAGE_SUFFIXES", "ConsentMissing", "Preset", "PresetDamaged", "PresetError", "PresetStore",
           "PresetWatcher", "is_image_path", "preset_from_image", "resolve_source", "validate_name"]

log = logging.getLogger("facefusion_obs.presets")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.lower().endswith(IMAGE_SUFFIXES)


def is_image_path(value: str) -> bool:
    """Whether an option value names a photo rather than a stored preset. A photo carries no consent of
    its own: the worker refuses one, and ``process --source IMAGE`` asks for ``--consent``."""
    return bool(value.strip()) and _looks_like_path(value.strip())


def resolve_source(value: str, store: PresetStore | None = None) -> Preset | None:
    """A preset name or an image path (the CLI's ``--source``) to a Preset; "" means none."""
    value = value.strip()
    if not value:
        return None
    if _looks_like_path(value):
        path = Path(value).expanduser()
        if path.is_file():
            return preset_from_image(path)
        if "/" in value or "\\" in value:
            raise PresetError(f"source image {value!r} does not exist")
    return (store or PresetStore()).load(validate_name(value))


class PresetWatcher:
    """Holds the current preset for an option value and reloads it when its files change on disk.

    ``poll()`` costs one ``stat`` of ``preset.json`` (at most every ``interval`` seconds), so the worker
    may call it every frame.

    A preset that fails to load (damaged, missing, no face) never takes away the one serving: ``preset``
    stays the last good one (None if there was none) and ``failure`` says why, until a load succeeds. So a
    damaged file on disk, or a switch to a damaged preset, leaves the stream swapped as before, and a
    repaired preset (a new ``preset.json``) is picked up by the next poll.

    A stored preset that records no consent of the person pictured fails the same way
    (:class:`ConsentMissing`, with the command that adds it), and consent added meanwhile (``presets
    consent``, a new ``preset.json``) is picked up by the next poll. Image paths are the caller's to gate.
    """

    def __init__(self, value: str = "", store: PresetStore | None = None, interval: float = 0.5) -> None:
        self.value, self.store, self.interval = value.strip(), store or PresetStore(), interval
        self.preset: Preset | None = None
        self.failure: PresetError | None = None
        self._stamp: object = None
        self._checked = float("-inf")
        self._load()

    def _is_named(self) -> bool:
        return bool(self.value) and not _looks_like_path(self.value)

    def _load(self) -> None:
        self._stamp = self.store.stamp(self.value) if self._is_named() else None
        try:
            preset = resolve_source(self.value, self.store)
            if preset is not None and self._is_named() and preset.consent is None:
                raise ConsentMissing(preset.name)
            self.preset, self.failure = preset, None
        except PresetError as exc:
            self.failure = exc
            log.warning("%s", self.problem)

    @property
    def problem(self) -> str:
        """What is wrong and what serves meanwhile, for the status line; "" while the preset loads."""
        if self.failure is None:
            return ""
        serving = f"still swapping to {self.preset.name!r}" if self.preset else "no face swap"
        return f"{self.failure}; {serving} until it loads"

    def follow(self, value: str) -> bool:
        """Switch to another option value. True if it differs: callers drop what they derived."""
        if value.strip() == self.value:
            return False
        self.value, self._checked = value.strip(), float("-inf")
        self._load()
        return True

    def current(self) -> Preset | None:
        """The preset now, reloaded first if its files changed on disk."""
        if self.poll() and self.failure is None:
            log.info("preset %r changed on disk: reloaded", self.value)
        return self.preset

    def poll(self) -> bool:
        """Reload if the preset changed on disk; True when a reload was tried (``preset`` may have been
        replaced, or ``failure`` set while the last good one keeps serving)."""
        import time

        now = time.monotonic()
        if not self._is_named() or now - self._checked < self.interval:
            return False
        self._checked = now
        if self.store.stamp(self.value) == self._stamp:
            return False
        self._load()
        return True
