"""What this worker can run: the engines (and, for one that cannot, why and the exact fix), the presets
``PresetStore`` accepts, and the inference provider in use. The worker is the one authority on these;
the OBS side shows the ``catalog`` message as it is and keeps no rules of its own.

Re-checking is cheap enough to do every second: model availability is stat-cached in the pool (a
changed file is hashed once), and a preset's ``preset.json`` is read again only when its stamp changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from facefusion_obs.presets import PresetStore
from facefusion_obs.presets.names import PresetError
from facefusion_obs.swap import ENGINES, engine_status

if TYPE_CHECKING:
    from facefusion_obs.runtime.pool import ModelPool

MAX_PRESETS = 512  # the control message's bound


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


class Catalog:
    def __init__(self, pool: ModelPool, store: PresetStore | None = None) -> None:
        self.pool = pool
        self.store = store
        self._presets_key: tuple[Any, ...] | None = None
        self._presets: list[str] = []

    def engines(self) -> list[dict[str, Any]]:
        out = []
        for name in ENGINES:
            status = engine_status(self.pool, name)
            out.append({"name": name, "available": status.available,
                        "reason": "" if status.available else _cut(status.reason, 500),
                        "fix": "" if status.available else _cut(status.fix, 300)})
        return out

    def presets(self) -> list[str]:
        """Names ``PresetStore`` lists whose ``preset.json`` it accepts; re-read only when one changes."""
        store = self.store or PresetStore()  # the presets folder may be re-pointed between checks
        names = store.names()
        key = (str(store.root), *((n, store.stamp(n)) for n in names))
        if key != self._presets_key:
            valid = []
            for name in names:
                try:
                    store.meta(name)
                except (PresetError, OSError):
                    continue
                if len(name) <= 64:
                    valid.append(name)
            self._presets_key, self._presets = key, valid[:MAX_PRESETS]
        return list(self._presets)

    def message(self, provider: str) -> dict[str, Any]:
        """The fields of the ``catalog`` control message."""
        return {"engines": self.engines(), "presets": self.presets(), "provider": provider[:64]}
