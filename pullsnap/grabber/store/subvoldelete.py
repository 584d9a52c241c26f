"""Deleting a snapshot subvolume, with CAP_SYS_ADMIN in the smallest place.

Deleting a subvolume (BTRFS_IOC_SNAP_DESTROY) needs CAP_SYS_ADMIN, or its
owner on a filesystem mounted `user_subvol_rm_allowed` after clearing its
read-only flag (btrfs(5)).  With the launcher the grabber holds
CAP_SYS_ADMIN permitted, never effective; a deletion forks a child that
makes it effective (with CAP_DAC_OVERRIDE and CAP_FOWNER, for a subvolume
a hostile receiver nested inside its snapshot: found, made writable and
deleted first), makes the one ioctl and exits.  The grabber itself never
holds it effective, and no child that reads what the backed-up host sent
holds it at all.
"""

from __future__ import annotations

import errno
import os
import signal

import prctl

from pullsnap import caps, errors
from pullsnap.grabber.store import btrfsioctl

TITLE = "pullsnap-subvolume-delete"  # its command line in ps(1)
# dac_override walks a --super snapshot's root-only directories for nested
# subvolumes; fowner makes a root-owned snapshot writable to unlink them.
KEEP = ("sys_admin", "dac_override", "fowner")


class SubvolumeNotDeleted(errors.RunFailed):
    """cannot delete the subvolume {}: {}"""


def delete(parent: str, leaf: str, admin: bool) -> None:
    """Delete the subvolume `parent`/`leaf`."""
    if not admin:
        _delete_own(parent, leaf)
        return
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 0
        try:
            prctl.set_pdeathsig(signal.SIGKILL)
            prctl.set_proctitle(TITLE)
            # Everything else goes for good.
            held = caps.read_state().permitted
            caps.drop_entirely([c for c in held if c not in KEEP])
            caps.set_no_new_privs()
            caps.set_effective([c for c in KEEP if c in held], True)
            _delete_nested_first(parent, leaf)
        except OSError as e:
            code = e.errno or errno.EIO
        except BaseException:
            code = errno.EIO
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        reason = os.strerror(code) if code > 0 else f"killed by signal {-code}"
        raise SubvolumeNotDeleted(os.path.join(parent, leaf), reason)


def _delete_own(parent: str, leaf: str) -> None:
    """As the subvolume's owner (user_subvol_rm_allowed): writable first."""
    path = os.path.join(parent, leaf)
    try:
        fd = btrfsioctl.open_dir(path)
        try:
            with caps.effective_while(("fowner",)):
                btrfsioctl.set_readonly(fd, False)
        finally:
            os.close(fd)
        _delete_nested_first(parent, leaf)
    except OSError as e:
        raise SubvolumeNotDeleted(path, e.strerror or str(e)) from None


def _delete_nested_first(parent: str, leaf: str) -> None:
    parent_fd = btrfsioctl.open_dir(parent)
    try:
        try:
            btrfsioctl.destroy(parent_fd, leaf)
            return
        except OSError as e:
            if e.errno != errno.ENOTEMPTY:
                raise
        # Subvolumes made inside the snapshot (a receiver may make them in
        # its own tree): a subvolume holding others cannot go first, and
        # they are unlinked from it, so it must be writable.
        fd = btrfsioctl.open_dir(os.path.join(parent, leaf))
        try:
            btrfsioctl.set_readonly(fd, False)
        finally:
            os.close(fd)
        for path in nested(os.path.join(parent, leaf)):
            _delete_nested_first(os.path.dirname(path), os.path.basename(path))
        btrfsioctl.destroy(parent_fd, leaf)
    finally:
        os.close(parent_fd)


def nested(top: str) -> list[str]:
    """The subvolumes right below `top` (another st_dev: btrfs gives each
    subvolume its own anonymous device); their own are found in turn."""
    device = os.lstat(top).st_dev
    found = []
    for dirpath, dirs, _files in os.walk(top):
        for name in list(dirs):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if st.st_dev != device:
                found.append(path)
                dirs.remove(name)
    return found
