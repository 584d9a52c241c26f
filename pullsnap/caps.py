"""Linux capabilities: which role needs which, and handing them to one child.

Both roles hold their capabilities *permitted + inheritable but not
effective*, so the Python process itself cannot use them, and raise them
*ambient* only for the one child that needs them (capabilities(7),
"Ambient capability set"): on execve of a file without file capabilities
the new permitted and effective sets are the ambient set, and ambient
capabilities survive an exec under `no_new_privs`, which file capabilities
do not (prctl(2), PR_SET_NO_NEW_PRIVS).

Capability sets are per *thread* (capabilities(7), "Thread capability
sets"): everything here changes the calling thread only, so call
`drop_to_user` and `hold_quietly` before any thread is started, and spawn
the child from the thread that raised its ambient set.

python-prctl does the capset/bounding/securebits work; it has no ambient
API, so a small ctypes shim calls prctl(PR_CAP_AMBIENT, ...) directly.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import prctl

from pullsnap.errors import CapabilityError

# The initiator's sender rsync only reads: CAP_DAC_READ_SEARCH bypasses file
# read and directory read/search permission checks (capabilities(7)).
INITIATOR_CAPS: tuple[str, ...] = ("dac_read_search",)

# What a receiving `rsync --super` (it then acts as root, rsync(1) --super)
# needs to recreate files exactly as the sender has them:
RECEIVER_SUPER_CAPS: tuple[str, ...] = (
    # chown(2) to the sender's numeric owner and any group (-o, -g).
    "chown",
    # chmod(2), utimensat(2) and ACL/xattr changes on files once they belong
    # to someone else; hard-linking files we do not own for --link-dest when
    # fs.protected_hardlinks=1 (proc(5)).
    "fowner",
    # Create and write inside directories rsync already chowned to another
    # owner, and in read-only (e.g. 0555) directories it has just restored.
    "dac_override",
    # Keep set-user/group-ID bits: chmod(2) clears S_ISGID when the caller is
    # not in the file's group, and chown(2) clears both, without CAP_FSETID.
    "fsetid",
    # mknod(2) for device files (-D, part of -a).
    "mknod",
    # Restore file capabilities, the security.capability xattr (-X).
    "setfcap",
)
# What the grabber's launcher grants: the receiver's set plus CAP_SYS_ADMIN,
# which the grabber uses only to put that rsync in a read-only mount
# namespace and drops before rsync runs (grabber/confine/receiver.py).  (trusted.*
# and non-capability security.* xattrs would need CAP_SYS_ADMIN in rsync
# itself, xattr(7); it is never handed on, so those are not restored.)
GRABBER_LAUNCHER_CAPS: tuple[str, ...] = (*RECEIVER_SUPER_CAPS, "sys_admin")

# Linux capability numbers 0..40, from include/uapi/linux/capability.h.
CAP_NAMES: tuple[str, ...] = (
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill",
    "setgid", "setuid", "setpcap", "linux_immutable", "net_bind_service",
    "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
    "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
    "sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time",
    "sys_tty_config", "mknod", "lease", "audit_write", "audit_control",
    "setfcap", "mac_override", "mac_admin", "syslog", "wake_alarm",
    "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
)  # fmt: skip
CAP_NUMBERS: dict[str, int] = {name: number for number, name in enumerate(CAP_NAMES)}

# prctl(2) option values from include/uapi/linux/prctl.h.
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_IS_SET = 1
_PR_CAP_AMBIENT_RAISE = 2
_PR_CAP_AMBIENT_LOWER = 3
_PR_CAP_AMBIENT_CLEAR_ALL = 4

_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
_libc.prctl.restype = ctypes.c_int


@dataclass(frozen=True)
class CapState:
    """A process's capability sets, as /proc/PID/status shows them."""

    inheritable: frozenset[str]
    permitted: frozenset[str]
    effective: frozenset[str]
    bounding: frozenset[str]
    ambient: frozenset[str]
    no_new_privs: bool


def mask_names(mask: int) -> frozenset[str]:
    """The names of the capability bits set in `mask` (cap_N for bits past CAP_NAMES)."""
    return frozenset(
        CAP_NAMES[bit] if bit < len(CAP_NAMES) else f"cap_{bit}"
        for bit in range(mask.bit_length())
        if mask >> bit & 1
    )


def status_fields(text: str) -> dict[str, str]:
    """The `Name:\\tvalue` lines of /proc/PID/status (proc(5)) as a dict."""
    fields = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name] = value.strip()
    return fields


def parse_proc_status(text: str) -> CapState:
    """CapInh/CapPrm/CapEff/CapBnd/CapAmb hex masks and NoNewPrivs (proc(5))."""
    fields = status_fields(text)
    try:
        masks = {key: int(fields[key], 16) for key in ("CapInh", "CapPrm", "CapEff", "CapBnd")}
        masks["CapAmb"] = int(fields.get("CapAmb", "0"), 16)  # Linux >= 4.3
        no_new_privs = fields.get("NoNewPrivs", "0") == "1"  # Linux >= 4.10
    except (KeyError, ValueError) as exc:
        raise CapabilityError(f"unreadable /proc status: {exc}") from exc
    return CapState(
        inheritable=mask_names(masks["CapInh"]),
        permitted=mask_names(masks["CapPrm"]),
        effective=mask_names(masks["CapEff"]),
        bounding=mask_names(masks["CapBnd"]),
        ambient=mask_names(masks["CapAmb"]),
        no_new_privs=no_new_privs,
    )


