"""Entry point of ``facefusion-obs``.

Each subcommand lives in its own module under ``facefusion_obs.cli`` with ``register(subparsers)``;
modules are imported only when listed here, and heavy imports happen inside the command handlers so
``facefusion-obs --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# subcommand -> module in facefusion_obs.cli
COMMANDS = {
    "bench": "bench",
    "process": "process",
    "models": "models",
    "presets": "presets",
    "doctor": "doctor",
    "demo": "demo",
    "log": "usage",
}


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facefusion-obs",
        description="Live face swap and green-screen matting for OBS Studio: models, presets, offline "
        "processing, the demo, diagnostics and benchmarks. The OBS filter itself is facefusion_obs.py.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMANDS.values():
        importlib.import_module(f"facefusion_obs.cli.{module_name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except CliError as exc:
        print(f"facefusion-obs {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`facefusion-obs log | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's exit flush would fail too
        return 0


if __name__ == "__main__":
    # Run through the imported module, not this __main__ copy: commands raise *its* CliError.
    from facefusion_obs.cli.main import main as _main

    sys.exit(_main())
