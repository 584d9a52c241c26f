"""What tests ask of a btrfs tree: is a path a (read-only) subvolume, and
what `btrfs filesystem du` says of its extents (the figures pullsnap's own
accounting must match)."""

from __future__ import annotations

import os
import subprocess

from pullsnap.grabber.store import btrfsioctl


def subvolume_flags(path: str) -> tuple[bool, bool]:
    """(a subvolume, a read-only one); a plain directory is (False, False)."""
    fd = btrfsioctl.open_dir(path)
    try:
        subvolume = btrfsioctl.is_subvolume(fd)
        return subvolume, subvolume and btrfsioctl.is_readonly(fd)
    finally:
        os.close(fd)


def is_subvolume(path: str) -> bool:
    return subvolume_flags(path)[0]


def btrfs_du(paths: list[str]) -> dict[str, tuple[int, int, int]]:
    """`btrfs filesystem du -s --raw`: each path's (total, exclusive, set
    shared) bytes of extents; inline data left out."""
    done = subprocess.run(["btrfs", "filesystem", "du", "-s", "--raw", *paths],
                          capture_output=True, text=True, check=True)  # fmt: skip
    rows = [line.split(None, 3) for line in done.stdout.splitlines()[1:]]
    return {r[3]: (int(r[0]), int(r[1]), int(r[2])) for r in rows}
