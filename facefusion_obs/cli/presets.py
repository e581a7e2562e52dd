"""``facefusion-obs presets add NAME IMAGE... --consent TEXT | consent NAME TEXT | list | show NAME | remove NAME``.

A preset is someone's face, so ``add`` records their consent: who agreed, when and how, in the
user's words (``--consent``, or asked for when run in a terminal). ``consent`` adds it to a preset
made before consent was recorded, which the worker and ``process`` otherwise refuse.
"""

from __future__ import annotations

import argparse
import json
import sys

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
    a.add_argument("--consent", default=None, metavar="TEXT",
                   help='who agreed to be used, when and how, e.g. "Jane Doe, 2026-12-01, signed release form" '
                        "(asked for when run in a terminal; required otherwise)")
    a.set_defaults(handler=_add)
    c = cmds.add_parser("consent", help="record the consent of the person in an existing preset (no re-analysis)")
    c.add_argument("name")
    c.add_argument("statement", help="who agreed to be used, when and how")
    c.add_argument("--replace", action="store_true", help="replace a statement already recorded")
    c.set_defaults(handler=_consent)
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


def _ask_consent(name: str) -> str:
    """The statement from a prompt when a person is at the terminal; otherwise say how to pass it."""
    from facefusion_obs.presets.consent import EXAMPLE

    if not sys.stdin.isatty():
        raise CliError(f"preset {name!r}: give the consent of the person pictured with --consent {EXAMPLE} "
                       "(who agreed, when and how; asked for only when run in a terminal)")
    try:
        return input(f"Consent of the person in preset {name!r} (who agreed, when, how): ")
    except EOFError:
        raise CliError(f"preset {name!r}: no consent given; pass --consent {EXAMPLE}") from None


@_guard
def _add(args: argparse.Namespace) -> int:
    from facefusion_obs.presets import validate_name

    validate_name(args.name)  # a bad name is said before anyone is asked for a statement
    statement = args.consent if args.consent is not None else _ask_consent(args.name)
    preset = _store().add(args.name, args.images, consent=statement, face_index=args.face, replace=args.replace)
    print(f"preset {preset.name!r} saved (revision {preset.revision}) in {preset.folder}")
    print(f"consent: {preset.consent['statement']} (recorded {preset.consent['recorded']})")
    return 0


@_guard
def _consent(args: argparse.Namespace) -> int:
    preset = _store().set_consent(args.name, args.statement, replace=args.replace)
    print(f"preset {preset.name!r}: consent recorded {preset.consent['recorded']}: {preset.consent['statement']}")
    return 0


@_guard
def _list(args: argparse.Namespace) -> int:
    """One preset a line; a damaged one is listed, marked with what is wrong, and makes the exit non-zero."""
    from facefusion_obs.presets import PresetDamaged, PresetError

    store, damaged = _store(), []
    for name in store.names():
        try:
            consented = store.load(name).consent is not None
        except PresetDamaged as exc:
            damaged.append(name)
            print(f"{name}  [damaged: {exc.file}: {exc.reason}]")
            continue
        except PresetError:  # removed while we listed
            continue
        print(name if consented else f"{name}  [no consent recorded: refused until `facefusion-obs presets "
                                     "consent` adds it]")
    if damaged:
        raise CliError(f"{len(damaged)} damaged preset{'s' if len(damaged) > 1 else ''}: "
                       f"{', '.join(map(repr, damaged))} (repair with: facefusion-obs presets add NAME PHOTO... "
                       '--replace --consent "WHO, WHEN, HOW")')
    return 0


@_guard
def _show(args: argparse.Namespace) -> int:
    """The preset as JSON (its ``consent`` statement included); a missing consent is also said on stderr."""
    from facefusion_obs.presets.consent import ConsentMissing

    info = _store().show(args.name)
    print(json.dumps(info, indent=2))
    if info["consent"] is None:
        print(f"facefusion-obs presets show: {ConsentMissing(args.name)}", file=sys.stderr)
    return 0


@_guard
def _remove(args: argparse.Namespace) -> int:
    _store().remove(args.name)
    print(f"preset {args.name!r} removed")
    return 0
