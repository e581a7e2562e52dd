"""``facefusion-obs log [--json] [--since WHEN]``: when each preset was swapped in, and where.

Reads the worker's local usage log (``worker/usage.py``): one row per entry, oldest first, with its
start and end (UTC), preset, scene, channel and the consent it was swapped in under. ``--json``
prints the stored lines as they are. A damaged line is reported with its file and line number and
skipped; the exit status is then non-zero, after every good entry has been printed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

from facefusion_obs.cli.main import CliError

_RELATIVE = re.compile(r"(\d{1,6})([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("log", help="when each preset was swapped in, in which scene (the local usage log)",
                       description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print the stored JSON lines as they are")
    p.add_argument("--since", default=None, metavar="WHEN",
                   help="only entries that ended at or after WHEN: a UTC date or time (2026-12-04, "
                        "2026-12-04T18:00) or a span back from now (30m, 12h, 7d, 2w)")
    p.set_defaults(handler=_run)


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``--since`` as an aware UTC datetime; CliError names the value when it is neither form."""
    text = value.strip()
    match = _RELATIVE.fullmatch(text)
    if match:
        now = now or datetime.now(timezone.utc)
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        when = datetime.fromisoformat(text.removesuffix("Z"))
    except ValueError:
        raise CliError(f"--since {value!r} is neither a UTC date/time (2026-12-04, 2026-12-04T18:00) nor a span "
                       "(30m, 12h, 7d, 2w)") from None
    return when.astimezone(timezone.utc) if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _printable(text: str) -> str:
    """Scene and preset names as one line: control characters shown escaped, never acted on."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _duration(start: str, end: str | None) -> str:
    from facefusion_obs.worker.usage import parse_time

    if end is None:
        return "-"
    seconds = int((parse_time(end) - parse_time(start)).total_seconds())
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"


def entries(lines: list[Any]) -> list[dict[str, Any]]:
    """Start and end lines paired by id, in order of start: an entry without an end line is still open,
    or was cut short by a worker that was killed (``end`` None)."""
    found: dict[str, dict[str, Any]] = {}
    for line in lines:
        record = line.record
        entry = found.setdefault(record["id"], {**record, "end": None})
        if record["event"] == "end":
            entry.update(record)
    return sorted(found.values(), key=lambda e: (e["start"], e["channel"]))


def _run(args: argparse.Namespace) -> int:
    from facefusion_obs.worker.usage import UsageLog, parse_time

    since = parse_since(args.since) if args.since is not None else None
    usage = UsageLog()
    good, damaged = [], 0
    for line in usage.read():
        if line.record is None:
            damaged += 1
            print(f"facefusion-obs log: {line.path}:{line.number}: damaged line skipped ({line.problem})",
                  file=sys.stderr)
        else:
            good.append(line)
    rows = [e for e in entries(good) if since is None or e["end"] is None or parse_time(e["end"]) >= since]
    if args.json:  # the lines of the entries kept, as stored
        kept = {e["id"] for e in rows}
        for line in good:
            if line.record["id"] in kept:
                print(json.dumps(line.record, separators=(",", ":")))
    else:
        _table(rows, usage)
    if damaged:
        raise CliError(f"{damaged} damaged line{'s' if damaged > 1 else ''} in {usage.path} skipped (see above)")
    return 0


def _table(rows: list[dict[str, Any]], usage: Any) -> None:
    if not rows:
        print(f"no usage recorded yet in {usage.path}")
        return
    table = [("start (UTC)", "end (UTC)", "duration", "preset", "scene", "channel", "consent (recorded, hash)")]
    for e in rows:
        table.append((e["start"].replace("T", " ").removesuffix("Z"),
                      e["end"].replace("T", " ").removesuffix("Z") if e["end"] else "(open or cut short)",
                      _duration(e["start"], e["end"]), _printable(e["preset"]), _printable(e["scene"]) or "-",
                      str(e["channel"]), f"{e['consent']['recorded']} #{e['consent']['sha256']}"))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
