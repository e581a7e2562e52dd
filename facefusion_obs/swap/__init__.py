"""Swap engines. ``build_swapper(options, pool)`` returns the stage the frame pipeline calls.

Engines: ``mesh`` (embedded) and ``inswapper`` (neural; its module is imported only when chosen).
``ENGINES`` is the one table of what each engine needs; the worker advertises from it what can run
(``engine_status``), and the stage falls back to ``mesh`` when the requested engine cannot run, then
switches back on its own once it can (``SwapStage.recheck``), leaving a note each time. A preset that
fails to load leaves a note too, while the engine's watcher keeps the last good one serving.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from facefusion_obs.models import ModelUnavailable

if TYPE_CHECKING:
    from facefusion_obs.presets import PresetWatcher
    from facefusion_obs.runtime.pool import ModelPool

log = logging.getLogger(__name__)

# Each requirement is a group of alternatives: any one installed, verified file satisfies it.
_FACE_MODELS = (("face_detection_short_range",), ("face_detection_full_range_sparse",), ("face_landmark",))
ENGINES: dict[str, tuple[tuple[str, ...], ...]] = {
    "mesh": (*_FACE_MODELS, ("face_mesh_topology",)),
    "inswapper": (*_FACE_MODELS, ("arcface_w600k_r50",), ("inswapper_128", "inswapper_128_fp16")),
}


@dataclass(frozen=True)
class EngineStatus:
    """Whether an engine can run now; if not, why (per model) and the exact command that fixes it."""

    name: str
    available: bool
    missing: dict[str, str] = field(default_factory=dict)  # model -> why it is not usable
    fix: str = ""

    @property
    def reason(self) -> str:
        return "; ".join(f"{model}: {why}" for model, why in self.missing.items())


def engine_status(pool: ModelPool, engine: str) -> EngineStatus:
    """Check ``engine``'s models in ``pool`` (stat-cached there, so cheap to call every second)."""
    if engine not in ENGINES:
        raise ValueError(f"option 'engine': unknown swap engine {engine!r}")
    missing: dict[str, str] = {}
    for group in ENGINES[engine]:
        reasons = {name: pool.check(name) for name in group}
        if all(reasons.values()):  # none of the alternatives is usable: ask for the first one
            missing[group[0]] = reasons[group[0]]
    if not missing:
        return EngineStatus(engine, True)
    licence = any(pool.spec(name).requires_license_acceptance for name in missing if name in pool.specs)
    fix = f"facefusion-obs models fetch {' '.join(missing)}{' --accept-license' if licence else ''}"
    return EngineStatus(engine, False, missing, fix)


class Swapper(Protocol):
    engine: str
    watcher: PresetWatcher

    def configure(self, options: Mapping[str, Any]) -> None: ...

    def reset(self) -> None: ...

    def process(self, rgb: Any, t: float | None = None) -> tuple[Any, Any]:
        """(H, W, 3) uint8 RGB at frame time ``t`` (s) -> (swapped RGB, face mask (H, W) float32 0..1 or None)."""
        ...


def _build(engine: str, options: Mapping[str, Any], pool: ModelPool) -> Swapper:
    if engine == "inswapper":
        from facefusion_obs.swap.inswapper import InswapperSwapper

        return InswapperSwapper(options, pool)
    from facefusion_obs.swap.mesh import MeshSwapper

    return MeshSwapper(options, pool)


def make_engine(options: Mapping[str, Any], pool: ModelPool) -> Swapper:
    """The engine named by ``options["engine"]``, or ``mesh`` when that one cannot run here."""
    engine = options.get("engine", "mesh")
    if engine not in ENGINES:
        raise ValueError(f"option 'engine': unknown swap engine {engine!r}")
    if engine != "mesh":
        try:
            return _build(engine, options, pool)
        except (ModelUnavailable, ImportError) as exc:
            log.warning("engine %r is unavailable, using 'mesh' instead: %s", engine, exc)
    return _build("mesh", options, pool)


class SwapStage:
    """The pipeline's swap stage: rebuilds the engine when the ``engine`` option changes, and follows
    model availability (``recheck``): a fetched model takes over from the fallback, a removed or
    tampered one falls back to ``mesh``. Each transition is appended to ``notes`` for the worker."""

    def __init__(self, options: Mapping[str, Any], pool: ModelPool) -> None:
        self.pool = pool
        self.options: dict[str, Any] = dict(options)
        self.requested = options.get("engine", "mesh")
        self.notes: list[str] = []
        self._preset_noted = ""
        self.engine: Swapper = make_engine(options, pool)
        if self.engine.engine != self.requested:
            self._note_fallback()

    def configure(self, options: Mapping[str, Any]) -> None:
        self.options = dict(options)
        if options.get("engine", "mesh") != self.requested:
            self.requested = options.get("engine", "mesh")
            self.engine = make_engine(options, self.pool)
            if self.engine.engine != self.requested:
                self._note_fallback()
        else:
            self.engine.configure(options)
            self.recheck()

    def recheck(self) -> bool:
        """Follow model availability now; True when the engine in use changed."""
        if self.requested == "mesh":
            return False
        status = engine_status(self.pool, self.requested)
        if self.engine.engine == self.requested and not status.available:
            for name in {n for group in ENGINES[self.requested] for n in group}:
                if self.pool.check(name):
                    self.pool.evict(name)  # a re-fetched file is read and verified again
            self.engine = _build("mesh", self.options, self.pool)
            self.notes.append(f"engine {self.requested!r} can no longer run, using 'mesh' instead: "
                              f"{status.reason}; fix: {status.fix}")
            log.warning("%s", self.notes[-1])
            return True
        if self.engine.engine != self.requested and status.available:
            try:
                self.engine = _build(self.requested, self.options, self.pool)
            except (ModelUnavailable, ImportError) as exc:
                log.warning("engine %r is still unavailable: %s", self.requested, exc)
                return False
            self.notes.append(f"engine {self.requested!r} is available now and in use (was 'mesh')")
            log.info("%s", self.notes[-1])
            return True
        return False

    def _note_fallback(self) -> None:
        status = engine_status(self.pool, self.requested)
        detail = f"{status.reason}; fix: {status.fix}" if not status.available else "its models failed to open"
        self.notes.append(f"engine {self.requested!r} is unavailable, using 'mesh' instead: {detail}")

    def _note_preset(self) -> None:
        """A note when the preset's problem changes (not every second while it lasts)."""
        watcher = self.engine.watcher
        if watcher.problem == self._preset_noted:
            return
        self._preset_noted = watcher.problem
        if watcher.problem:
            self.notes.append(watcher.problem)
        elif watcher.preset is not None:
            self.notes.append(f"preset {watcher.preset.name!r} loaded and in use")

    def take_notes(self) -> list[str]:
        self._note_preset()
        notes, self.notes = self.notes, []
        return notes

    def reset(self) -> None:
        self.engine.reset()

    def process(self, rgb: Any, t: float | None = None) -> tuple[Any, Any]:
        """Swap at frame time ``t`` (seconds: capture or video time; None counts frames at 30/s)."""
        return self.engine.process(rgb, t)


def build_swapper(options: Mapping[str, Any], pool: ModelPool) -> SwapStage:
    return SwapStage(options, pool)
