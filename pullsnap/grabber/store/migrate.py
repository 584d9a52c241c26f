"""Moving a host from the hardlink store to btrfs without a full transfer.

The newest good snapshot, a plain tree, is copied into a subvolume with
reflinks (`cp -a --reflink=always`: no data is copied, the new files share
the old ones' extents; hard links inside the tree stay hard links), made
read-only, and put in its place; the plain tree goes.  The next run is a
writable snapshot of it.  The older snapshots stay plain trees until
retention removes them (the btrfs store deletes those as trees).

    <host>/<name>.migrating/   the subvolume while it is filled
    <host>/<name>/             then the subvolume; the tree went to .trash/

Run as root (a --super snapshot has root's files, which only root can copy
with their owners), with the host's lock held: a backup then waits.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from pullsnap import childenv, errors, oneshot
from pullsnap.grabber.store import btrfsioctl, storekind
from pullsnap.grabber.store.removal import remove_tree
from pullsnap.grabber.store.repository import HostRepo

MIGRATING = ".migrating"
CP = "/bin/cp"


class CannotMigrate(errors.RunFailed):
    """{}"""


def migrate(host: HostRepo, now: str, say: Callable[[str], None]) -> str:
    """Make `host`'s newest good snapshot a subvolume; its name."""
    kind, _ = storekind.mount_of(host.path)
    if kind != "btrfs":
        raise CannotMigrate(f"{host.host}: the repository is not on btrfs ({kind or 'unknown'}): "
                            "move it to a btrfs filesystem first")  # fmt: skip
    holder = {"pid": os.getpid(), "since": now, "by": "grabber migrate"}
    with host.lock(holder):
        newest = host.newest_good()
        if newest is None:
            raise CannotMigrate(f"{host.host}: no good snapshot to migrate (the next run "
                                "makes a subvolume anyway)")  # fmt: skip
        if storekind.existing_kind(host) == "btrfs":
            say(f"{host.host}: {newest.name} is a subvolume already: nothing to do")
            return newest.name
        tree, staging = host.tree(newest.name), host.tree(newest.name) + MIGRATING
        if os.path.lexists(staging):
            _destroy(host, os.path.basename(staging))
        parent = btrfsioctl.open_dir(host.path)
        try:
            btrfsioctl.create_subvolume(parent, os.path.basename(staging))
        finally:
            os.close(parent)
        say(f"{host.host}: copying {newest.name} into a subvolume with reflinks")
        done = oneshot.run([CP, "-a", "--reflink=always", "--", tree + "/.", staging + "/"],
                           env=childenv.child_env())  # fmt: skip
        if not done.ok:
            _destroy(host, os.path.basename(staging))
            first = (done.stderr.strip().splitlines() or ["failed"])[0]
            raise CannotMigrate(f"{host.host}: cp --reflink=always: {first} (both trees must "
                                "be on the same btrfs filesystem)")  # fmt: skip
        fd = btrfsioctl.open_dir(staging)
        try:
            btrfsioctl.set_readonly(fd)
        finally:
            os.close(fd)
        trash = host.trash()
        with contextlib.suppress(FileExistsError):
            os.mkdir(trash, 0o700)
            host.owned_by_grabber(trash)
        aside = os.path.join(trash, f"{newest.name}.hardlink.{os.getpid()}")
        os.rename(tree, aside)
        os.rename(staging, tree)
        remove_tree(aside)
        say(f"{host.host}: {newest.name} is a subvolume now; the next run builds on it")
        return newest.name


def _destroy(host: HostRepo, leaf: str) -> None:
    """A half-made subvolume of ours (root runs this command)."""
    parent = btrfsioctl.open_dir(host.path)
    try:
        btrfsioctl.destroy(parent, leaf)
    finally:
        os.close(parent)
