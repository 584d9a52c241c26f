"""`initiator gate`: sshd's forced command, the effectful half of the gate.

    sshd -i ──$SHELL -c──> gatecmd --root DIR ...   (stdin/stdout: the ssh channel)
                             │ SSH_ORIGINAL_COMMAND ──gate.parse()──> argv
                             │ nice, ionice, one JSON line to --log
                             └──execve(argv, fixed env)──> rsync --server --sender ...

Nothing is written to stdout before the exec: it is rsync's protocol stream.
Warnings and the one refusal line go to stderr, which the client's rsync
shows to its user.  With --dry-run the gate prints the argv it would exec as
one JSON array and exits, so an operator can try a command line by hand:

    SSH_ORIGINAL_COMMAND='rsync --server --sender -re.iLsfxCIvu . /etc' \\
        initiator gate --dry-run --root /etc
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import json
import os
import platform
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pullsnap.childenv import child_env
from pullsnap.errors import GateRefused, PullsnapError
from pullsnap.initiator import gate, lifeline
from pullsnap.ioprio import ioprio_value

# rsync gets nothing from the client's environment, only this.
EXEC_ENV = child_env()

IOPRIO_WHO_PROCESS = 1

# __NR_ioprio_set per architecture (the kernel's syscall tables); Python has
# no wrapper for it.  A 32-bit userland on a 64-bit kernel reports the
# kernel's machine name and would get the wrong number, so it is not served.
IOPRIO_SET_SYSCALL = {
    "x86_64": 251,
    "aarch64": 30,
    "riscv64": 30,
    "i386": 289,
    "arm": 314,
    "ppc64": 273,
    "s390x": 282,
}
MACHINE_ALIASES = {
    "i486": "i386",
    "i586": "i386",
    "i686": "i386",
    "armv6l": "arm",
    "armv7l": "arm",
    "armv8l": "arm",
    "ppc64le": "ppc64",
    "arm64": "aarch64",
}


@dataclass(frozen=True)
class GateSettings:
    """The gate's command line, parsed once."""

    policy: gate.GatePolicy
    dry_run: bool = False
    nice: int | None = None
    ionice: str | None = None
    log: str | None = None
    lifeline: str | None = None
    once: str | None = None


def ioprio_syscall(machine: str) -> int | None:
    return IOPRIO_SET_SYSCALL.get(MACHINE_ALIASES.get(machine, machine))


