"""What btrfs snapshots take on disk: extents, not st_blocks sums.

Snapshots share unchanged extents, and a changed file shares the blocks it
did not change, so adding up st_blocks counts shared data again and again.
btrfs says what each snapshot holds alone (`btrfs filesystem du`, FIEMAP's
FIEMAP_EXTENT_SHARED, linux/fiemap.h):

    size     Total: every extent the tree references
    unique   Exclusive: referenced by no other file anywhere (what deleting
             this snapshot alone frees)
    total    the host directory's Exclusive plus its Set shared: every
             extent its trees reference, once

The new snapshot's "added" figure is measured on the manifest walk: the
files it shows (those the run wrote) are asked for their extents (FIEMAP),
and what no other file shares is what the run took.  btrfs makes inodes as
it needs them (space.py): the inode side counts the files the run wrote.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import struct
import subprocess
from dataclasses import asdict

from pullsnap import caps, childenv
from pullsnap.grabber.store import atomicfile, usage
from pullsnap.grabber.store.base import HostUsage, TreeUsage
from pullsnap.grabber.store.repository import HostRepo
from pullsnap.grabber.store.space import Space

BTRFS = "/usr/bin/btrfs"
CACHE = ".usage.json"
CACHE_FORMAT = "btrfs-1"

# linux/fiemap.h: struct fiemap (32 bytes) then struct fiemap_extent (56 each).
FS_IOC_FIEMAP = 0xC020660B  # _IOWR('f', 11, struct fiemap)
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_SHARED = 0x2000
_HEADER = struct.Struct("=QQIIII")
_EXTENT = struct.Struct("=QQQQQIIII")
_BATCH = 128
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


def exclusive_bytes(fd: int) -> int:
    """The bytes of the file's extents that no other file shares (FIEMAP)."""
    start, found = 0, 0
    while True:
        request = bytearray(_HEADER.pack(start, (1 << 64) - 1 - start, FIEMAP_FLAG_SYNC, 0,
                                         _BATCH, 0) + bytes(_EXTENT.size * _BATCH))  # fmt: skip
        fcntl.ioctl(fd, FS_IOC_FIEMAP, request, True)
        mapped = _HEADER.unpack_from(request)[3]
        if mapped == 0:
            return found
        last = False
        for i in range(mapped):
            logical, _, length, _, _, flags, _, _, _ = _EXTENT.unpack_from(
                request, _HEADER.size + i * _EXTENT.size
            )
            if not flags & FIEMAP_EXTENT_SHARED:
                found += length
            last = bool(flags & FIEMAP_EXTENT_LAST)
            start = logical + length
        if last:
            return found


class ExclusiveMeter:
    """The new snapshot's extents that it alone holds, from the files the
    manifest walk shows (written by the run; carried files are shared)."""

    def __init__(self) -> None:
        self.bytes = 0
        self.inodes = 0

    def directory(self, fd: int) -> None:
        return None  # a directory the run did not change is shared metadata

    def entry(self, dir_fd: int, name: bytes, inode: int) -> None:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            return
        if not stat.S_ISREG(st.st_mode):
            return  # symlinks, devices: metadata only
        self.inodes += 1
        try:
            fd = os.open(name, _READ, dir_fd=dir_fd)
        except OSError:
            return
        try:
            self.bytes += exclusive_bytes(fd)
        except OSError:
            self.bytes += st.st_blocks * 512  # no FIEMAP: as if nothing were shared
        finally:
            os.close(fd)

    def result(self) -> Space:
        return Space(self.bytes, self.inodes)


def parse_du(text: str) -> dict[str, tuple[int, int, int]]:
    """`btrfs filesystem du -s --raw` output: path -> (total, exclusive, set shared) (pure)."""
    found = {}
    for line in text.splitlines()[1:]:
        parts = line.split(None, 3)
        if len(parts) == 4 and all(p.isdigit() for p in parts[:3]):
            found[parts[3]] = (int(parts[0]), int(parts[1]), int(parts[2]))
    return found


def du(paths: list[str]) -> tuple[dict[str, tuple[int, int, int]], bool]:
    """(figures by path, complete): `btrfs filesystem du` of each path, with
    the receiver's CAP_DAC_OVERRIDE ambient when the grabber holds it (a
    --super snapshot has root's unreadable directories)."""
    held = caps.read_state().permitted & caps.read_state().inheritable
    lift = ("dac_override",) if "dac_override" in held else ()
    with caps.ambient(lift) if lift else contextlib.nullcontext():
        done = subprocess.run([BTRFS, "filesystem", "du", "-s", "--raw", "--", *paths],
                              capture_output=True, text=True, env=childenv.child_env(),
                              check=False)  # fmt: skip
    return parse_du(done.stdout), done.returncode == 0


def measure(host: HostRepo, use_cache: bool = True) -> HostUsage:
    trees, key = usage._key(usage.trees_of(host))
    cache_path = os.path.join(host.path, CACHE)
    cached = atomicfile.read_json(cache_path) if use_cache else None
    if isinstance(cached, dict) and cached.get("format") == CACHE_FORMAT and cached["key"] == key:
        return HostUsage(tuple(TreeUsage(**t) for t in cached["trees"]), cached["total"])
    if not trees:
        return HostUsage((), 0)
    figures, complete = du([path for _, path, _ in trees] + [host.path])
    found = []
    for label, path, state in trees:
        total, exclusive, _ = figures.get(path, (0, 0, 0))
        found.append(TreeUsage(label, state, total, exclusive, 0))
    _, exclusive, shared = figures.get(host.path, (0, 0, 0))
    result = HostUsage(tuple(found), exclusive + shared, 0 if complete else 1)
    if complete:
        value = {"format": CACHE_FORMAT, "key": key, "total": result.total,
                 "trees": [asdict(t) for t in found]}  # fmt: skip
        with contextlib.suppress(OSError):
            atomicfile.replace_json(cache_path, value, owner_of=host.path)
    return result
