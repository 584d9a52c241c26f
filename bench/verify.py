"""Is a restored tree the source?  Content, type, mode, owner, mtime (ns),
symlink target, xattrs (ACLs are the system.posix_acl_* xattrs) and which
names share an inode.  A contender that skipped work shows up here."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass

IGNORED_XATTRS = ("security.selinux", "user.rsync.")  # fake-super's own records
MAX_PROBLEMS = 12


@dataclass(frozen=True)
class Entry:
    kind: str
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    digest: str
    link: bytes
    xattrs: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Tree:
    entries: dict[bytes, Entry]
    hardlinks: frozenset[frozenset[bytes]]

    @property
    def files(self) -> int:
        return sum(1 for e in self.entries.values() if e.kind == "file")

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries.values() if e.kind == "file")


KINDS = (
    (stat.S_ISDIR, "dir"),
    (stat.S_ISREG, "file"),
    (stat.S_ISLNK, "link"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISCHR, "chr"),
    (stat.S_ISBLK, "blk"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in KINDS if test(mode)), "other")


def _xattrs(path: bytes) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    return tuple(
        (name, os.getxattr(path, name, follow_symlinks=False))
        for name in sorted(names)
        if not name.startswith(IGNORED_XATTRS)
    )


def _digest(path: bytes) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def describe(root: str) -> Tree:
    base = os.fsencode(root)
    entries: dict[bytes, Entry] = {}
    inodes: dict[tuple[int, int], list[bytes]] = {}
    for dirpath, dirs, files in os.walk(base):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, base)
            st = os.lstat(path)
            kind = _kind(st.st_mode)
            if kind == "file":
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            entries[rel] = Entry(
                kind=kind,
                mode=stat.S_IMODE(st.st_mode) if kind != "link" else 0,
                uid=st.st_uid,
                gid=st.st_gid,
                size=st.st_size if kind == "file" else 0,
                mtime_ns=st.st_mtime_ns if kind != "link" else 0,
                digest=_digest(path) if kind == "file" else "",
                link=os.readlink(path) if kind == "link" else b"",
                xattrs=_xattrs(path) if kind != "link" else (),
            )
    groups = frozenset(frozenset(g) for g in inodes.values() if len(g) > 1)
    return Tree(entries, groups)


def differences(source: Tree, restored: Tree) -> list[str]:
    """What differs, one line per kind of problem with examples (pure)."""
    found: dict[str, list[bytes]] = {}
    for rel in sorted(set(source.entries) | set(restored.entries)):
        a, b = source.entries.get(rel), restored.entries.get(rel)
        if b is None:
            found.setdefault("missing", []).append(rel)
        elif a is None:
            found.setdefault("extra", []).append(rel)
        elif a != b:
            for name in Entry.__dataclass_fields__:
                if getattr(a, name) != getattr(b, name):
                    found.setdefault(name, []).append(rel)
    if source.hardlinks != restored.hardlinks:
        lost = source.hardlinks - restored.hardlinks
        found.setdefault("hardlinks", []).extend(sorted(next(iter(g)) for g in lost) or [b"?"])
    lines = []
    for what, paths in found.items():
        examples = ", ".join(p.decode("utf-8", "replace") for p in paths[:2])
        lines.append(f"{what}: {len(paths)} ({examples})")
    return lines[:MAX_PROBLEMS]
