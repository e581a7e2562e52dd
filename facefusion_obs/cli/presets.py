"""``facefusion-obs presets add NAME IMAGE... | list | show NAME | remove NAME``."""

from __future__ import annotations

import argparse
import json

from facefusion_obs.cli.main import CliError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("presets", help="manage face presets (the faces to swap in)")
    cmds = p.add_subparsers(dest="presets_command", required=True)
    a = cmds.add_parser("add", help="make a preset from one or more photos of one person")
    a.add_argument("name")
    a.add_argument("images", nargs="+")
    a.add_argument("--face", type=int, default=None,
                   help="which face when a photo shows several (0 = largest)")
    a.add_argument("--replace", action="store_true", help="overwrite an existing preset")
    a.set_defaults(handler=_add)
    cmds.add_parser("list", help="preset names").set_defaults(handler=_list)
    s = cmds.add_parser("show", help="details of one preset (JSON)")
    s.add_argument("name")
    s.set_defaults(handler=_show)
    r = cmds.add_parser("remove", help="delete a preset")
    r.add_argument("name")
    r.set_defaults(handler=_remove)


def _store():
    from facefusion_obs.presets import PresetStore

    return PresetStore()


def _guard(fn):
    def run(args: argparse.Namespace) -> int:
        from facefusion_obs.models import ModelUnavailable
        from facefusion_obs.presets import PresetError

        try:
            return fn(args)
        except (PresetError, ModelUnavailable) as exc:
            raise CliError(str(exc)) from None
        except OSError as exc:  # e.g. a read-only or full presets folder
            raise CliError(f"{exc.filename or 'presets folder'}: {exc.strerror or exc}") from None
    return run


@_guard
def _add(args: argparse.Namespace) -> int:
    preset = _store().add(args.name, args.images, face_index=args.face, replace=args.replace)
    print(f"preset {preset.name!r} saved (revision {preset.revision}) in {preset.folder}")
    return 0


@_guard
def _list(args: argparse.Namespace) -> int:
    """One preset a line; a damaged one is listed, marked with what is wrong, and makes the exit non-zero."""
    from facefusion_obs.presets import PresetDamaged, PresetError

    store, damaged = _store(), []
    for name in store.names():
        try:
            store.load(name)
        except PresetDamaged as exc:
            damaged.append(name)
            print(f"{name}  [damaged: {exc.file}: {exc.reason}]")
            continue
        except PresetError:  # removed while we listed
            continue
        print(name)
    if damaged:
        raise CliError(f"{len(damaged)} damaged preset{'s' if len(damaged) > 1 else ''}: "
                       f"{', '.join(map(repr, damaged))} (repair with: facefusion-obs presets add NAME PHOTO... "
                       "--replace)")
    return 0


@_guard
def _show(args: argparse.Namespace) -> int:
    print(json.dumps(_store().show(args.name), indent=2))
    return 0


@_guard
def _remove(args: argparse.Namespace) -> int:
    _store().remove(args.name)
    print(f"preset {args.name!r} removed")
    return 0
