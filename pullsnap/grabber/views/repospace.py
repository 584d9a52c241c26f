"""How much room the repository's filesystem has left, bytes and inodes
(pure): the line `grabber status` adds below the hosts, and its level.

A filesystem runs out of inodes as surely as of blocks (a host that sends a
million empty files), and `df` shows only the blocks.  Each is compared with
its thresholds (`free_warn`, `free_crit`, `free_inodes_warn`,
`free_inodes_crit`: an amount or a percentage of the filesystem); a
filesystem that makes inodes as it needs them (btrfs) has no inode side.
"""

from __future__ import annotations

from dataclasses import dataclass

from pullsnap.configvalues import Threshold
from pullsnap.grabber.store.space import Filesystem
from pullsnap.units import human_size

OK, WARNING, CRITICAL = "ok", "warning", "critical"
_RANK = {OK: 0, WARNING: 1, CRITICAL: 2}


@dataclass(frozen=True)
class Limits:
    warn: Threshold
    crit: Threshold
    inodes_warn: Threshold
    inodes_crit: Threshold


@dataclass(frozen=True)
class RepoSpace:
    level: str  # ok, warning, critical
    text: str  # what is free, and why it is a problem
    problems: tuple[str, ...] = ()  # each side below a threshold, for a Nagios line


def _level(free: int, whole: int, warn: Threshold, crit: Threshold) -> tuple[str, Threshold | None]:
    if free < crit.of(whole):
        return CRITICAL, crit
    if free < warn.of(whole):
        return WARNING, warn
    return OK, None


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def assess(fs: Filesystem, limits: Limits) -> RepoSpace:
    """The repository's level and line (pure)."""
    level, below = _level(fs.free.bytes, fs.size.bytes, limits.warn, limits.crit)
    sides = [f"{human_size(fs.free.bytes)} of {human_size(fs.size.bytes)} free "
             f"({_percent(fs.free.bytes, fs.size.bytes)})"]  # fmt: skip
    problems = []
    if below is not None:
        limit = str(below) if below.percent else human_size(below.amount)
        problems.append(f"{human_size(fs.free.bytes)} free, below {limit}")
    if fs.inode_limit:
        ilevel, ibelow = _level(fs.free.inodes, fs.size.inodes, limits.inodes_warn,
                                limits.inodes_crit)  # fmt: skip
        sides.append(f"{fs.free.inodes:,} of {fs.size.inodes:,} inodes free "
                     f"({_percent(fs.free.inodes, fs.size.inodes)})")  # fmt: skip
        if ibelow is not None:
            problems.append(f"{fs.free.inodes:,} inodes free, below {ibelow}")
        if _RANK[ilevel] > _RANK[level]:
            level = ilevel
    text = ", ".join(sides)
    if problems:
        text += (f"; {'; '.join(problems)}: runs are refused once a host's next run no "
                 "longer fits; add space or inodes, or delete snapshots")  # fmt: skip
    return RepoSpace(level, text, tuple(problems))


def render(space: RepoSpace, repository: str) -> str:
    """The line below the hosts in `grabber status` (pure)."""
    level = space.level.upper() if space.problems else "ok"
    return f"repository {repository}: {level}: {space.text}\n"
