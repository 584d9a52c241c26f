"""Hard-link groups in a writable snapshot, separated before rsync --inplace.

rsync --inplace writes into the destination file's inode, so every other
link of it sees the new data (rsync(1) --inplace: "hard links are not
broken").  A group the backed-up host has since split (a changed, b not)
would end with a's data in b, then b's in a.  Before the run, every group
keeps one link (the first path in byte order) and loses the others; rsync -H
makes them again where the host still has them linked, and sends the rest.

The groups come from the base snapshot's manifest (files with one inode
under several paths); without one, from a walk (lstat where st_nlink > 1).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable, Mapping

from pullsnap.grabber.integrity import manifest, tree

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def extras(groups: Mapping[int, list[bytes]]) -> list[bytes]:
    """All but the first path (in byte order) of every group of two or more (pure)."""
    found = []
    for paths in groups.values():
        if len(paths) > 1:
            found += sorted(paths)[1:]
    return sorted(found)


def extra_links(path: str, manifest_path: str | None) -> list[bytes]:
    """The paths to unlink in the tree at `path`."""
    entries = manifest.read(manifest_path) if manifest_path else None
    groups: dict[int, list[bytes]] = {}
    if entries is not None:
        for entry in entries.values():
            groups.setdefault(entry.inode, []).append(entry.path)
        return extras(groups)
    root = tree.open_tree(path)
    try:
        for dir_fd, name, rel, inode in tree.walk_files(root):
            with contextlib.suppress(FileNotFoundError):
                if os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_nlink > 1:
                    groups.setdefault(inode, []).append(rel)
    finally:
        os.close(root)
    return extras(groups)


def unlink_all(path: str, paths: Iterable[bytes]) -> None:
    """Unlink each relative path below `path`, following no symlink on the way."""
    root = os.open(path, _DIRECTORY)
    try:
        for rel in paths:
            *dirs, leaf = rel.split(b"/")
            fd = root
            try:
                for part in dirs:
                    opened = os.open(part, _DIRECTORY, dir_fd=fd)
                    if fd != root:
                        os.close(fd)
                    fd = opened
                os.unlink(leaf, dir_fd=fd)
            except OSError as e:
                # The manifest is older than the tree (gone, or a symlink now
                # where it had a directory): nothing to separate there.
                if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    raise
            finally:
                if fd != root:
                    os.close(fd)
    finally:
        os.close(root)
