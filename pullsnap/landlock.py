"""Landlock: confine a child to the files and ports it needs (landlock(7)).

A Landlock ruleset names the access rights it *handles*; every handled
right is denied unless a rule grants it beneath some directory (or on a
file).  landlock_restrict_self(2) then applies the ruleset to the calling
thread and to everything it later forks or execs, irrevocably.  Unless the
caller has CAP_SYS_ADMIN it needs `no_new_privs` first, so the confined
program gets its capabilities as ambient ones, which survive that exec
(capabilities(7); see pullsnap.caps).

Landlock mediates opening, creating, removing, linking, renaming,
truncating and executing files, ioctl on devices (ABI 5), TCP bind and
connect (ABI 4), and signals and abstract unix sockets leaving the domain
(ABI 6).  It does *not* mediate chmod(2), chown(2), setxattr(2), utime(2),
stat(2), chdir(2) or connecting to a pathname unix socket (landlock(7),
"Current limitations"), and files opened before restricting keep the
access they were opened with: spawn the child without stray fds.

For a forked child right before exec, `prepare` builds the ruleset in the
parent (opening paths, several syscalls) and `enforce` does only the two
prctl/syscall calls that must happen in the child.  The ruleset fd is
close-on-exec (landlock_create_ruleset(2)): the child has it after fork(2),
the program it execs does not.
"""

from __future__ import annotations

import ctypes
import os
import stat
from dataclasses import dataclass

from pullsnap.errors import PullsnapError

# Syscall numbers are the same on every architecture (asm-generic/unistd.h).
_SYS_CREATE_RULESET = 444
_SYS_ADD_RULE = 445
_SYS_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1
_RULE_NET_PORT = 2
_PR_SET_NO_NEW_PRIVS = 38

# File system rights, include/uapi/linux/landlock.h.
FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2: link/rename into another directory
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

# Rights each ABI adds; an ABI handles everything up to itself.
_FS_BY_ABI = {1: (1 << 13) - 1, 2: FS_REFER, 3: FS_TRUNCATE, 5: FS_IOCTL_DEV}
_NET_BY_ABI = {4: NET_BIND_TCP | NET_CONNECT_TCP}
_SCOPE_BY_ABI = {6: SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL}
# The only rights a rule on a non-directory may carry (landlock_add_rule(2), EINVAL).
_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV

READ = FS_READ_FILE | FS_READ_DIR
EXECUTE = READ | FS_EXECUTE


def _upto(table: dict[int, int], abi: int) -> int:
    mask = 0
    for since, rights in table.items():
        if abi >= since:
            mask |= rights
    return mask


def fs_rights(abi: int) -> int:
    return _upto(_FS_BY_ABI, abi)


def net_rights(abi: int) -> int:
    return _upto(_NET_BY_ABI, abi)


def scope_rights(abi: int) -> int:
    return _upto(_SCOPE_BY_ABI, abi)


class LandlockError(PullsnapError):
    """landlock: {}"""


class LandlockUnavailable(LandlockError):
    """landlock is not available: {}"""


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)) in the uapi header
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