def _read_status(pid: int | str) -> str:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        return status.read()


def read_state(pid: int | str = "self") -> CapState:
    """The capability state of `pid`; "self" shows the main thread, "thread-self" ours."""
    return parse_proc_status(_read_status(pid))


def _numbers(caps: Iterable[str]) -> list[int]:
    caps = tuple(caps)
    unknown = [cap for cap in caps if cap not in CAP_NUMBERS]
    if unknown:
        raise CapabilityError(f"unknown capability {', '.join(unknown)}")
    return [CAP_NUMBERS[cap] for cap in caps]


def _kernel_caps() -> list[int]:
    """Capability numbers this kernel knows (proc(5), cap_last_cap)."""
    with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as last:
        return list(range(min(int(last.read()), len(CAP_NAMES) - 1) + 1))


def kernel_cap_names() -> tuple[str, ...]:
    """The names of every capability this kernel knows."""
    return tuple(CAP_NAMES[cap] for cap in _kernel_caps())


def missing(caps: Iterable[str]) -> list[str]:
    """Those of `caps` not both permitted and inheritable (so not raisable ambient)."""
    caps = tuple(caps)
    _numbers(caps)
    state = read_state("thread-self")
    return [cap for cap in caps if cap not in state.permitted or cap not in state.inheritable]


def have(caps: Iterable[str]) -> bool:
    """Whether every one of `caps` can be raised ambient for a child."""
    return not missing(caps)


def _hold_exactly(keep: Sequence[str]) -> None:
    """permitted = inheritable = keep, effective = empty (capset(2))."""
    kept = _numbers(keep)
    others = [cap for cap in _kernel_caps() if cap not in kept]
    effective, permitted = prctl.CAP_EFFECTIVE, prctl.CAP_PERMITTED
    inheritable = prctl.CAP_INHERITABLE
    try:
        prctl.set_caps(
            (kept, [permitted, inheritable], True),
            (kept, effective, False),
            (others, [effective, permitted, inheritable], False),
        )
    except OSError as exc:
        raise CapabilityError(f"cannot set capability sets to {sorted(keep)}: {exc}") from exc


def _only_thread() -> None:
    threads = status_fields(_read_status("self")).get("Threads", "1")
    if threads != "1":
        raise CapabilityError(f"capabilities must be changed before any thread starts ({threads})")


def _verify(keep: Sequence[str], *, bounding: bool) -> CapState:
    state = read_state("thread-self")
    sets = {"permitted": state.permitted, "inheritable": state.inheritable}
    if bounding:
        sets["bounding"] = state.bounding
    wrong = [name for name, held in sets.items() if held != frozenset(keep)]
    if state.effective or state.ambient:
        wrong.append("effective or ambient")
    if wrong:
        raise CapabilityError(f"{', '.join(wrong)} set not as intended: {state}")
    return state


def drop_to_user(user: str, keep: Sequence[str]) -> None:
    """From root, become `user` holding only `keep` (permitted+inheritable).

    Order matters (capabilities(7), "Effect of user ID changes on
    capabilities"): the bounding set can only shrink while CAP_SETPCAP is
    effective, so it is limited first; SECBIT_KEEP_CAPS keeps the permitted
    set across setresuid to a non-zero uid, which still empties the
    effective and ambient sets; then permitted and inheritable are cut to
    `keep`.  no_new_privs comes last and is inherited by every child.
    Must run before any thread exists: it changes the calling thread only.
    """
    try:
        entry = pwd.getpwnam(user)
    except KeyError as exc:
        raise CapabilityError(f"no such user {user!r}") from exc
    _only_thread()
    kept = _numbers(keep)
    absent = [cap for cap in keep if cap not in read_state("thread-self").permitted]
    if absent:
        raise CapabilityError(f"cannot keep {', '.join(absent)}: not permitted to begin with")
    try:
        for cap in _kernel_caps():
            if cap not in kept:
                prctl.capbset_drop(cap)
        prctl.set_keepcaps(True)
        os.initgroups(user, entry.pw_gid)
        os.setresgid(entry.pw_gid, entry.pw_gid, entry.pw_gid)
        os.setresuid(entry.pw_uid, entry.pw_uid, entry.pw_uid)
        prctl.set_keepcaps(False)
    except OSError as exc:
        raise CapabilityError(f"cannot become {user}: {exc}") from exc
    _hold_exactly(keep)
    clear_ambient()
    set_no_new_privs()
    os.environ.update(HOME=entry.pw_dir, USER=user, LOGNAME=user)
    state = _verify(keep, bounding=True)
    if os.getresuid() != (entry.pw_uid,) * 3 or os.getresgid() != (entry.pw_gid,) * 3:
        raise CapabilityError(f"uid/gid change to {user} did not hold")
    if set(os.getgroups()) - set(os.getgrouplist(user, entry.pw_gid)) or not state.no_new_privs:
        raise CapabilityError(f"supplementary groups or no_new_privs not as intended for {user}")


