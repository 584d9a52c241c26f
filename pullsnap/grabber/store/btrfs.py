"""The btrfs store: each snapshot a read-only subvolume, unchanged blocks
shared with the snapshot it was made from (copy-on-write).

    plan     the run starts from the newest good snapshot, or from a newer
             interrupted run's tree (what had arrived is not sent again)
    begin    <name>.incomplete = a writable snapshot of that tree (an empty
             subvolume for the first run); files hard-linked to each other
             in it are separated first (rsync --inplace writes through a
             hard link, so a group the host has since split would be
             corrupted), then rsync --inplace --delete makes it exact
    publish  set it read-only, rename it to <name>
    delete   the subvolume goes (subvoldelete.py: CAP_SYS_ADMIN in a child
             of its own, or its owner on a user_subvol_rm_allowed mount)
    usage    what each snapshot holds alone: its exclusive extents
    meter    the new snapshot's extents shared with no other file (FIEMAP)

The receiving rsync sees only the new subvolume (confine/receiver.py): its
mount namespace leaves nothing else writable, and a read-only flag can be
cleared, or a subvolume deleted, only through a writable mount.
"""

from __future__ import annotations

import contextlib
import os
import time

from pullsnap import caps, errors
from pullsnap.grabber.store import btrfsioctl, btrfsusage, subvoldelete
from pullsnap.grabber.store.base import HostUsage, Target, recorded_added
from pullsnap.grabber.store.removal import remove_tree
from pullsnap.grabber.store.repository import INCOMPLETE, Attempt, HostRepo
from pullsnap.grabber.store.space import Space

# A file the run wrote has a ctime at or after the writable snapshot was
# made; the kernel's clock for ctime is coarse (current_time(), a tick
# behind), so a second's margin: a file of the base that old is hashed again,
# never one of the run's carried.
CTIME_MARGIN_NS = 1_000_000_000


class BtrfsStore:
    def __init__(self, host: HostRepo, admin: bool) -> None:
        self.host = host
        # Whether the grabber holds CAP_SYS_ADMIN (permitted) to delete
        # subvolumes; else the filesystem must allow their owner to.
        self.admin = admin
        self._began: dict[str, int] = {}

    def plan(self, name: str) -> Target:
        host = self.host
        base = host.newest_good()
        # Every interrupted tree goes after a success; the newest, if newer
        # than the base, is where this run starts.
        reused = [
            (a.name, host.incomplete(a.name))
            for a in reversed(host.attempts())
            if a.has_incomplete and a.state in ("interrupted", "failed")
        ]
        newer = [tree for when, tree in reused if base is None or when > base.name]
        start = newer[:1] or ([host.tree(base.name)] if base else [])
        return Target(name, host.incomplete(name), tuple(start),
                      tuple(tree for _, tree in reused), link=False)  # fmt: skip

    def begin(self, target: Target) -> None:
        parent = btrfsioctl.open_dir(self.host.path)
        try:
            self._began[target.name] = time.time_ns()
            leaf = os.path.basename(target.tree)
            if target.bases:
                source = btrfsioctl.open_dir(target.bases[0])
                try:
                    # Only its owner may snapshot a subvolume (or CAP_FOWNER):
                    # a --super snapshot of "/" is root's.
                    with caps.effective_while(("fowner",)):
                        btrfsioctl.snapshot(source, parent, leaf)
                finally:
                    os.close(source)
                self._separate_hard_links(target)
            else:
                btrfsioctl.create_subvolume(parent, leaf)
                os.chmod(target.tree, 0o700)
        finally:
            os.close(parent)

    def _separate_hard_links(self, target: Target) -> None:
        """rsync --inplace writes into a file's inode, and every other link of
        it sees the write (rsync(1) --inplace); a group the host has since
        split must not share it.  All but one link of each group go; rsync -H
        links them again where the host still has them linked."""
        from pullsnap.grabber.store import linkgroups

        extra = linkgroups.extra_links(target.tree, self._base_manifest(target))
        if not extra:
            return
        with caps.effective_while(("dac_override", "fowner")):
            linkgroups.unlink_all(target.tree, extra)

    def _base_manifest(self, target: Target) -> str | None:
        base = os.path.basename(target.bases[0])
        return None if base.endswith(INCOMPLETE) else self.host.manifest_path(base)

    def written_after(self, name: str) -> int | None:
        """Files of `name`'s tree whose ctime is at or after this (ns) may
        have been written by its run (their inodes are the base's); 0 when
        the run's start is not known here (everything is hashed)."""
        began = self._began.get(name)
        return 0 if began is None else began - CTIME_MARGIN_NS

    def publish(self, name: str) -> None:
        incomplete = self.host.incomplete(name)
        fd = btrfsioctl.open_dir(incomplete)
        try:
            # The tree's top may be root's (a source of "/" with --super).
            with caps.effective_while(("fowner",)):
                btrfsioctl.set_readonly(fd)
        finally:
            os.close(fd)
        os.rename(incomplete, self.host.tree(name))
        newest = self.host.newest_good()
        if newest is not None and newest.name == name:
            self.host.point_latest(name)

    def discard(self, name: str) -> None:
        self._destroy(name + INCOMPLETE)

    def delete(self, name: str, *, now: bool = True) -> None:
        """A subvolume is gone at once (btrfs frees its extents in the
        background): `now` changes nothing."""
        host = self.host
        host.check_deletable(name)
        for leaf in (name, name + INCOMPLETE):
            path = os.path.join(host.path, leaf)
            if os.path.isdir(path) and not os.path.islink(path):
                self._destroy(leaf)
            elif os.path.lexists(path):
                raise errors.NotADirectory(path)
        host.forget(name)

    def _destroy(self, leaf: str) -> None:
        path = os.path.join(self.host.path, leaf)
        if not os.path.isdir(path) or os.path.islink(path):
            return
        fd = btrfsioctl.open_dir(path)
        try:
            subvolume = btrfsioctl.is_subvolume(fd)
        finally:
            os.close(fd)
        if not subvolume:
            # A tree a hardlink store left (`grabber migrate`'s source).
            remove_tree(path)
            return
        subvoldelete.delete(self.host.path, leaf, admin=self.admin)

    def empty_trash(self) -> None:
        trash = self.host.trash()
        if os.path.isdir(trash):
            for entry in os.listdir(trash):
                with contextlib.suppress(FileNotFoundError):
                    remove_tree(os.path.join(trash, entry))

    def usage(self, use_cache: bool = True) -> HostUsage:
        return btrfsusage.measure(self.host)

    def meter(self, name: str) -> btrfsusage.ExclusiveMeter:
        return btrfsusage.ExclusiveMeter()

    def added(self, attempt: Attempt) -> Space:
        return recorded_added(attempt.record)
