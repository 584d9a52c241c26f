"""The hardlink store: each snapshot a plain tree, unchanged files hard
links of the previous snapshot's (rsync --link-dest).

    plan     bases: the newest good snapshot, then the trees of interrupted
             or failed runs (newest first: what had arrived is not sent
             again), then the newest suspect snapshot newer than the base
    begin    mkdir <name>.incomplete
    publish  rename <name>.incomplete to <name>
    delete   rename the trees into .trash/ (atomic, instant), remove them
             there now or later (removal.remove_tree)
    usage    every inode counted once (usage.py)
    meter    new inodes: all their links inside the new tree (growth.py)
"""

from __future__ import annotations

import contextlib
import os
import stat

from pullsnap import caps, errors
from pullsnap.grabber.store import growth, usage
from pullsnap.grabber.store.base import HostUsage, Target, recorded_added
from pullsnap.grabber.store.removal import remove_tree
from pullsnap.grabber.store.repository import INCOMPLETE, Attempt, HostRepo
from pullsnap.grabber.store.space import Space


class HardlinkStore:
    def __init__(self, host: HostRepo) -> None:
        self.host = host

    def plan(self, name: str) -> Target:
        host = self.host
        base = host.newest_good()
        reused = self.reusable_trees()
        # A suspect snapshot is no base, but its files need not travel again.
        suspect = [a for a in host.attempts() if a.has_tree and a.record.get("suspect")]
        newer_suspect = [host.tree(a.name) for a in suspect[-1:] if not base or a.name > base.name]
        bases = ([host.tree(base.name)] if base else []) + reused + newer_suspect
        return Target(name, host.incomplete(name), tuple(bases), tuple(reused))

    def reusable_trees(self) -> list[str]:
        """Trees of interrupted or failed runs, newest first: extra --link-dest."""
        return [
            self.host.incomplete(a.name)
            for a in reversed(self.host.attempts())
            if a.has_incomplete and a.state in ("interrupted", "failed")
        ]

    def begin(self, target: Target) -> None:
        # The trash first: a run that fills the filesystem (inodes) must
        # still be able to move its tree aside, which needs no new inode then.
        self._trash_dir()
        os.mkdir(target.tree, 0o700)

    def publish(self, name: str) -> None:
        os.rename(self.host.incomplete(name), self.host.tree(name))
        newest = self.host.newest_good()
        if newest is not None and newest.name == name:
            self.host.point_latest(name)

    def discard(self, name: str) -> None:
        self._trash(self.host.incomplete(name), name + INCOMPLETE)

    def delete(self, name: str, *, now: bool = True) -> None:
        host = self.host
        host.check_deletable(name)
        for path, label in ((host.tree(name), name), (host.incomplete(name), name + INCOMPLETE)):
            if _is_real_dir(path):
                self._trash(path, label, now)
            elif os.path.lexists(path):
                raise errors.NotADirectory(path)
        host.forget(name)

    def _trash_dir(self) -> str:
        trash = self.host.trash()
        with contextlib.suppress(FileExistsError):
            os.mkdir(trash, 0o700)
            self.host.owned_by_grabber(trash)
        return trash

    def _trash(self, path: str, label: str, remove: bool = True) -> None:
        target = os.path.join(self._trash_dir(), f"{label}.{os.getpid()}")
        # Moving a directory to another parent rewrites its "..", which needs
        # write permission on it (rename(2) EACCES); a tree copied from a
        # read-only "/" (mode 0555) has none until we give it back.
        # With --super the tree's top may be root's (a source of "/"): the
        # receiver's capabilities, held by the grabber, do what ours cannot.
        with caps.effective_while(("dac_override", "fowner")):
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_IWUSR:
                with contextlib.suppress(OSError):
                    os.chmod(path, stat.S_IMODE(st.st_mode) | stat.S_IWUSR)
            os.rename(path, target)
        if remove:
            remove_tree(target)

    def empty_trash(self) -> None:
        trash = self.host.trash()
        if os.path.isdir(trash):
            for entry in os.listdir(trash):
                remove_tree(os.path.join(trash, entry))

    def usage(self, use_cache: bool = True) -> HostUsage:
        return usage.measure(self.host, use_cache)

    def meter(self, name: str) -> growth.HardlinkMeter:
        return growth.HardlinkMeter()

    def written_after(self, name: str) -> int | None:
        return None  # a file rsync stored anew has an inode of its own

    def added(self, attempt: Attempt) -> Space:
        """What the run measured (growth.py), or for a record from before
        that was measured, rsync's transferred size and no inodes."""
        return recorded_added(attempt.record)


def _is_real_dir(path: str) -> bool:
    """A directory, not a symlink to one (lstat)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False