class _NetPortAttr(ctypes.Structure):
    _fields_ = (("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64))


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
_libc.prctl.restype = ctypes.c_int


def _syscall(number: int, *args: object) -> int:
    result = _libc.syscall(ctypes.c_long(number), *args)
    if result < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return result


def _create_ruleset(attr: object, size: int, flags: int) -> int:
    return _syscall(_SYS_CREATE_RULESET, attr, ctypes.c_size_t(size), ctypes.c_uint32(flags))


def _add_rule(ruleset: int, rule_type: int, attr: ctypes.Structure) -> None:
    _syscall(_SYS_ADD_RULE, ruleset, rule_type, ctypes.byref(attr), ctypes.c_uint32(0))


def abi_version() -> int:
    """The kernel's Landlock ABI version, 0 if unsupported or disabled."""
    try:
        return _create_ruleset(None, 0, _CREATE_RULESET_VERSION)
    except OSError:
        return 0  # ENOSYS: not built in; EOPNOTSUPP: not enabled at boot


@dataclass(frozen=True)
class Confinement:
    """What a confined process may touch; everything else is denied.

    `connect_tcp_ports`: None leaves the network alone; a tuple allows TCP
    connect to those ports only and no TCP bind (needs ABI 4).  `scoped`
    (ABI 6) stops signals and abstract unix socket connections to processes
    outside the confined tree.
    """

    read_only: tuple[str, ...]
    read_write: tuple[str, ...]
    executable: tuple[str, ...] = ()
    connect_tcp_ports: tuple[int, ...] | None = None
    scoped: bool = True


@dataclass(frozen=True)
class Prepared:
    """A ruleset fd ready for `enforce`; close it in the parent after the spawn."""

    fd: int
    abi: int
    skipped: tuple[str, ...]  # paths that did not exist, so got no rule
    network_restricted: bool

    def close(self) -> None:
        os.close(self.fd)


def _add_path(ruleset: int, path: str, rights: int) -> bool:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= _FILE_RIGHTS
        _add_rule(ruleset, _RULE_PATH_BENEATH, _PathBeneathAttr(rights, fd))
    except OSError as exc:
        raise LandlockError(f"cannot add a rule for {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    return True


def _add_port(ruleset: int, port: int) -> None:
    if not 0 < port < 65536:
        raise LandlockError(f"bad TCP port {port}")
    try:
        _add_rule(ruleset, _RULE_NET_PORT, _NetPortAttr(NET_CONNECT_TCP, port))
    except OSError as exc:
        raise LandlockError(f"cannot allow TCP port {port}: {exc.strerror}") from exc


def prepare(c: Confinement) -> Prepared:
    """Build the ruleset for `c`; raises LandlockUnavailable without Landlock."""
    abi = abi_version()
    if abi < 1:
        raise LandlockUnavailable("the kernel offers no Landlock ABI")
    fs = fs_rights(abi)
    net = net_rights(abi) if c.connect_tcp_ports is not None else 0
    attr = _RulesetAttr(fs, net, scope_rights(abi) if c.scoped else 0)
    # The kernel takes the struct size of the ABI the caller knows.
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    try:
        ruleset = _create_ruleset(ctypes.byref(attr), size, 0)
    except OSError as exc:
        raise LandlockError(f"cannot create a ruleset: {exc.strerror}") from exc
    skipped = []
    try:
        for paths, rights in ((c.read_only, READ), (c.executable, EXECUTE), (c.read_write, fs)):
            for path in paths:
                if not _add_path(ruleset, path, rights & fs):
                    skipped.append(path)
        if net:
            for port in c.connect_tcp_ports or ():
                _add_port(ruleset, port)
    except BaseException:
        os.close(ruleset)
        raise
    return Prepared(ruleset, abi, tuple(skipped), bool(net))


def enforce(prepared: Prepared) -> None:
    """Set no_new_privs and restrict the calling thread; safe between fork and exec."""
    if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise LandlockError(f"cannot set no_new_privs: {os.strerror(ctypes.get_errno())}")
    try:
        _syscall(_SYS_RESTRICT_SELF, prepared.fd, ctypes.c_uint32(0))
    except OSError as exc:
        raise LandlockError(f"landlock_restrict_self: {exc.strerror}") from exc


def restrict_self(c: Confinement) -> int:
    """Confine the calling thread (and its future children) to `c`; returns the ABI."""
    prepared = prepare(c)
    try:
        enforce(prepared)
    finally:
        prepared.close()
    return prepared.abi


# --- what a dynamically linked program needs to start ------------------------
#
# Both confined programs (the grabber's receiving rsync and its ssh,
# grabber/confine/receiverpolicy.py; the initiator's sending rsync,
# initiator/senderpolicy.py) build their rules on these.

LIBRARIES: tuple[str, ...] = (
    # Shared libraries (ld.so(8)); /lib and /lib64 are the same tree on a
    # merged-/usr system, the rule then lands on /usr/lib twice.
    "/usr/lib",
    "/usr/lib64",
    "/lib",
    "/lib64",
)
# ld.so's index of libraries outside its default directories.  A rule on a
# single file follows its inode: once ldconfig renames a new cache into
# place the rule denies it, and ld.so falls back to its default directories
# (where every library the confined programs use lives on Debian).  Nothing
# else of /etc: rsync with --numeric-ids reads none of it (strace -f -e
# openat); the receiver's ssh gets its own /etc (grabber/confine/etcview.py).
RUNTIME_READ_ONLY: tuple[str, ...] = (*LIBRARIES, "/etc/ld.so.cache")
# execve(2) opens the ELF interpreter (PT_INTERP) for execution too, so it
# needs the execute right; paths per architecture from the psABIs / glibc.
ELF_INTERPRETERS: tuple[str, ...] = (
    "/lib64/ld-linux-x86-64.so.2",
    "/lib/ld-linux-aarch64.so.1",
    "/lib/ld-linux-armhf.so.3",
    "/lib/ld-linux.so.2",
    "/lib64/ld64.so.2",
    "/lib/ld64.so.1",
    "/lib/ld-linux-riscv64-lp64d.so.1",
)


def absolute(*paths: str) -> None:
    """Refuse a relative path in a policy (a rule needs a real place)."""
    for path in paths:
        if not path.startswith("/"):
            raise LandlockError(f"{path!r} is not an absolute path")
