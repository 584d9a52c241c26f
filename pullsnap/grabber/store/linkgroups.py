"""Hard-link groups in a writable snapshot, separated before rsync --inplace.

rsync --inplace writes into the destination file's inode, so every other
link of it sees the new data (rsync(1) --inplace: "hard links are not
broken").  A group the backed-up host has since split (a changed, b not)
would end with a's data in b, then b's in a.  Before the run, every group
keeps one link (the first path in byte order) and loses the others; rsync -H
makes them again where the host still has them linked, and sends the rest.

The groups come from the base snapshot's manifest (files with one inode
under several paths); without one, from a walk (lstat where st_nlink > 1).
Most files have an inode of their own, so the manifest is scanned for its
inode numbers only (the last-but-one field of each line) and only the lines
of a shared inode are parsed whole: a nightly run of 50,000 files needs no
50,000 JSON parses before its rsync may start.
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


def line_inode(line: str) -> int | None:
    """The inode of a manifest entry line, read from its end without
    parsing the line (pure); None where the shape is not the plain one
    (the caller then parses it whole).  The last field is a snapshot name,
    quoted, with no comma, quote or backslash in it."""
    try:
        _, inode, origin = line.rsplit(",", 2)
    except ValueError:
        return None
    if not (origin.startswith('"') and origin.endswith('"]')):
        return None
    if '"' in origin[1:-2] or "\\" in origin or not inode.isdigit():
        return None
    return int(inode)


def manifest_groups(manifest_path: str) -> dict[int, list[bytes]] | None:
    """The manifest's paths by inode, for inodes under two or more paths
    only; None when there is no readable manifest.  Two passes over the
    file, holding the inode numbers and not the lines (a million files)."""
    f = manifest.open_entries(manifest_path)
    if f is None:
        return None
    with f:
        start = f.tell()
        seen: set[int] = set()
        shared: set[int] = set()
        odd: list[manifest.Entry] = []  # lines of another shape, parsed whole
        for line in f:
            inode = line_inode(line.rstrip("\n"))
            if inode is None:
                entry = manifest.parse_line(line) if line.strip() else None
                if entry is None:
                    continue
                odd.append(entry)
                inode = entry.inode
            if inode in seen:
                shared.add(inode)
            seen.add(inode)
        seen.clear()
        groups: dict[int, list[bytes]] = {}
        f.seek(start)
        for line in f:
            if line_inode(line.rstrip("\n")) in shared:
                entry = manifest.parse_line(line)
                if entry is not None:
                    groups.setdefault(entry.inode, []).append(entry.path)
        for entry in odd:
            if entry.inode in shared:
                groups.setdefault(entry.inode, []).append(entry.path)
    return {inode: paths for inode, paths in groups.items() if len(paths) > 1}


def extra_links(path: str, manifest_path: str | None) -> list[bytes]:
    """The paths to unlink in the tree at `path`."""
    groups = manifest_groups(manifest_path) if manifest_path else None
    if groups is not None:
        return extras(groups)
    groups = {}
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
