"""Walking a snapshot tree and hashing its files, never following a link.

Every directory is opened O_NOFOLLOW relative to its parent, and a file
O_NOFOLLOW|O_NONBLOCK and checked to be regular before it is read: the tree
is the backed-up host's, and a symlink or FIFO in it must lead nowhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import threading
from collections.abc import Iterator
from typing import Any, Protocol

ALGORITHM = "blake2b-256"
READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
DIRECTORY = READ | os.O_DIRECTORY


class Shown(Protocol):
    """What a walk shows besides regular files (store.base.Meter is one)."""

    def directory(self, fd: int) -> None: ...

    def entry(self, dir_fd: int, name: bytes, inode: int) -> None: ...


def new_hash() -> Any:
    return hashlib.blake2b(digest_size=32)


def walk_files(
    root_fd: int, prefix: bytes = b"", shown: Shown | None = None
) -> Iterator[tuple[int, bytes, bytes, int]]:
    """(directory fd, name, path, inode) of each regular file below `root_fd`,
    in byte order of `path` (see _entries).

    Directory by directory with O_NOFOLLOW opens relative to the parent,
    so no symlink inside the tree is ever followed; d_type and d_ino come
    with the names (no stat).  An explicit stack of open directories, not
    recursion: a backed-up host decides how deep its tree goes (rsync sends
    about 1024 levels, past Python's recursion limit).  `shown` also sees
    each directory once it is open (`root_fd` first) and every entry that
    is neither a directory nor a regular file.
    """
    if shown is not None:
        shown.directory(root_fd)
    stack = [(root_fd, prefix, _entries(root_fd))]
    try:
        while stack:
            dir_fd, base, entries = stack[-1]
            if not entries:
                stack.pop()
                if dir_fd != root_fd:
                    os.close(dir_fd)
                continue
            name, entry = entries.pop()
            path = base + name
            if entry.is_file(follow_symlinks=False):
                yield dir_fd, name, path, entry.inode()
            elif entry.is_dir(follow_symlinks=False):
                try:
                    sub = os.open(name, DIRECTORY, dir_fd=dir_fd)
                except OSError:
                    continue  # vanished or unreadable: the caller's count shows it
                try:
                    if shown is not None:
                        shown.directory(sub)
                    stack.append((sub, path + b"/", _entries(sub)))
                except BaseException:
                    os.close(sub)
                    raise
            elif shown is not None:
                shown.entry(dir_fd, name, entry.inode())
    finally:
        for dir_fd, _, _ in stack:
            if dir_fd != root_fd:
                os.close(dir_fd)


def _entries(dir_fd: int) -> list[tuple[bytes, os.DirEntry]]:
    """A directory's entries with their names' bytes, last first (the walk
    pops them), sorted so that the walk meets its files in byte order of
    their paths: a directory's name counts as if it ended in "/" ("a.txt"
    before "a/x", as rsync sorts its file list), so everything below it
    comes where its paths sort.  The manifest is written in this order, and the next run
    reads it beside its own walk (manifest.py) without a lookup table."""
    with os.scandir(dir_fd) as it:
        # os.fsencode, inline: UTF-8 with surrogate escapes (PEP 383)
        named = [(e.name.encode("utf-8", "surrogateescape"), e) for e in it]
    named.sort(key=_order, reverse=True)
    return named


def _order(item: tuple[bytes, os.DirEntry]) -> bytes:
    name, entry = item
    return name + b"/" if entry.is_dir(follow_symlinks=False) else name


_READ_SIZE = 1 << 18
_buffers = threading.local()


def hash_file(dir_fd: int, name: bytes) -> tuple[str, int, int]:
    """(hex digest, size, inode) of a regular file, opened without following links."""
    digest, size, inode, _ = hash_file_links(dir_fd, name)
    return digest, size, inode


def hash_file_links(dir_fd: int, name: bytes) -> tuple[str, int, int, int]:
    """(hex digest, size, inode, link count) of a regular file, opened
    without following links.

    Reads into one buffer per thread: hashlib.file_digest allocates (and
    zeroes) 256 KiB for every file, which was a third of the time of hashing
    a tree of small files."""
    buffer = getattr(_buffers, "buffer", None)
    if buffer is None:
        buffer = _buffers.buffer = memoryview(bytearray(_READ_SIZE))
    fd = os.open(name, READ | os.O_NONBLOCK, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{os.fsdecode(name)} is not a regular file")
        digest = new_hash()
        while count := os.readv(fd, (buffer,)):
            digest.update(buffer[:count])
    finally:
        os.close(fd)
    return digest.hexdigest(), st.st_size, st.st_ino, st.st_nlink


def open_tree(path: str) -> int:
    return os.open(path, DIRECTORY)


@contextlib.contextmanager
def reading_as_receiver(mode: str, held: tuple[str, ...]) -> Iterator[None]:
    """With --super the tree holds files only their real owners may read;
    the receiver's CAP_DAC_OVERRIDE (held, not effective) is made effective
    in this thread for the walk only (capabilities(7): per thread)."""
    if mode != "super" or "dac_override" not in held:
        yield
        return
    import prctl

    prctl.cap_effective.dac_override = True
    try:
        yield
    finally:
        prctl.cap_effective.dac_override = False
