"""`grabber versions HOST PATH`: every distinct version of one file.

A file that did not change between runs is the same inode in both
snapshots (rsync --link-dest hardlinks it), so the versions of a path are
the runs of equal inodes along the snapshots, oldest first.  A btrfs
snapshot is a subvolume with a device of its own that keeps every inode
number of the one it was made from, changed or not; there a file is the
same while its inode and its ctime are (any write since the snapshot was
made sets the ctime, and a snapshot keeps it).  Each version
is shown with the snapshots that hold it, its size and mtime, and the
newest snapshot path to copy it back from.

The path is looked up inside each snapshot one component at a time without
following symlinks: a snapshot holds the backed-up host's symlinks, and
`etc -> /etc` must not lead to the backup host's own /etc.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pullsnap import errors
from pullsnap.grabber.store.repository import HostRepo
from pullsnap.grabber.views.treediff import Meta, meta_of, show
from pullsnap.units import human_size


@dataclass(frozen=True)
class Sighting:
    snapshot: str
    # The file's identity: its inode, or (inode, ctime) in a btrfs
    # snapshot; None: the path is not in this snapshot.
    inode: int | tuple[int, int] | None
    meta: Meta | None = None


@dataclass(frozen=True)
class Version:
    inode: int | tuple[int, int] | None  # None: a gap, the path was absent
    snapshots: tuple[str, ...]
    meta: Meta | None = None


def components(path: str) -> list[bytes]:
    """PATH as the backed-up host's absolute path, split (pure); refuses `..`."""
    parts = [p for p in os.fsencode(path).split(b"/") if p not in (b"", b".")]
    if not parts or b".." in parts:
        raise errors.UsageError(f"{path!r}: give the file's absolute path on the backed-up host")
    return parts


def lookup(tree: str, parts: Sequence[bytes]) -> tuple[bytes, os.stat_result] | None:
    """lstat of tree/parts..., refusing to pass through a symlink; None if absent."""
    current = os.fsencode(tree)
    for index, part in enumerate(parts):
        current = current + b"/" + part
        try:
            st = os.lstat(current)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if index < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            return None  # a symlink or a file where a directory should be
    return current, st


def group(sightings: Sequence[Sighting]) -> list[Version]:
    """Runs of equal inodes, absences included, in snapshot order (pure)."""
    versions: list[Version] = []
    for s in sightings:
        if versions and versions[-1].inode == s.inode:
            last = versions[-1]
            versions[-1] = Version(last.inode, (*last.snapshots, s.snapshot), s.meta or last.meta)
        else:
            versions.append(Version(s.inode, (s.snapshot,), s.meta))
    return versions


def strip_snapshot_prefix(host: HostRepo, path: str) -> str:
    """Accept `<repository>/<host>/<snapshot>/etc/hosts` as well as `/etc/hosts`."""
    prefix = host.path.rstrip("/") + "/"
    if path.startswith(prefix):
        rest = path[len(prefix) :]
        _, _, inside = rest.partition("/")
        return "/" + inside
    return path


def sightings(host: HostRepo, parts: Sequence[bytes]) -> list[Sighting]:
    found = []
    device = os.lstat(host.path).st_dev
    for attempt in host.attempts():
        if not attempt.has_tree:
            continue
        hit = lookup(host.tree(attempt.name), parts)
        if hit is None:
            found.append(Sighting(attempt.name, None))
            continue
        path, st = hit
        # A subvolume (btrfs) has a device of its own.
        subvolume = os.lstat(host.tree(attempt.name)).st_dev != device
        identity = (st.st_ino, st.st_ctime_ns) if subvolume else st.st_ino
        found.append(Sighting(attempt.name, identity, meta_of(path, st)))
    return found


def _mtime(meta: Meta) -> str:
    if meta.kind in ("dir", "link"):
        return "-"
    when = dt.datetime.fromtimestamp(meta.mtime_ns / 1e9, dt.UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def snapshot_mode(host: HostRepo, name: str) -> str:
    """ "super" or "fake-super": how the snapshot keeps owners and modes."""
    return str((host.read_record(name) or {}).get("mode", "unknown-mode"))


def render(host: HostRepo, path: str, versions: Sequence[Version]) -> str:
    present = [v for v in versions if v.inode is not None]
    total = sum(len(v.snapshots) for v in versions)
    lines = [f"{show(os.fsencode(path))} on {host.host}: {len(present)} versions "
             f"in {total} snapshots"]  # fmt: skip
    for v in versions:
        first, last = v.snapshots[0], v.snapshots[-1]
        span = first if first == last else f"{first} .. {last}"
        if v.meta is None:
            lines.append(f"  absent    {span}")
            continue
        m = v.meta
        size = human_size(m.size) if m.kind == "file" else m.kind
        kept = snapshot_mode(host, last)
        lines.append(f"  {size:>9}  {span}  modified {_mtime(m)}, mode {m.mode:04o}, "
                     f"owner {m.uid}:{m.gid}, {kept} snapshot")  # fmt: skip
        lines.append(f"             {show(os.fsencode(host.tree(last)) + os.fsencode(path))}")
    return "\n".join(lines) + "\n"


def as_json(host: HostRepo, path: str, versions: Sequence[Version]) -> list[dict[str, Any]]:
    """`grabber versions --json`: one object a version, oldest first."""
    return [
        {"snapshots": list(v.snapshots), "present": v.meta is not None,
         "kind": v.meta.kind if v.meta else None, "size": v.meta.size if v.meta else None,
         "mtime_ns": v.meta.mtime_ns if v.meta else None,
         "snapshot_mode": snapshot_mode(host, v.snapshots[-1]) if v.meta else None,
         "copy_from": show(os.fsencode(host.tree(v.snapshots[-1])) + os.fsencode(path))
         if v.meta else None}
        for v in versions
    ]  # fmt: skip


def find(host: HostRepo, path: str) -> tuple[str, list[Version]]:
    """(the path as the backed-up host names it, its versions); a UsageError
    if no snapshot holds it, a RunFailed if the snapshots cannot be read."""
    parts = components(strip_snapshot_prefix(host, path))
    shown = os.fsdecode(b"/" + b"/".join(parts))
    try:
        versions = group(sightings(host, parts))
    except OSError as e:
        # Not readable as this user (--super snapshots keep their owners'
        # modes), or longer than PATH_MAX below the repository.
        where = show(os.fsencode(e.filename)) if e.filename else host.path
        raise errors.Unreadable(where, e.strerror or e) from None
    if not any(v.inode is not None for v in versions):
        raise errors.UsageError(f"{shown} is in no snapshot of {host.host}")
    return shown, versions
