"""The receiver's own root in a private mount namespace (rootview.py plans it).

Landlock (up to ABI 7) governs opening, creating, renaming and removing
files, not chmod(2), chown(2), utimensat(2) or setxattr(2).  A receiving
rsync that holds CAP_FOWNER, CAP_CHOWN and CAP_SETFCAP and is subverted by a
malicious sender could still set a setuid bit or a file capability on any
binary it can name.  On a read-only mount those calls fail with EROFS
whatever the capabilities (mount(2) MS_RDONLY, mount_setattr(2)); on a path
that is not in the view they fail with ENOENT.  So the receiver gets a
namespace whose root is a tmpfs showing only what it needs:

    unshare(CLONE_NEWNS)                  needs CAP_SYS_ADMIN (then dropped),
                                          or a user namespace (userns.py)
    mount --make-rprivate /               nothing propagates back out
    mount -t tmpfs tmpfs ROOT             the new root, then in it: the
                                          directories and symlinks on the way,
    mount --bind PATH ROOT/PATH           each path it may read or run,
    mount --bind ETC ROOT/etc             the run's own /etc,
    mount --bind HOST ROOT/HOST           the host's directory;
    mount_setattr ROOT AT_RECURSIVE +RDONLY               all read-only ...
    mount_setattr ROOT/HOST AT_RECURSIVE -RDONLY +NOSYMFOLLOW  ... but HOST
    pivot_root ROOT; umount -l old root   the backup host's tree is gone

Writing to device nodes (/dev/null) and connecting to sockets are not
writes to the filesystem and keep working.  Runs in a forked child between
fork and exec: a few dozen system calls, nothing that waits.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence

from pullsnap.errors import PullsnapError
from pullsnap.grabber.confine import userns
from pullsnap.grabber.confine.rootview import View

_libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS = 0x00020000  # include/uapi/linux/sched.h
MS_BIND = 4096  # include/uapi/linux/mount.h
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_NOSUID = 2
MS_NODEV = 4
MNT_DETACH = 2  # umount2(2)
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x00000001
MOUNT_ATTR_NOSYMFOLLOW = 0x00200000  # since Linux 5.10
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (since Linux 5.12)


class MountNamespaceError(PullsnapError):
    """mount namespace: {}"""


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


def _check(result: int, what: str) -> None:
    if result != 0:
        raise MountNamespaceError(f"{what}: {os.strerror(ctypes.get_errno())}")


def _setattr(path: str, attr_set: int, attr_clr: int) -> None:
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    result = _libc.syscall(
        ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD), path.encode(),
        ctypes.c_uint(AT_RECURSIVE), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
    )  # fmt: skip
    _check(result, f"mount_setattr {path}")


def check_paths(writable: Sequence[str], etc: str) -> None:
    """Refuse what `own_root` cannot bind (in the parent, before fork)."""
    for path in (*writable, etc):
        if not path.startswith("/") or not os.path.isdir(path):
            raise MountNamespaceError(f"{path!r} is not an absolute directory")


def _inside(root: str, path: str) -> bytes:
    return (root + path).encode()


def own_root(view: View, *, own_user_namespace: bool) -> None:
    """Enter a new mount namespace whose root shows only `view` (rootview.py),
    everything read-only but `view.writable`, mounted nosymfollow.  Needs
    CAP_SYS_ADMIN effective, or `own_user_namespace` (userns.py)."""
    if own_user_namespace:
        userns.unshare_as_self(CLONE_NEWNS)
    else:
        _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    root = view.root
    _check(_libc.mount(b"tmpfs", root.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                       b"mode=0755,size=64k,nr_inodes=1024"), "mount the new root")  # fmt: skip
    for path in view.dirs:
        os.makedirs(root + path, 0o755, exist_ok=True)
    for path, target in view.links:
        os.makedirs(os.path.dirname(root + path), 0o755, exist_ok=True)
        os.symlink(target, root + path)
    for path, bind in view.binds:
        point = root + path
        if not os.path.lexists(point):
            if bind.directory:
                os.makedirs(point, 0o755)
            else:
                os.close(os.open(point, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
        flags = MS_BIND | (MS_REC if bind.recursive else 0)
        _check(_libc.mount(bind.source.encode(), point.encode(), None, flags, None),
               f"bind {bind.source}")  # fmt: skip
    _check(_libc.mount(view.etc.encode(), _inside(root, "/etc"), None, MS_BIND | MS_REC, None),
           "bind /etc")  # fmt: skip
    for path in view.writable:
        os.makedirs(root + path, 0o755, exist_ok=True)
        _check(_libc.mount(path.encode(), _inside(root, path), None, MS_BIND | MS_REC, None),
               f"bind {path}")  # fmt: skip
    _setattr(root, MOUNT_ATTR_RDONLY, 0)
    for path in view.writable:
        _setattr(root + path, MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_RDONLY)
    # pivot_root(2) NOTES: with new_root and put_old the same, the old root
    # ends up on top of the new one, and a lazy unmount takes it away.
    os.chdir(root)
    # glibc exports pivot_root(2) without declaring it in a header.
    _check(_libc.pivot_root(b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/")


def probe_as(uid: int, gid: int) -> str | None:
    """Whether `uid` without capabilities can build its own mount namespace
    and root (`grabber check`): None, or what failed.  Forks; the caller is
    root or `uid`."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            if os.getuid() != uid:
                os.setgroups([])
                os.setresgid(gid, gid, gid)
                os.setresuid(uid, uid, uid)
            userns.unshare_as_self(CLONE_NEWNS)
            _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
            # The new root's tmpfs, nosymfollow (Linux 5.10), read-only:
            # what own_root needs beyond the namespace itself.
            _check(_libc.mount(b"tmpfs", b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, b"size=4k"),
                   "mount a tmpfs")  # fmt: skip
            _setattr("/tmp", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSYMFOLLOW, 0)
        except (OSError, PullsnapError) as e:
            os.write(write_end, str(e).encode(errors="replace"))
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        said = f.read().decode(errors="replace")
    os.waitpid(pid, 0)
    return said or None
