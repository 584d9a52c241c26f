"""`grabber list`: snapshots and attempts per host, as text (pure rendering)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pullsnap import errors
from pullsnap.config import load_grabber
from pullsnap.grabber.repository import Attempt, HostRepo, hosts
from pullsnap.units import human_duration, human_size


def attempt_row(host: str, attempt: Attempt) -> list[str]:
    record = attempt.record
    stats = record.get("stats", {})
    state = attempt.state
    if record.get("suspect"):
        state = "suspect"
    elif attempt.state in ("complete", "partial") and not attempt.has_tree:
        state = f"{attempt.state}?"  # published tree missing: say so
    files = f"{stats['files']:,} files" if "files" in stats else ""
    added = f"+{human_size(stats['transferred_size'])}" if "transferred_size" in stats else ""
    seconds = human_duration(record["seconds"]) if "seconds" in record else ""
    return [host, attempt.name, state, files, added, seconds, record.get("message", "")]


def rows(root: str, only: Sequence[str] = ()) -> list[list[str]]:
    found = []
    for host in hosts(root):
        if only and host not in only:
            continue
        for attempt in HostRepo(root, host).attempts():
            found.append(attempt_row(host, attempt))
    return found


def render(root: str, only: Sequence[str] = ()) -> str:
    table = rows(root, only)
    if not table:
        return f"no snapshots in {root}\n"
    header = ["HOST", "SNAPSHOT", "STATE", "FILES", "ADDED", "TIME", "NOTE"]
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    lines = []
    for row in [header, *table]:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths[:-1], strict=True)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines) + "\n"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list snapshots and attempts per host")
    p.add_argument("hosts", nargs="*", metavar="HOST", help="only these hosts")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_grabber(args.config)
    print(render(cfg.repository, args.hosts), end="")
    return errors.OK
