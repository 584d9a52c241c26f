"""`grabber versions HOST PATH`: every distinct version of one file.

A file that did not change between runs is the same inode in both
snapshots (rsync --link-dest hardlinks it), so the versions of a path are
the runs of equal inodes along the snapshots, oldest first.  Each version
is shown with the snapshots that hold it, its size and mtime, and the
newest snapshot path to copy it back from.

The path is looked up inside each snapshot one component at a time without
following symlinks: a snapshot holds the backed-up host's symlinks, and
`etc -> /etc` must not lead to the backup host's own /etc.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from pullsnap import errors
from pullsnap.config import load_grabber
from pullsnap.grabber.store.repository import HostRepo
from pullsnap.grabber.views import readonly
from pullsnap.grabber.views.treediff import Meta, meta_of, show
from pullsnap.units import human_size


@dataclass(frozen=True)
class Sighting:
    snapshot: str
    inode: int | None  # None: the path is not in this snapshot
    meta: Meta | None = None


@dataclass(frozen=True)
class Version:
    inode: int | None  # None: a gap, the path was absent
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
    for attempt in host.attempts():
        if not attempt.has_tree:
            continue
        hit = lookup(host.tree(attempt.name), parts)
        if hit is None:
            found.append(Sighting(attempt.name, None))
        else:
            path, st = hit
            found.append(Sighting(attempt.name, st.st_ino, meta_of(path, st)))
    return found


def _mtime(meta: Meta) -> str:
    if meta.kind in ("dir", "link"):
        return "-"
    when = dt.datetime.fromtimestamp(meta.mtime_ns / 1e9, dt.UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


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
        lines.append(f"  {size:>9}  {span}  modified {_mtime(m)}, mode {m.mode:04o}, "
                     f"owner {m.uid}:{m.gid}")  # fmt: skip
        lines.append(f"             {show(os.fsencode(host.tree(last)) + os.fsencode(path))}")
    return "\n".join(lines) + "\n"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "versions", help="every distinct version of a file across a host's snapshots",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="PATH is the file's absolute path on the backed-up host (or its path\n"
        "inside one snapshot).  An unchanged file is one hardlinked inode from snapshot\n"
        "to snapshot; each new inode is a new version.  For each version: the snapshots\n"
        "that hold it, its size, mtime, mode and owner (from rsync's fake-super xattr\n"
        "when there is one), and the path to copy it back from (README \"The repository\n"
        "and restoring\" says how to keep owners and modes).\n\n"
        "example:  grabber versions web1 /etc/ssh/sshd_config",
    )  # fmt: skip
    p.add_argument("host", type=readonly.host_argument, metavar="HOST")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_grabber(args.config)
    host = readonly.existing_host(cfg, args.host)
    parts = components(strip_snapshot_prefix(host, args.path))
    path = os.fsdecode(b"/" + b"/".join(parts))
    try:
        versions = group(sightings(host, parts))
    except OSError as e:
        # Not readable as this user (--super snapshots keep their owners'
        # modes), or longer than PATH_MAX below the repository.
        where = show(os.fsencode(e.filename)) if e.filename else host.path
        raise errors.RunFailed(f"cannot read {where}: {e.strerror or e}") from None
    if not any(v.inode is not None for v in versions):
        raise errors.UsageError(f"{path} is in no snapshot of {args.host}")
    if args.json:
        body = [
            {"snapshots": list(v.snapshots), "present": v.meta is not None,
             "kind": v.meta.kind if v.meta else None, "size": v.meta.size if v.meta else None,
             "mtime_ns": v.meta.mtime_ns if v.meta else None,
             "copy_from": show(os.fsencode(host.tree(v.snapshots[-1])) + os.fsencode(path))
             if v.meta else None}
            for v in versions
        ]  # fmt: skip
        print(json.dumps(body, indent=1))
    else:
        print(render(host, path, versions), end="")
    return errors.OK
