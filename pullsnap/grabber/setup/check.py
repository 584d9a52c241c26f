"""`grabber check`: is this backup host ready, and safe, to receive backups?

    user and login shell     the account exists, password "*", shell = grabber or launcher
    capabilities (--super)   the launcher's file capabilities vs what --super needs
    Landlock                 the receiving rsync's confinement
    mount namespace          CAP_SYS_ADMIN from the launcher, or user namespaces
    rsync                    >= 3.4.0 (CVE-2024-12084..12088) or explicitly allowed
    repository               owner and 0700, hardlinks, nosuid,nodev, free space and inodes
    authorized_keys          modes sshd accepts; every line well-formed and bound

Each check yields `Finding`s; every problem names the command that fixes it.
Run it as root (it reads the grabber user's files) or as the grabber user.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TextIO

from pullsnap import caps, errors, findings, landlock, versions
from pullsnap.config import GrabberConfig
from pullsnap.findings import Finding
from pullsnap.grabber.confine import mountns, mounts, receiver, userns
from pullsnap.grabber.setup import filecaps, filechecks
from pullsnap.grabber.setup.launcher import DEFAULT_LAUNCHER

DESCRIPTION = """\
Check that this backup host is ready, and safe, to receive backups: the
grabber account and its login shell; for rsync --super the launcher's file
capabilities, Landlock and a repository mounted nosuid,nodev; the rsync
version (3.4.0 or later: CVE-2024-12084..12088); the repository's owner,
mode, hardlink support and free space and inodes against the free-space guard; and
every line of the account's authorized_keys (well-formed, bound to a host).

