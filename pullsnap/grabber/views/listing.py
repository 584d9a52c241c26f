"""`grabber list`: snapshots and attempts per host, as text (pure rendering)."""

from __future__ import annotations

from collections.abc import Sequence

from pullsnap.grabber.store.base import recorded_added
from pullsnap.grabber.store.repository import Attempt, HostRepo, hosts
from pullsnap.grabber.views.health import shown_state
from pullsnap.units import human_duration, human_size


def attempt_row(host: str, attempt: Attempt, locked: bool = False) -> list[str]:
    record = attempt.record
    stats = record.get("stats", {})
    state = shown_state(attempt, locked)
    note = record.get("message", "")
    if record.get("failed_paths_total"):
        first = record.get("failed_paths", [{}])[0].get("path", "?")
        note = f"{record['failed_paths_total']} unreadable, e.g. {first}"
    files = f"{stats['files']:,} files" if "files" in stats else ""
    measured = "transferred_size" in stats or "added" in record
    added = f"+{human_size(recorded_added(record).bytes)}" if measured else ""
    seconds = human_duration(record["seconds"]) if "seconds" in record else ""
    # --super or --fake-super: how to restore it (README "The repository and restoring").
    mode = str(record.get("mode", "")) if attempt.has_tree or attempt.has_incomplete else ""
    return [host, attempt.name, state, mode or "-", files, added, seconds, note]


def rows(root: str, only: Sequence[str] = ()) -> list[list[str]]:
    found = []
    for host in hosts(root):
        if only and host not in only:
            continue
        repo = HostRepo(root, host)
        locked = repo.is_locked()
        for attempt in repo.attempts():
            found.append(attempt_row(host, attempt, locked))
    return found


def render(root: str, only: Sequence[str] = ()) -> str:
    table = rows(root, only)
    if not table:
        return f"no snapshots in {root}\n"
    header = ["HOST", "SNAPSHOT", "STATE", "MODE", "FILES", "ADDED", "TIME", "NOTE"]
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    lines = []
    for row in [header, *table]:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths[:-1], strict=True)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines) + "\n"
