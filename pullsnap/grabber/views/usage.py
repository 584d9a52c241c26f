"""`grabber du` as a table or JSON (pure): what each snapshot holds, and
what only it holds (the store measures it)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pullsnap.grabber.store.base import HostUsage
from pullsnap.units import human_size


def render(host: str, usage: HostUsage) -> str:
    """The `grabber du` table (pure)."""
    header = ("SNAPSHOT", "STATE", "SIZE", "UNIQUE")
    rows = [(t.name, t.state, human_size(t.size), human_size(t.unique)) for t in usage.trees]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = [
        f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:>{widths[3]}}"
        for r in [header, *rows]
    ]
    lines.append(f"{host}: {human_size(usage.total)} on disk in {len(usage.trees)} trees")
    if usage.unreadable:
        lines.append(
            f"warning: {usage.unreadable} directories could not be read, so the figures are "
            "low: run as root (snapshots made with --super keep their owners' modes)"
        )
    return "\n".join(lines) + "\n"


def as_json(host: str, usage: HostUsage) -> dict[str, Any]:
    """`grabber du --json`."""
    return {"host": host, "total": usage.total, "inodes": usage.inodes,
            "unreadable": usage.unreadable, "trees": [asdict(t) for t in usage.trees]}  # fmt: skip
