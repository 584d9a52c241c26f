"""Which mount a path lives on, and its options (/proc/self/mountinfo, proc(5))."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Mount:
    mount_point: str
    fs_type: str
    options: frozenset[str]  # per-mount and superblock options together


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \\ooo (proc(5)).
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    """Mounts in mountinfo order (pure)."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        options = set(fields[5].split(","))
        if len(fields) > sep + 3:
            options |= set(fields[sep + 3].split(","))
        mounts.append(Mount(_unescape(fields[4]), fields[sep + 1], frozenset(options)))
    return mounts


def mount_of(path: str, mountinfo: str | None = None) -> Mount | None:
    """The mount holding `path`: the longest mount point that is its prefix (last wins)."""
    if mountinfo is None:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            mountinfo = f.read()
    real = os.path.realpath(path)
    best: Mount | None = None
    for mount in parse_mountinfo(mountinfo):
        point = mount.mount_point.rstrip("/") or "/"
        inside = real == point or real.startswith(point.rstrip("/") + "/") or point == "/"
        if inside and (best is None or len(point) >= len(best.mount_point.rstrip("/") or "/")):
            best = mount
    return best


def missing_safety_options(path: str, mountinfo: str | None = None) -> list[str]:
    """Of nosuid and nodev, those the filesystem holding `path` lacks."""
    mount = mount_of(path, mountinfo)
    if mount is None:
        return ["nosuid", "nodev"]
    return [opt for opt in ("nosuid", "nodev") if opt not in mount.options]
