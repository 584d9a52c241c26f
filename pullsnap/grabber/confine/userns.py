"""A user namespace of our own, so a process without capabilities may build
its mount namespace (user_namespaces(7)).

In --fake-super mode the grabber holds no capability, yet its receiving
rsync gets the same private mount namespace as in --super mode (mountns.py).
unshare(CLONE_NEWUSER | CLONE_NEWNS) gives the child every capability inside
a new user namespace that owns the new mount namespace; it maps its own uid
and gid to themselves (the only mapping an unprivileged process may write,
after "deny" to setgroups), so files it creates belong to the grabber user
as before and rsync still sees a non-root uid (its --fake-super behaves as
without the namespace).  The capabilities it holds there reach only what
that namespace owns (its mounts, and files whose owner is mapped: its own);
they are dropped before exec, and an exec by a non-root uid would clear
them anyway (capabilities(7), "Capabilities and execution of programs").

Kernels and distributions can turn unprivileged user namespaces off:
`user.max_user_namespaces = 0` (upstream), `kernel.unprivileged_userns_clone
= 0` (a switch Debian's kernels carry, on by default since Debian 11),
`kernel.apparmor_restrict_unprivileged_userns = 1` (Ubuntu 23.10 and later:
unshare works but the namespace holds no capability).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Mapping

from pullsnap.errors import PullsnapError

_libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS = 0x00020000  # include/uapi/linux/sched.h
CLONE_NEWUSER = 0x10000000
_PR_SET_DUMPABLE = 4  # include/uapi/linux/prctl.h

# sysctl file, the value that turns unprivileged user namespaces off, and the fix.
SWITCHES: tuple[tuple[str, str, str], ...] = (
    ("/proc/sys/user/max_user_namespaces", "0", "sysctl -w user.max_user_namespaces=15000"),
    ("/proc/sys/kernel/unprivileged_userns_clone", "0",
     "sysctl -w kernel.unprivileged_userns_clone=1"),
    ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1",
     "an AppArmor profile for the grabber with `userns,` (or sysctl -w "
     "kernel.apparmor_restrict_unprivileged_userns=0)"),
)  # fmt: skip


class UserNamespaceError(PullsnapError):
    """user namespace: {}"""


def why_unavailable(values: Mapping[str, str]) -> tuple[str, str] | None:
    """What turns unprivileged user namespaces off and its fix, or None (pure).

    `values`: the sysctl files of SWITCHES that exist, with their contents."""
    for path, off, fix in SWITCHES:
        if values.get(path, "").strip() == off:
            name = path.removeprefix("/proc/sys/").replace("/", ".")
            return f"unprivileged user namespaces are off ({name} = {off})", fix
    return None


def read_switches(read: Callable[[str], str] | None = None) -> dict[str, str]:
    def from_file(path: str) -> str:
        with open(path, encoding="ascii") as f:
            return f.read()

    values = {}
    for path, _, _ in SWITCHES:
        try:
            values[path] = (read or from_file)(path)
        except OSError:
            continue
    return values


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)


def unshare_as_self(flags: int = CLONE_NEWNS) -> None:
    """Enter a new user namespace (and `flags`' others) mapping our uid and gid
    to themselves.  Between fork and exec: a single-threaded caller."""
    uid, gid = os.getuid(), os.getgid()
    # A process whose credentials changed (setuid(2), an exec with file
    # capabilities) is not dumpable, which makes /proc/self/* root's and the
    # maps below unwritable to it (proc(5)).  The exec that follows makes
    # this child dumpable anyway (prctl(2) PR_SET_DUMPABLE).
    if _libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0) != 0:
        raise UserNamespaceError(f"prctl(PR_SET_DUMPABLE): {os.strerror(ctypes.get_errno())}")
    if _libc.unshare(CLONE_NEWUSER | flags) != 0:
        err = ctypes.get_errno()
        raise UserNamespaceError(f"unshare(CLONE_NEWUSER): {os.strerror(err)}")
    # setgroups must be denied before an unprivileged gid_map (user_namespaces(7)).
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/gid_map", f"{gid} {gid} 1\n")
    _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
