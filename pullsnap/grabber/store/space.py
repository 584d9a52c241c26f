"""Space as the repository runs out of it: bytes and inodes, side by side.

A filesystem can refuse a new file for want of blocks (f_bavail) or of
inodes (f_favail): a host that sends a million empty files fills it as
surely as one that sends a large one.  Everything the free-space guard
weighs (what is free, what a run may add, what a deletion frees) is a
`Space`, and every comparison is made for both at once.

Filesystems that make inodes as they need them (btrfs) report no inode
count at all (statvfs f_files = 0): their inode side never runs out.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pullsnap.units import human_size

# Free inodes on a filesystem without a fixed number of them.
UNLIMITED = 1 << 62
# What a write fails with when the filesystem, or the user's quota, is full.
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class Space:
    """Bytes and inodes: what is free, what a snapshot took, what it holds alone."""

    bytes: int = 0
    inodes: int = 0

    def __add__(self, other: Space) -> Space:
        return Space(self.bytes + other.bytes, self.inodes + other.inodes)

    def __sub__(self, other: Space) -> Space:
        return Space(self.bytes - other.bytes, self.inodes - other.inodes)

    def times(self, factor: float) -> Space:
        return Space(int(self.bytes * factor), int(self.inodes * factor))

    def covers(self, other: Space) -> bool:
        """At least `other` on both sides."""
        return self.bytes >= other.bytes and self.inodes >= other.inodes

    def at_least(self, other: Space) -> Space:
        return Space(max(self.bytes, other.bytes), max(self.inodes, other.inodes))

    def at_most(self, other: Space) -> Space:
        return Space(min(self.bytes, other.bytes), min(self.inodes, other.inodes))

    def positive(self) -> Space:
        """Negative sides as 0 (a shortfall that is not one)."""
        return self.at_least(Space())

    def as_record(self) -> dict[str, int]:
        return {"bytes": self.bytes, "inodes": self.inodes}


def show(space: Space) -> str:
    """`12.0 MiB and 1,234 inodes` (pure)."""
    if space.inodes >= UNLIMITED // 2:
        return f"{human_size(space.bytes)} (no inode limit)"
    return f"{human_size(space.bytes)} and {space.inodes:,} inodes"


def total(spaces: Any) -> Space:
    """The sum of an iterable of Space."""
    found = Space()
    for space in spaces:
        found += space
    return found


def from_record(value: Any) -> Space | None:
    """A `{"bytes": N, "inodes": N}` a record holds, or None when it is not one."""
    if not isinstance(value, Mapping):
        return None
    b, i = value.get("bytes"), value.get("inodes")
    if type(b) is not int or type(i) is not int or b < 0 or i < 0:
        return None
    return Space(b, i)


@dataclass(frozen=True)
class Filesystem:
    """What statvfs(2) says about the repository's filesystem."""

    free: Space  # what an unprivileged writer may still use (f_bavail, f_favail)
    size: Space  # f_blocks x f_frsize, f_files (inodes 0: made as needed)

    @property
    def inode_limit(self) -> bool:
        return self.size.inodes > 0


def filesystem(path: str) -> Filesystem:
    st = os.statvfs(path)
    inodes = st.f_favail if st.f_files > 0 else UNLIMITED
    return Filesystem(
        Space(st.f_bavail * st.f_frsize, inodes), Space(st.f_blocks * st.f_frsize, st.f_files)
    )


def free_space(path: str) -> Space:
    """What may still be written on `path`'s filesystem."""
    return filesystem(path).free


def is_no_space(e: OSError) -> bool:
    return e.errno in NO_SPACE_ERRNOS