def _absolute(text: str) -> str:
    if not os.path.isabs(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an absolute path")
    return text


def _nice(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 <= int(text) <= 19:
        raise argparse.ArgumentTypeError(f"{text!r} is not a nice level 0-19")
    return int(text)


def _ionice(text: str) -> str:
    try:
        ioprio_value(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


GATE_DESCRIPTION = """\
The forced command of each run's one-shot sshd: it reads the command the
backup host asked for from SSH_ORIGINAL_COMMAND and execs rsync only for a
read-only `rsync --server --sender` whose options are in its allow-list and
whose paths stay inside the roots; anything else gets one `gate error:`
line and exit status 1.  The initiator writes this command line itself.

To see what it makes of a command line (without --root, `initiator gate`
takes the sources of every destination in the configuration, -c FILE):

    SSH_ORIGINAL_COMMAND='rsync --server --sender -re.iLsfxCIvu . /etc' \\
        initiator gate --dry-run --root /etc
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="initiator gate",
        description=GATE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--root", action="append", required=True, type=_absolute, metavar="DIR",
        help="a source the sender may read (repeatable)",
    )  # fmt: skip
    p.add_argument("--rsync", default="/usr/bin/rsync", type=_absolute, metavar="PATH",
                   help="the rsync to exec (default %(default)s)")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="print the argv as JSON, run nothing")
    p.add_argument("--no-confine-root", action="store_true",
                   help="do not add --confine-root (rsync before 3.5 lacks it)")  # fmt: skip
    p.add_argument("--nice", type=_nice, metavar="N", help="nice level of the sender, 0-19")
    p.add_argument(
        "--ionice", type=_ionice, metavar="CLASS",
        help="I/O class of the sender: none, idle, best-effort[:0-7], realtime[:0-7]",
    )  # fmt: skip
    p.add_argument(
        "--log", type=_absolute, metavar="FILE",
        help="append one JSON line per command: what ran or why it was refused",
    )  # fmt: skip
    p.add_argument(
        "--lifeline", type=_absolute, metavar="FILE",
        help="the initiator's lock file: the sender ends when its lock is released",
    )  # fmt: skip
    p.add_argument(
        "--once", type=_absolute, metavar="FILE",
        help="made by the first session; any later session of the same door is refused",
    )  # fmt: skip
    return p


def settings_from(argv: Sequence[str]) -> GateSettings:
    args = _parser().parse_args(argv)
    policy = gate.GatePolicy(
        roots=tuple(args.root), rsync=args.rsync, confine_root=not args.no_confine_root
    )
    return GateSettings(
        policy, args.dry_run, args.nice, args.ionice, args.log, args.lifeline, args.once
    )


def _warn(message: str) -> None:
    print(f"gate warning: {message}", file=sys.stderr, flush=True)


def _set_ioprio(spec: str) -> None:
    machine = platform.machine()
    number = ioprio_syscall(machine)
    if number is None:
        _warn(f"ionice is not supported on {machine}, skipped")
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    args = (IOPRIO_WHO_PROCESS, 0, ioprio_value(spec))
    if libc.syscall(ctypes.c_long(number), *(ctypes.c_int(a) for a in args)) == -1:
        _warn(f"cannot set ionice {spec}: {os.strerror(ctypes.get_errno())}")


def _lower_priority(settings: GateSettings) -> None:
    # Both are inherited across execve (setpriority(2), ioprio_set(2)).
    if settings.nice is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, settings.nice)
        except OSError as e:
            _warn(f"cannot set nice {settings.nice}: {e.strerror}")
    if settings.ionice is not None:
        _set_ioprio(settings.ionice)


def _append_log(path: str, environ: Mapping[str, str], entry: dict[str, object]) -> None:
    # O_NOFOLLOW: a symlink planted at the log's name is not written through.
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    record = {
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "ssh_connection": environ.get("SSH_CONNECTION", ""),
        # Names only: shows that no forwarded agent or client variable got in.
        "environment": sorted(environ),
        **entry,
    }
    fd = os.open(path, flags, 0o600)
    try:
        # One write of one line: O_APPEND keeps concurrent lines whole.
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)


def confine_sender(policy: gate.GatePolicy) -> None:
    """Landlock the process about to become the sender (senderpolicy.py).

    Ambient capabilities survive the exec that follows, although confining
    sets no_new_privs (prctl(2)).  Without Landlock the gate's own path checks
    and --confine-root still hold; say so on stderr, which the grabber logs.
    """
    from pullsnap import landlock
    from pullsnap.initiator.senderpolicy import sender_confinement

    try:
        landlock.restrict_self(sender_confinement(policy.roots, policy.rsync))
    except landlock.LandlockUnavailable as e:
        print(f"gate warning: sender not confined by Landlock ({e})", file=sys.stderr)


def run(
    settings: GateSettings,
    environ: Mapping[str, str],
    execve: Callable[[str, list[str], dict[str, str]], object] = os.execve,
    confine: Callable[[gate.GatePolicy], None] = confine_sender,
    watch: Callable[[str], object] = lifeline.watch,
) -> int:
    """Check the command and exec rsync; returns only when nothing was exec'd."""
    if settings.once and not settings.dry_run:
        # sshd's MaxSessions limits the sessions open at a time, not their
        # number (sshd_config(5)): one connection could start senders one
        # after another.  The first session of a door claims it.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            os.close(os.open(settings.once, flags, 0o600))
        except FileExistsError:
            print("gate error: this door has run its one session already", file=sys.stderr)
            return 1
        except OSError as e:
            print(f"gate error: the initiator's run is over ({e.strerror})", file=sys.stderr)
            return 1
    try:
        argv = gate.parse(environ.get("SSH_ORIGINAL_COMMAND"), settings.policy)
    except GateRefused as e:
        if settings.log and not settings.dry_run:
            # The refusal line below is the one report that must get out.
            with contextlib.suppress(OSError):
                _append_log(settings.log, environ, {"refused": str(e)})
        print(f"gate error: {e}", file=sys.stderr)
        return 1
    if settings.dry_run:
        print(json.dumps(argv))
        return 0
    _lower_priority(settings)
    if settings.log:
        try:
            _append_log(settings.log, environ, {"argv": argv})
        except OSError as e:
            print(f"gate error: cannot write log {settings.log}: {e.strerror}", file=sys.stderr)
            return 1
    if settings.lifeline:
        # Before Landlock: the watcher is forked with the lifeline already open.
        try:
            watch(settings.lifeline)
        except OSError as e:
            print(f"gate error: the initiator's run is over ({e.strerror})", file=sys.stderr)
            return 1
    try:
        confine(settings.policy)
    except PullsnapError as e:
        print(f"gate error: cannot confine the sender: {e}", file=sys.stderr)
        return 1
    try:
        execve(argv[0], argv, dict(EXEC_ENV))
    except OSError as e:
        print(f"gate error: cannot run {argv[0]}: {e.strerror}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point: the arguments after `initiator gate`."""
    settings = settings_from(sys.argv[1:] if argv is None else argv)
    return run(settings, os.environ)


if __name__ == "__main__":
    sys.exit(main())
