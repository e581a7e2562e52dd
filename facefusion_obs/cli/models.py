"""``facefusion-obs models list | fetch NAME... | verify | pin NAME SHA256``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from facefusion_obs.cli.main import CliError

if TYPE_CHECKING:
    from facefusion_obs.models import ModelState


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list, fetch and verify model files",
                       description="Model files live in the models folder (FACEFUSION_OBS_MODELS overrides "
                       "it). Offline: copy a file there by hand under the name 'models list' shows; "
                       "'models verify' checks it.")
    cmds = p.add_subparsers(dest="models_command", required=True)
    cmds.add_parser("list", help="every model, its source, licence and state").set_defaults(handler=_list)
    f = cmds.add_parser("fetch", help="download and verify models (default: the embedded ones)")
    f.add_argument("names", nargs="*", help="model names (default: the embedded MediaPipe models)")
    f.add_argument("--accept-license", action="store_true",
                   help="accept the non-commercial licence of the insightface models without asking")
    f.add_argument("--force", action="store_true", help="download again even if a verified file exists")
    f.set_defaults(handler=_fetch)
    v = cmds.add_parser("verify", help="check every installed file's SHA-256; bad files are moved aside")
    v.set_defaults(handler=_verify)
    pin = cmds.add_parser("pin", help="trust a SHA-256 for a model whose manifest entry has none")
    pin.add_argument("name")
    pin.add_argument("sha256")
    pin.set_defaults(handler=_pin)


def _list(args: argparse.Namespace) -> int:
    from facefusion_obs.models import load_manifest

    print(f"{'name':34} {'source':6} {'state':9} {'licence':42} file")
    for name in load_manifest():
        st = _state(name)
        print(f"{name:34} {st.spec.source:6} {st.state:9} {st.spec.license[:42]:42} {st.path}")
    return 0


def _state(name: str, *, move_bad: bool = False) -> ModelState:
    """``model_state``, with an unusable pin file turned into the one-line CLI error."""
    from facefusion_obs.models import PinsError, model_state

    try:
        return model_state(name, move_bad=move_bad)
    except PinsError as exc:
        raise CliError(str(exc)) from None


def _ask(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(question).strip().lower() in ("y", "yes")


def _fetch(args: argparse.Namespace) -> int:
    from facefusion_obs.models import EMBEDDED_MODELS, ModelUnavailable, fetch, get_spec

    names = args.names or list(EMBEDDED_MODELS)
    try:
        for name in names:
            get_spec(name)
        for name in names:
            path = fetch(name, accept_license=args.accept_license, ask=_ask, force=args.force)
            print(f"{name}: {path}")
    except ModelUnavailable as exc:
        raise CliError(str(exc)) from None
    return 0


def _verify(args: argparse.Namespace) -> int:
    from facefusion_obs.models import load_manifest

    bad = 0
    for name in load_manifest():
        st = _state(name, move_bad=True)
        if st.state == "missing":
            continue
        print(f"{name}: {st.state}{' - ' + st.detail if st.detail else ''}")
        bad += st.state != "ok"
    return 1 if bad else 0


def _pin(args: argparse.Namespace) -> int:
    from facefusion_obs.models import ModelUnavailable, pin

    try:
        path = pin(args.name, args.sha256)
    except (ModelUnavailable, ValueError) as exc:
        raise CliError(str(exc)) from None
    print(f"{args.name}: pinned {args.sha256.lower()} in {path}")
    return 0
