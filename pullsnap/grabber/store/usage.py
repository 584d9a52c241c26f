"""What hardlinked snapshots take on disk (`grabber du`, status): what each
tree holds, and what it holds alone.

Snapshots share unchanged files as hardlinks, so `du -s` of one snapshot
says little about what deleting it would free.  Every inode is counted once
(its blocks, as du(1) does), and belongs to the one tree that holds it, or
to no single tree when several do:

    size     what the tree references (du -s of that tree alone)
    unique   what only this tree references: deleting it alone frees this
             (and the inodes: `unique_inodes`)
    total    every distinct inode of the host: the space the host uses
             (and how many: `inodes`)

Directories are never hardlinked, so they are always unique.  The walk
reads each directory once; an inode already seen in an earlier tree needs
no lstat(2) (scandir(3) gives d_ino), so later snapshots cost a readdir.

The result is cached in `<host>/.usage.json` under the list of trees
(name, inode, mtime): snapshots do not change after they are published, so
the cache stays right until a snapshot comes or goes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import asdict

from pullsnap.grabber.store import atomicfile
from pullsnap.grabber.store.base import HostUsage, TreeUsage
from pullsnap.grabber.store.repository import HostRepo

CACHE = ".usage.json"
CACHE_FORMAT = 2
_SHARED = -1


class Accounting:
    """Inode accounting over trees walked one after another (pure)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.sizes: list[int] = []
        self.single: list[int] = []  # bytes of inodes with one link: unique by definition
        self.single_count: list[int] = []  # and how many
        # inode -> [owning tree index or _SHARED, last tree that counted it, bytes]
        self.inodes: dict[int, list[int]] = {}

    def start(self, name: str) -> None:
        self.names.append(name)
        self.sizes.append(0)
        self.single.append(0)
        self.single_count.append(0)

    def seen(self, inode: int) -> bool:
        return inode in self.inodes

    def add(self, inode: int, nbytes: int, nlink: int) -> None:
        """One entry of the current tree; `nlink` 1 for directories."""
        tree = len(self.names) - 1
        if nlink <= 1:
            self.sizes[tree] += nbytes
            self.single[tree] += nbytes
            self.single_count[tree] += 1
            return
        slot = self.inodes.get(inode)
        if slot is None:
            self.inodes[inode] = [tree, tree, nbytes]
            self.sizes[tree] += nbytes
        else:
            self.again(inode)

    def again(self, inode: int) -> None:
        """An inode seen before, met in the current tree."""
        tree = len(self.names) - 1
        slot = self.inodes[inode]
        if slot[1] == tree:  # a hardlink inside this tree: counted already
            return
        self.sizes[tree] += slot[2]
        slot[1] = tree
        if slot[0] != tree:
            slot[0] = _SHARED

    def result(self) -> tuple[list[int], list[int], int]:
        """(sizes, uniques, total), trees in the order they were started."""
        unique = list(self.single)
        total = sum(self.single)
        for owner, _, nbytes in self.inodes.values():
            total += nbytes
            if owner != _SHARED:
                unique[owner] += nbytes
        return list(self.sizes), unique, total

    def inode_counts(self) -> tuple[list[int], int]:
        """(inodes only each tree holds, every distinct inode), as `result`."""
        unique = list(self.single_count)
        for owner, _, _ in self.inodes.values():
            if owner != _SHARED:
                unique[owner] += 1
        return unique, sum(self.single_count) + len(self.inodes)


class TreeWalk:
    """Every entry below `path`, depth first, following no symlink;
    `unreadable` counts the directories that could not be listed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.unreadable = 0

    def __iter__(self) -> Iterator[os.DirEntry[bytes]]:
        stack = [os.fsencode(self.path)]
        while stack:
            try:
                listing = os.scandir(stack.pop())
            except OSError:
                self.unreadable += 1
                continue
            with listing:
                for entry in listing:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    yield entry


def walk_tree(acc: Accounting, path: str) -> int:
    """Feed one tree to `acc`; return how many directories could not be read."""
    try:
        top = os.lstat(path)
    except FileNotFoundError:  # deleted since it was listed
        return 0
    acc.add(top.st_ino, top.st_blocks * 512, 1)
    walk = TreeWalk(path)
    for entry in walk:
        is_dir = entry.is_dir(follow_symlinks=False)  # cached by the walk's own call
        if not is_dir and acc.seen(entry.inode()):
            acc.again(entry.inode())
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        acc.add(entry.inode(), st.st_blocks * 512, 1 if is_dir else st.st_nlink)
    return walk.unreadable


def trees_of(host: HostRepo) -> list[tuple[str, str, str]]:
    """(label, path, state) of every tree in the host's directory, oldest first."""
    found = []
    for attempt in host.attempts():
        state = "suspect" if attempt.record.get("suspect") else attempt.state
        if attempt.has_tree:
            found.append((attempt.name, host.tree(attempt.name), state))
        if attempt.has_incomplete:
            label = attempt.name + ".incomplete"
            found.append((label, host.incomplete(attempt.name), state))
    return found


def _key(trees: list[tuple[str, str, str]]) -> tuple[list[tuple[str, str, str]], list[list]]:
    """(the trees still there, their cache key): a prune may delete one meanwhile."""
    present, key = [], []
    for label, path, state in trees:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        present.append((label, path, state))
        key.append([label, state, st.st_ino, st.st_mtime_ns])
    return present, key


def measure(host: HostRepo, use_cache: bool = True) -> HostUsage:
    """The host's usage, from the cache when the trees are the same."""
    trees, key = _key(trees_of(host))
    cache_path = os.path.join(host.path, CACHE)
    cached = atomicfile.read_json(cache_path) if use_cache else None
    if isinstance(cached, dict) and cached.get("format") == CACHE_FORMAT and cached["key"] == key:
        with_trees = tuple(TreeUsage(**t) for t in cached["trees"])
        return HostUsage(with_trees, cached["total"], cached["unreadable"], cached["inodes"])
    acc = Accounting()
    unreadable = 0
    for label, path, _ in trees:
        acc.start(label)
        unreadable += walk_tree(acc, path)
    sizes, uniques, total = acc.result()
    unique_inodes, inodes = acc.inode_counts()
    measured = zip(trees, sizes, uniques, unique_inodes, strict=True)
    usage = HostUsage(
        tuple(TreeUsage(t[0], t[2], s, u, n) for t, s, u, n in measured), total, unreadable, inodes
    )
    if not unreadable:
        value = {"format": CACHE_FORMAT, "key": key, "total": total, "unreadable": 0,
                 "inodes": inodes, "trees": [asdict(t) for t in usage.trees]}  # fmt: skip
        # A reader without write access measures again next time.
        with contextlib.suppress(OSError):
            atomicfile.replace_json(cache_path, value, owner_of=host.path)
    return usage
