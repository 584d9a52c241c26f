"""What btrfs snapshots take on disk: extents, not st_blocks sums.

Snapshots share unchanged extents, and a changed file shares the blocks it
did not change, so adding up st_blocks counts shared data again and again.
btrfs says which extents a file shares (FIEMAP's FIEMAP_EXTENT_SHARED,
linux/fiemap.h), which is what `btrfs filesystem du` adds up:

    size     every extent the tree references ("Total")
    unique   extents no other file anywhere references ("Exclusive": what
             deleting this snapshot alone frees)
    total    every extent the host's trees reference, once (by physical
             address)

A small file's data may live inline, in the filesystem's metadata: FIEMAP
shows it at physical address 0 (FIEMAP_EXTENT_DATA_INLINE), never shared,
whichever snapshots hold it.  The three figures leave it out, as `btrfs
filesystem du` does (and extents not yet placed: delayed or unknown), else
every snapshot would own the inline data it shares and the host total would
fold all of it into one "extent" at address 0.

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
from collections.abc import Iterator
from dataclasses import asdict

from pullsnap.grabber.store import atomicfile, usage
from pullsnap.grabber.store.base import HostUsage, TreeUsage
from pullsnap.grabber.store.repository import HostRepo
from pullsnap.grabber.store.space import Space

CACHE = ".usage.json"
CACHE_FORMAT = "btrfs-3"

# linux/fiemap.h: struct fiemap (32 bytes) then struct fiemap_extent (56 each).
FS_IOC_FIEMAP = 0xC020660B  # _IOWR('f', 11, struct fiemap)
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_UNKNOWN = 0x2
FIEMAP_EXTENT_DELALLOC = 0x4
FIEMAP_EXTENT_DATA_INLINE = 0x200
FIEMAP_EXTENT_SHARED = 0x2000
# Not counted in a tree's extents (as `btrfs filesystem du` skips them).
NOT_EXTENTS = FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_DATA_INLINE
_HEADER = struct.Struct("=QQIIII")
_EXTENT = struct.Struct("=QQQQQIIII")
_BATCH = 128
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


def exclusive_bytes(fd: int) -> int:
    """The bytes of the file's extents that no other file shares; its data
    written out first (FIEMAP_FLAG_SYNC: a file just written has none yet);
    inline data counts: the run wrote it."""
    found = extents(fd, FIEMAP_FLAG_SYNC)
    return sum(length for _, length, flags in found if not flags & FIEMAP_EXTENT_SHARED)


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


class Extents:
    """Extent accounting over trees walked one after another (pure)."""

    def __init__(self) -> None:
        # physical start -> the longest length met there; parts of one extent
        # (a file rewritten in the middle) overlap, so `total` is their union.
        self.seen: dict[int, int] = {}
        self.size = 0
        self.alone = 0

    def start(self) -> None:
        self.size = self.alone = 0

    def add(self, physical: int, length: int, shared: bool) -> None:
        self.size += length
        if not shared:
            self.alone += length
        self.seen[physical] = max(length, self.seen.get(physical, 0))

    @property
    def total(self) -> int:
        """The bytes of the union of every range met."""
        found, reach = 0, 0
        for start in sorted(self.seen):
            end = start + self.seen[start]
            if end > reach:
                found += end - max(start, reach)
                reach = end
        return found


def extents(fd: int, flags: int = 0) -> Iterator[tuple[int, int, int]]:
    """(physical, length, FIEMAP_EXTENT_* flags) of each extent of the file
    open at `fd` (FIEMAP)."""
    start = 0
    while True:
        request = bytearray(_HEADER.pack(start, (1 << 64) - 1 - start, flags, 0, _BATCH, 0)
                            + bytes(_EXTENT.size * _BATCH))  # fmt: skip
        fcntl.ioctl(fd, FS_IOC_FIEMAP, request, True)
        mapped = _HEADER.unpack_from(request)[3]
        if mapped == 0:
            return
        last = False
        for i in range(mapped):
            logical, physical, length, _, _, found, _, _, _ = _EXTENT.unpack_from(
                request, _HEADER.size + i * _EXTENT.size
            )
            yield physical, length, found
            last = bool(found & FIEMAP_EXTENT_LAST)
            start = logical + length
        if last:
            return


def walk_tree(acc: Extents, path: str) -> int:
    """Feed one tree's extents to `acc`; how many directories could not be read."""
    walk = usage.TreeWalk(path)
    for entry in walk:
        if not entry.is_file(follow_symlinks=False):
            continue
        try:
            fd = os.open(entry.path, _READ)
        except OSError:
            continue
        try:
            for physical, length, flags in extents(fd):
                if not flags & NOT_EXTENTS:
                    acc.add(physical, length, bool(flags & FIEMAP_EXTENT_SHARED))
        except OSError:
            pass  # vanished, or no FIEMAP: nothing to count
        finally:
            os.close(fd)
    return walk.unreadable


def measure(host: HostRepo, use_cache: bool = True) -> HostUsage:
    """Each tree's extents (size) and those no other file shares (unique),
    the host's every extent once (total); cached like usage.py's."""
    trees, key = usage._key(usage.trees_of(host))
    cache_path = os.path.join(host.path, CACHE)
    cached = atomicfile.read_json(cache_path) if use_cache else None
    if isinstance(cached, dict) and cached.get("format") == CACHE_FORMAT and cached["key"] == key:
        return HostUsage(tuple(TreeUsage(**t) for t in cached["trees"]), cached["total"])
    acc = Extents()
    found, unreadable = [], 0
    for label, path, state in trees:
        acc.start()
        unreadable += walk_tree(acc, path)
        found.append(TreeUsage(label, state, acc.size, acc.alone, 0))
    result = HostUsage(tuple(found), acc.total, unreadable)
    if not unreadable:
        value = {"format": CACHE_FORMAT, "key": key, "total": result.total,
                 "trees": [asdict(t) for t in found]}  # fmt: skip
        with contextlib.suppress(OSError):
            atomicfile.replace_json(cache_path, value, owner_of=host.path)
    return result