Every problem line ends with the command that fixes it.  Exit status 0 when
there is none, 1 otherwise.  Run it as root, or as the grabber user.
"""


@dataclass(frozen=True)
class Subject:
    cfg: GrabberConfig
    user: pwd.struct_passwd
    grabber: str  # this program, for fixes that name it


def check_account(s: Subject) -> Iterator[Finding]:
    name = s.user.pw_name
    yield Finding(True, f"grabber account {name} (uid {s.user.pw_uid}, home {s.user.pw_dir})")
    # sshd refuses a locked account ("!" password) even for keys (sshd(8)).
    password = _shadow_password(name)
    if password is not None and password.startswith("!"):
        yield Finding(
            False,
            f"{name}'s password is locked ({password[:2]}...): sshd refuses it",
            f"usermod --password '*' {name}",
        )


def _shadow_password(name: str) -> str | None:
    try:
        with open("/etc/shadow", encoding="utf-8") as f:
            for line in f:
                fields = line.split(":")
                if fields[0] == name and len(fields) > 1:
                    return fields[1]
    except OSError:
        pass  # not root: cannot tell
    return None


def launcher_caps(path: str) -> filecaps.FileCaps | None:
    try:
        return filecaps.read(path)
    except (OSError, ValueError):
        return None


def check_shell(s: Subject) -> Iterator[Finding]:
    shell, name = s.user.pw_shell, s.user.pw_name
    usermod = f"usermod --shell {s.grabber} {name}"
    if not os.access(shell, os.X_OK):
        yield Finding(False, f"{name}'s login shell {shell} is not executable", usermod)
    elif launcher_caps(shell) is not None:
        yield Finding(True, f"login shell {shell}: the capability launcher (rsync --super)")
    elif os.path.basename(shell) == "grabber":
        yield Finding(True, f"login shell {shell}: the grabber (rsync --fake-super)")
    else:
        yield Finding(False, f"{name}'s login shell is {shell}, not the grabber", usermod)


def check_super(s: Subject) -> Iterator[Finding]:
    """What a run would do about --super, and what stands in its way."""
    cfg, name, shell = s.cfg, s.user.pw_name, s.user.pw_shell
    install = f"grabber install-launcher --user {name} && usermod --shell {DEFAULT_LAUNCHER} {name}"
    held = launcher_caps(shell)
    if cfg.super == "fake-super":
        yield Finding(True, 'super = "fake-super": owners, modes and devices go to xattrs')
        return
    if held is None:
        if cfg.super == "super":
            yield Finding(
                False,
                'super = "super" but the login shell is not the launcher: runs are refused',
                install,
            )
        else:
            yield Finding(
                True,
                "rsync --fake-super: no launcher, no capabilities held",
                f"for exact owners and devices: {install}",
                note=True,
            )
        return
    missing = [c for c in caps.GRABBER_LAUNCHER_CAPS if c not in held.permitted]
    if missing or held.effective:
        what = f"lacks {', '.join(missing)}" if missing else "has the effective bit set"
        yield Finding(
            False,
            f"the launcher {shell} {what}",
            f"grabber install-launcher --user {name} --dest {shell}",
        )
        return
    st = os.stat(shell)
    if st.st_uid != 0 or st.st_gid != s.user.pw_gid or stat.S_IMODE(st.st_mode) != 0o750:
        group = grp.getgrgid(s.user.pw_gid).gr_name
        yield Finding(
            False,
            f"the launcher {shell} must be root:{group}, mode 0750 "
            "(only the grabber's group may run it)",
            f"grabber install-launcher --user {name} --dest {shell}",
        )
        return
    yield Finding(True, f"launcher holds {','.join(sorted(held.permitted))} (permitted only)")
    if landlock.abi_version() == 0 and not cfg.allow_unconfined_super:
        yield Finding(
            False,
            "Landlock is unavailable: runs refuse rsync --super unconfined",
            f"a kernel with Landlock, or allow_unconfined_super = true in {cfg.path}",
        )
    risk = receiver.suid_risk(cfg)
    if risk is not None:
        consequence = "runs are refused"
        missing = ",".join(mounts.missing_safety_options(cfg.repository))
        yield Finding(
            False,
            f"{consequence}: the repository is on a mount without {missing}, where --super "
            "snapshots would hold working setuid files and devices",
            filechecks.remount_fix_for(cfg.repository),
        )
    else:
        yield Finding(True, "rsync --super: capabilities, confinement and mount options agree")


def check_landlock(s: Subject) -> Iterator[Finding]:
    abi = landlock.abi_version()
    if abi == 0:
        yield Finding(
            False,
            "Landlock is unavailable: the receiving rsync is not confined to its host's directory",
            "boot Linux >= 5.13 with CONFIG_SECURITY_LANDLOCK=y and landlock in the lsm= list",
        )
    else:
        yield Finding(
            True, f"Landlock ABI {abi}: the receiving rsync writes only its host's directory"
        )


def check_namespace(s: Subject) -> Iterator[Finding]:
    """The receiving rsync's mount namespace: built with the launcher's
    CAP_SYS_ADMIN, or else in a user namespace of its own (confine/userns.py)."""
    held = launcher_caps(s.user.pw_shell)
    if held is not None and receiver.NAMESPACE_CAP in held.permitted:
        yield Finding(True, "the receiving rsync's mount namespace: built with CAP_SYS_ADMIN")
        return
    launcher = f"or install the launcher (grabber install-launcher --user {s.user.pw_name})"
    problem = userns.why_unavailable(userns.read_switches())
    if problem is None and os.geteuid() in (0, s.user.pw_uid):
        failed = mountns.probe_as(s.user.pw_uid, s.user.pw_gid)
        if failed is not None:
            problem = (f"{s.user.pw_name} cannot build a user namespace ({failed})",
                       "allow unprivileged user namespaces")  # fmt: skip
    if problem is None:
        yield Finding(True, "the receiving rsync's mount namespace: built in a user namespace")
    else:
        what, fix = problem
        yield Finding(False, f"runs are refused: {what}", f"{fix}, {launcher}")


def check_rsync(s: Subject) -> Iterator[Finding]:
    version = versions.rsync_version(s.cfg.rsync)
    risk = versions.rsync_risk(version)
    want = versions.dotted(versions.MIN_SAFE_RSYNC)
    if risk is None:
        yield Finding(True, f"rsync {versions.dotted(version)} ({s.cfg.rsync})")
    elif s.cfg.allow_unsafe_rsync:
        yield Finding(
            True,
            f"rsync {risk}, accepted by allow_unsafe_rsync = true",
            "only for a build that carries the fixes",
            note=True,
        )
    else:
        yield Finding(
            False,
            f"rsync ({s.cfg.rsync}) {risk}: runs are refused",
            f"install rsync >= {want} (a distribution build with the fixes: "
            f"allow_unsafe_rsync = true in {s.cfg.path})",
        )


CHECKS: tuple[tuple[str, Callable[[Subject], Iterator[Finding]]], ...] = (
    ("account", check_account),
    ("login shell", check_shell),
    ("--super", check_super),
    ("Landlock", check_landlock),
    ("mount namespace", check_namespace),
    ("rsync", check_rsync),
    (
        "repository",
        lambda s: filechecks.check_repository(
            s.cfg, s.user, launcher_caps(s.user.pw_shell) is not None
        ),
    ),
    ("authorized_keys", lambda s: filechecks.check_authorized_keys(s.user, s.cfg.path)),
)


def default_user() -> str:
    """The grabber account `check` looks at when none is named."""
    return "pullsnap" if os.geteuid() == 0 else pwd.getpwuid(os.getuid()).pw_name


def check_host(cfg: GrabberConfig, name: str, program: str, out: TextIO) -> int:
    """Every check for user `name`, printed to `out`; FAILED if any found a problem.

    `program`: how the grabber was started, for fixes that name it."""
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        raise errors.UsageError(
            f"no user {name!r}: create the grabber account (README), or pass --user"
        ) from None
    program = os.path.abspath(program)
    grabber = program if os.path.basename(program) == "grabber" else "/opt/pullsnap/bin/grabber"
    subject = Subject(cfg, user, grabber)
    print(f"config: {cfg.path}: ok", file=out)
    problems = 0
    for what, check in CHECKS:
        problems += findings.print_all(findings.guarded(lambda c=check: c(subject), what), out)
    return errors.OK if problems == 0 else errors.FAILED
