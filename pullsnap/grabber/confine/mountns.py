"""A private mount namespace in which everything is read-only but a few paths,
and /etc is the run's own (etcview.py).

Landlock (up to ABI 7) governs opening, creating, renaming and removing
files, not chmod(2), chown(2), utimensat(2) or setxattr(2).  A receiving
rsync that holds CAP_FOWNER, CAP_CHOWN and CAP_SETFCAP and is subverted by a
malicious sender could still set a setuid bit or a file capability on any
binary it can name.  On a read-only mount those calls fail with EROFS
whatever the capabilities (mount(2) MS_RDONLY, mount_setattr(2)), so the
receiver gets a namespace where only its host directory is writable:

    unshare(CLONE_NEWNS)                     needs CAP_SYS_ADMIN (then dropped),
                                             or a user namespace (userns.py)
    mount --make-rprivate /                  nothing propagates back out
    mount --bind ETC /etc                    the run's own /etc
    mount --bind PATH PATH                   for each writable path
    mount_setattr / AT_RECURSIVE +RDONLY     everything read-only ...
    mount_setattr PATH AT_RECURSIVE -RDONLY  ... except the writable paths

Writing to device nodes (/dev/null) and connecting to sockets are not
writes to the filesystem and keep working.  Runs in a forked child between
fork and exec: only ctypes calls, no allocation-heavy work.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence

from pullsnap.errors import PullsnapError
from pullsnap.grabber.confine import userns

_libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS = 0x00020000  # include/uapi/linux/sched.h
MS_BIND = 4096  # include/uapi/linux/mount.h
MS_REC = 16384
MS_PRIVATE = 1 << 18
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x00000001
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
    """Refuse what `read_only_except` cannot bind (in the parent, before fork)."""
    for path in (*writable, etc):
        if not path.startswith("/") or not os.path.isdir(path):
            raise MountNamespaceError(f"{path!r} is not an absolute directory")


def read_only_except(writable: Sequence[str], etc: str, *, own_user_namespace: bool) -> None:
    """Enter a new mount namespace where only `writable` (absolute, existing
    directories) can be changed and `etc` is seen as /etc.  Needs
    CAP_SYS_ADMIN effective, or `own_user_namespace` (userns.py)."""
    if own_user_namespace:
        userns.unshare_as_self(CLONE_NEWNS)
    else:
        _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    _check(_libc.mount(etc.encode(), b"/etc", None, MS_BIND | MS_REC, None), "bind /etc")
    for path in writable:
        raw = path.encode()
        _check(_libc.mount(raw, raw, None, MS_BIND | MS_REC, None), f"bind {path}")
    _setattr("/", MOUNT_ATTR_RDONLY, 0)
    for path in writable:
        _setattr(path, 0, MOUNT_ATTR_RDONLY)


def probe_as(uid: int, gid: int) -> str | None:
    """Whether `uid` without capabilities can build its own mount namespace
    (`grabber check`): None, or what failed.  Forks; the caller is root or `uid`."""
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
        except (OSError, PullsnapError) as e:
            os.write(write_end, str(e).encode(errors="replace"))
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        said = f.read().decode(errors="replace")
    os.waitpid(pid, 0)
    return said or None
