"""``facefusion-obs bench NAME``: each benchmark is ``facefusion_obs.bench.NAME.run(args)``."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = ("ipc", "matting", "faces", "swap", "pipeline", "soak", "live")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run a benchmark and print its table")
    p.add_argument("name", choices=BENCHMARKS)
    p.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    p.add_argument("--out", default="out/bench", help="folder for pictures and reports")
    p.add_argument("--no-obs", action="store_true", help="ipc: skip the measurement inside real OBS")
    p.add_argument("--minutes", type=float, default=None, help="soak: how long to run (default 10)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    return int(importlib.import_module(f"facefusion_obs.bench.{args.name}").run(args) or 0)
