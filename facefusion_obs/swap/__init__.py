"""Swap engines. ``build_swapper(options)`` returns the stage the frame pipeline calls.

Engines: ``mesh`` (embedded, always available) and ``inswapper`` (neural; its module is imported only
when chosen, and when its models are unavailable the stage falls back to ``mesh`` and logs why).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from facefusion_obs.models import ModelUnavailable

log = logging.getLogger(__name__)


class Swapper(Protocol):
    engine: str

    def configure(self, options: Mapping[str, Any]) -> None: ...

    def reset(self) -> None: ...

    def process(self, rgb: Any) -> tuple[Any, Any]:
        """(H, W, 3) uint8 RGB -> (swapped RGB, face mask (H, W) float32 0..1 or None)."""
        ...


def make_engine(options: Mapping[str, Any]) -> Swapper:
    """The engine named by ``options["engine"]``, or ``mesh`` when that one cannot run here."""
    from facefusion_obs.swap.mesh import MeshSwapper

    engine = options.get("engine", "mesh")
    if engine == "inswapper":
        try:
            from facefusion_obs.swap.inswapper import InswapperSwapper

            return InswapperSwapper(options)
        except (ModelUnavailable, ImportError) as exc:
            log.warning("engine 'inswapper' is unavailable, using 'mesh' instead: %s", exc)
    elif engine != "mesh":
        raise ValueError(f"option 'engine': unknown swap engine {engine!r}")
    return MeshSwapper(options)


class SwapStage:
    """The pipeline's swap stage: rebuilds the engine when the ``engine`` option changes."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.requested = options.get("engine", "mesh")
        self.engine: Swapper = make_engine(options)

    def configure(self, options: Mapping[str, Any]) -> None:
        if options.get("engine", "mesh") != self.requested:
            self.requested = options.get("engine", "mesh")
            self.engine = make_engine(options)
        else:
            self.engine.configure(options)

    def reset(self) -> None:
        self.engine.reset()

    def process(self, rgb: Any) -> tuple[Any, Any]:
        return self.engine.process(rgb)


def build_swapper(options: Mapping[str, Any]) -> SwapStage:
    return SwapStage(options)
