"""Which store a host's snapshots live in: hardlinked trees or btrfs subvolumes.

What is on disk decides first: a host whose newest snapshot is a subvolume
stays on btrfs, one whose newest snapshot is a plain tree stays hardlinked
(`grabber migrate HOST` moves it).  A host with no snapshot yet gets the
configured kind; "auto" is btrfs when the repository is on btrfs and the
grabber can delete subvolumes there (CAP_SYS_ADMIN through its launcher, or
a filesystem mounted user_subvol_rm_allowed), else hardlink.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from pullsnap import caps, errors
from pullsnap.grabber.store import btrfsioctl
from pullsnap.grabber.store.repository import HostRepo

KINDS = ("auto", "hardlink", "btrfs")


class BtrfsUnavailable(errors.ConfigError):
    """store = "btrfs": {}"""


@dataclass(frozen=True)
class Filesystem:
    """What decides whether the btrfs store is possible on the repository."""

    btrfs: bool
    admin: bool  # the grabber holds CAP_SYS_ADMIN (permitted)
    user_rm: bool  # mounted user_subvol_rm_allowed


@dataclass(frozen=True)
class Choice:
    kind: str  # "hardlink" or "btrfs"
    why: str
    fix: str = ""  # the command that makes btrfs possible, when it was asked for and is not


def impossible(fs: Filesystem) -> tuple[str, str] | None:
    """Why the btrfs store cannot work here, and the fix (pure); None when it can."""
    if not fs.btrfs:
        return (
            "the repository is not on btrfs",
            'put the repository on a btrfs filesystem (mkfs.btrfs), or set store = "auto"',
        )
    if not fs.admin and not fs.user_rm:
        return (
            "the grabber cannot delete subvolumes (no CAP_SYS_ADMIN, and the filesystem "
            "is not mounted user_subvol_rm_allowed)",
            "install the launcher (grabber install-launcher), or mount -o "
            "remount,user_subvol_rm_allowed the repository's filesystem",
        )
    return None


def choose(configured: str, fs: Filesystem, existing: str | None) -> Choice:
    """The store of one host (pure); `existing`: the kind of its newest snapshot."""
    if existing is not None:
        why = f"its snapshots are {'subvolumes' if existing == 'btrfs' else 'hardlinked trees'}"
        fix = ""
        if existing == "hardlink" and configured == "btrfs":
            fix = "grabber migrate HOST (copies the newest snapshot into a subvolume)"
            why += ' (store = "btrfs" takes effect once it is migrated)'
        return Choice(existing, why, fix)
    problem = impossible(fs)
    if configured == "hardlink":
        return Choice("hardlink", 'store = "hardlink"')
    if problem is None:
        how = "CAP_SYS_ADMIN deletes them" if fs.admin else "mounted user_subvol_rm_allowed"
        return Choice("btrfs", f'store = "{configured}": the repository is on btrfs ({how})')
    if configured == "btrfs":
        return Choice("btrfs", f'store = "btrfs", but {problem[0]}', problem[1])
    return Choice("hardlink", f'store = "auto": {problem[0]}')


def mount_of(path: str) -> tuple[str, set[str]]:
    """The type and options of the mount `path` is on (/proc/self/mounts,
    the longest mount point it is under)."""
    real = os.path.realpath(path)
    best, kind, options = "", "", ""
    with contextlib.suppress(OSError), open("/proc/self/mounts", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 4:
                continue
            point = fields[1].replace("\\040", " ")
            inside = real == point or real.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind, options = point, fields[2], fields[3]
    return kind, set(options.split(","))


def probe(path: str) -> Filesystem:
    kind, options = mount_of(path)
    admin = "sys_admin" in caps.read_state().permitted
    return Filesystem(kind == "btrfs", admin, "user_subvol_rm_allowed" in options)


def existing_kind(host: HostRepo) -> str | None:
    newest = host.newest_good()
    if newest is None:
        return None
    try:
        fd = btrfsioctl.open_dir(host.tree(newest.name))
    except OSError:
        return None
    try:
        return "btrfs" if btrfsioctl.is_subvolume(fd) else "hardlink"
    finally:
        os.close(fd)


def settle(host: HostRepo, configured: str) -> tuple[Choice, Filesystem]:
    fs = probe(host.path if host.exists() else host.root)
    return choose(configured, fs, existing_kind(host)), fs


def open_kind(host: HostRepo, configured: str, strict: bool = False):  # -> Store
    """The store of `host`.  `strict` (a run): btrfs where it cannot work
    (no subvolume could be deleted) is refused with the fix."""
    from pullsnap.grabber.store.btrfs import BtrfsStore
    from pullsnap.grabber.store.hardlink import HardlinkStore

    choice, fs = settle(host, configured)
    if choice.kind == "hardlink":
        return HardlinkStore(host)
    problem = impossible(fs)
    if strict and problem is not None:
        raise BtrfsUnavailable(f"{host.host}: {problem[0]}: {problem[1]}")
    return BtrfsStore(host, admin=fs.admin)
