"""`initiator check`: is this host ready to be backed up?

Each check is a small function returning findings; `run` prints them as
`ok:` / `problem:` lines, each problem with the command or setting that
fixes it, and exits 1 if there was any problem.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pullsnap import caps, errors
from pullsnap.config import InitiatorConfig

MIN_RSYNC = (3, 2, 3)


@dataclass(frozen=True)
class Finding:
    ok: bool
    text: str
    fix: str = ""


def parse_version(text: str) -> tuple[int, ...] | None:
    """First dotted version number in a tool's banner (pure)."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        return None
    return tuple(int(g) for g in match.groups() if g is not None)


def _version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout + done.stderr).decode("utf-8", "replace")


def check_tools(cfg: InitiatorConfig) -> Iterator[Finding]:
    for name, path in (
        ("sshd", cfg.sshd),
        ("ssh", cfg.ssh),
        ("ssh-keygen", cfg.ssh_keygen),
        ("rsync", cfg.rsync),
        ("setpriv", "/usr/bin/setpriv"),
    ):
        if os.access(path, os.X_OK):
            yield Finding(True, f"{name}: {path}")
        else:
            package = {"sshd": "openssh-server", "setpriv": "util-linux"}.get(name, name)
            package = "openssh-client" if name in ("ssh", "ssh-keygen") else package
            yield Finding(False, f"{name} not found at {path}", f"apt install {package}")
    banner = _version([cfg.rsync, "--version"])
    version = parse_version(banner)
    if version is None:
        yield Finding(False, "cannot tell the rsync version", f"check {cfg.rsync} --version")
    elif version < MIN_RSYNC:
        yield Finding(
            False,
            f"rsync {'.'.join(map(str, version))} is too old",
            f"install rsync >= {'.'.join(map(str, MIN_RSYNC))}",
        )
    else:
        yield Finding(True, f"rsync {'.'.join(map(str, version))}")
    ssh_banner = _version([cfg.ssh, "-V"]).strip().splitlines()
    if ssh_banner:
        yield Finding(True, f"OpenSSH: {ssh_banner[0]}")


def check_user(cfg: InitiatorConfig) -> Iterator[Finding]:
    name = cfg.user if os.geteuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        yield Finding(
            False,
            f"user {name!r} does not exist",
            f"useradd --system --shell /bin/sh --home-dir /var/lib/pullsnap {name}",
        )
        return
    # sshd runs the forced command as `$SHELL -c ...` (sshd(8) LOGIN PROCESS).
    shell = os.path.basename(entry.pw_shell)
    if shell in ("nologin", "false", "") or not os.access(entry.pw_shell, os.X_OK):
        yield Finding(
            False,
            f"user {name} has login shell {entry.pw_shell!r}; sshd needs a real one",
            f"usermod --shell /bin/sh {name}",
        )
    else:
        yield Finding(True, f"runs as {name} (shell {entry.pw_shell})")


def check_caps() -> Iterator[Finding]:
    if os.geteuid() == 0:
        yield Finding(
            True, "started as root: will drop to the configured user with CAP_DAC_READ_SEARCH only"
        )
    elif caps.have(caps.INITIATOR_CAPS):
        yield Finding(True, "holds CAP_DAC_READ_SEARCH (permitted and inheritable)")
    else:
        yield Finding(
            False,
            "CAP_DAC_READ_SEARCH is missing: root-only files will be skipped",
            "run from root's cron, or AmbientCapabilities=CAP_DAC_READ_SEARCH",
        )


def check_destinations(cfg: InitiatorConfig) -> Iterator[Finding]:
    for dest in cfg.destinations:
        where = f"destination {dest.name}"
        if os.path.isfile(dest.identity_file):
            yield Finding(True, f"{where}: login key {dest.identity_file}")
        else:
            yield Finding(
                False,
                f"{where}: login key {dest.identity_file} is missing",
                f"ssh-keygen -t ed25519 -N '' -f {dest.identity_file}",
            )
        if os.path.isfile(dest.known_hosts):
            yield Finding(True, f"{where}: known_hosts {dest.known_hosts}")
        else:
            yield Finding(
                False,
                f"{where}: {dest.known_hosts} is missing",
                f"ssh-keyscan -p {dest.port} {dest.host} > {dest.known_hosts}",
            )
        for source in dest.sources:
            if not os.path.exists(source):
                yield Finding(
                    False, f"{where}: source {source} does not exist", "fix `sources` in the config"
                )


CHECKS: tuple[Callable[[InitiatorConfig], Iterator[Finding]], ...] = (
    check_tools,
    check_user,
    lambda cfg: check_caps(),
    check_destinations,
)


def run(cfg: InitiatorConfig) -> int:
    problems = 0
    print(f"config: {cfg.path}: ok ({len(cfg.destinations)} destination(s))")
    for check in CHECKS:
        for finding in check(cfg):
            if finding.ok:
                print(f"ok: {finding.text}")
            else:
                problems += 1
                print(
                    f"problem: {finding.text}" + (f" -- fix: {finding.fix}" if finding.fix else "")
                )
    return errors.OK if problems == 0 else errors.FAILED