def hold_quietly(keep: Sequence[str]) -> None:
    """Keep `keep` permitted+inheritable only; nothing effective or ambient.

    For a process started unprivileged whose capabilities came ambient (from
    systemd AmbientCapabilities=, `setpriv --ambient-caps` or the grabber's
    launcher), which makes them permitted *and effective* after exec.  Pass
    `()` to drop everything (e.g. the grabber without its launcher).
    """
    _only_thread()
    absent = [cap for cap in keep if cap not in read_state("thread-self").permitted]
    if absent:
        raise CapabilityError(f"not granted to this process: {', '.join(absent)}")
    clear_ambient()
    _hold_exactly(keep)
    _verify(keep, bounding=False)


def granted(wanted: Iterable[str]) -> tuple[str, ...]:
    """Those of `wanted` this process holds permitted."""
    permitted = read_state().permitted
    return tuple(cap for cap in wanted if cap in permitted)


def hold_at_start(wanted: Sequence[str]) -> tuple[str, ...]:
    """First thing in a process whose capabilities may have come ambient (so
    effective, from a launcher): keep those of `wanted` permitted only, drop
    every other; return the ones kept.  Before any thread exists."""
    held = granted(wanted)
    if read_state().permitted:
        hold_quietly(held)
    return held


def _ambient(op: int, cap: int) -> None:
    if _libc.prctl(_PR_CAP_AMBIENT, op, cap, 0, 0) != 0:
        err = ctypes.get_errno()
        raise CapabilityError(f"prctl(PR_CAP_AMBIENT, {op}, {cap}): {os.strerror(err)}")


def raise_ambient(caps: Iterable[str]) -> None:
    """Raise `caps` ambient; each must be permitted and inheritable (prctl(2))."""
    for cap in _numbers(caps):
        _ambient(_PR_CAP_AMBIENT_RAISE, cap)


def lower_ambient(caps: Iterable[str]) -> None:
    for cap in _numbers(caps):
        _ambient(_PR_CAP_AMBIENT_LOWER, cap)


def clear_ambient() -> None:
    _ambient(_PR_CAP_AMBIENT_CLEAR_ALL, 0)


@contextlib.contextmanager
def ambient(caps: Sequence[str]) -> Iterator[None]:
    """Raise `caps` ambient around a spawn, so that child inherits them.

    The ambient set is copied at fork(2) and applied at execve(2); once the
    child exists, lowering ours does not affect it.
    """
    raise_ambient(caps)
    try:
        yield
    finally:
        lower_ambient(caps)


def set_no_new_privs() -> None:
    """Irrevocably stop execve from granting privileges (prctl(2), landlock(7))."""
    prctl.set_no_new_privs(1)


def set_effective(caps: Iterable[str], on: bool) -> None:
    """Turn permitted `caps` effective (or not) in the calling thread (capset(2))."""
    try:
        prctl.set_caps((_numbers(caps), prctl.CAP_EFFECTIVE, on))
    except OSError as exc:
        raise CapabilityError(f"cannot make {sorted(caps)} effective={on}: {exc}") from exc


def drop_entirely(caps: Iterable[str]) -> None:
    """Remove `caps` from every set, bounding included, so no exec brings them back."""
    numbers = _numbers(caps)
    try:
        for cap in numbers:
            if _libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1:
                _ambient(_PR_CAP_AMBIENT_LOWER, cap)
        sets = [prctl.CAP_EFFECTIVE, prctl.CAP_PERMITTED, prctl.CAP_INHERITABLE]
        # The bounding set first: dropping it needs CAP_SETPCAP, which we may
        # not hold; a cap absent from permitted cannot come back through an
        # exec of a file without file capabilities anyway (capabilities(7)).
        for cap in numbers:
            with contextlib.suppress(OSError):
                prctl.capbset_drop(cap)
        prctl.set_caps((numbers, sets, False))
    except OSError as exc:
        raise CapabilityError(f"cannot drop {sorted(caps)}: {exc}") from exc


@contextlib.contextmanager
def effective_while(caps: Iterable[str]) -> Iterator[None]:
    """Make those of `caps` this thread holds permitted effective for the block.

    For the grabber's own file work on --super snapshots (deleting trees
    whose directories belong to root, reading root-only files): outside the
    block nothing is effective.  Caps not permitted are skipped.
    """
    state = read_state()
    # Only those not effective already, and only those go back afterwards
    # (root runs with everything effective and must keep it).
    raised = [cap for cap in caps if cap in state.permitted and cap not in state.effective]
    if not raised:
        yield
        return
    set_effective(raised, True)
    try:
        yield
    finally:
        set_effective(raised, False)
