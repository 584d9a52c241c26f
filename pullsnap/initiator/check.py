"""`initiator check`: is this host ready to be backed up?

Each check is a small function returning findings; `run` prints them as
`ok:` / `problem:` lines, each problem with the command or setting that
fixes it, and exits 1 if there was any problem.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator

from pullsnap import caps, errors, findings, landlock, versions
from pullsnap.config import InitiatorConfig
from pullsnap.findings import Finding
from pullsnap.versions import MIN_RSYNC, parse_version


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
    if any(d.before or d.after for d in cfg.destinations):
        from pullsnap.initiator.hooks import SETSID

        if not os.access(SETSID, os.X_OK):
            yield Finding(False, f"setsid (hooks) not found at {SETSID}", "apt install util-linux")
    banner = _version([cfg.rsync, "--version"])
    version = parse_version(banner)
    risk = versions.rsync_risk(version)
    if version is None:
        yield Finding(False, "cannot tell the rsync version", f"check {cfg.rsync} --version")
    elif version < MIN_RSYNC:
        yield Finding(
            False,
            f"rsync {versions.dotted(version)} is too old",
            f"install rsync >= {versions.dotted(versions.MIN_SAFE_RSYNC)}",
        )
    elif risk is not None:
        # The same release fixed checksum handling a malicious peer reaches
        # whichever end sends (rsync 3.4.0 NEWS): the sender wants it too.
        want = versions.dotted(versions.MIN_SAFE_RSYNC)
        yield Finding(False, f"rsync {risk}", f"install rsync >= {want}")
    else:
        yield Finding(True, f"rsync {versions.dotted(version)}")
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


def check_landlock() -> Iterator[Finding]:
    abi = landlock.abi_version()
    if abi == 0:
        yield Finding(
            False,
            "Landlock is unavailable: the sending rsync is not confined to the sources "
            "(the gate's path checks still apply)",
            "boot Linux >= 5.13 with CONFIG_SECURITY_LANDLOCK=y and landlock in the lsm= list",
        )
    elif abi < 4:
        yield Finding(
            True,
            f"Landlock ABI {abi}: the sending rsync reads only the sources",
            "Linux >= 6.7 (ABI 4) also keeps it off the network",
            note=True,
        )
    else:
        yield Finding(True, f"Landlock ABI {abi}: the sending rsync reads only the sources")


def run_user(cfg: InitiatorConfig) -> str:
    """Who the run is: the configured user when started as root, else ourselves."""
    return cfg.user if os.geteuid() == 0 else pwd.getpwuid(os.getuid()).pw_name


def key_file_problem(st: os.stat_result, uid: int) -> str | None:
    """What ssh(1) would refuse about a private key file, or None (pure).

    ssh refuses a private key others may read ("UNPROTECTED PRIVATE KEY
    FILE", sshkey_perm_ok in OpenSSH's authfile.c), and the run's user must
    own it to read it.
    """
    wrong = []
    if st.st_uid != uid:
        wrong.append("not owned by the run's user")
    if stat.S_IMODE(st.st_mode) & 0o077:
        wrong.append(f"mode {stat.S_IMODE(st.st_mode):04o}, not 0600")
    return ", ".join(wrong) or None


def check_runtime(cfg: InitiatorConfig) -> Iterator[Finding]:
    if not cfg.runtime_dir:
        yield Finding(
            True,
            "runtime directory: $RUNTIME_DIRECTORY (systemd), $XDG_RUNTIME_DIR, /dev/shm or /tmp",
        )
        return
    name = run_user(cfg)
    try:
        st = os.stat(cfg.runtime_dir)
    except FileNotFoundError:
        yield Finding(
            False,
            f"runtime directory {cfg.runtime_dir} does not exist",
            f"install -d -o {name} -m 0700 {cfg.runtime_dir}  (or: initiator setup)",
        )
        return
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        yield Finding(
            False,
            f"runtime directory {cfg.runtime_dir} must be {name}'s, but {name!r} does not exist",
            "create the user (see above)",
        )
        return
    if st.st_uid != uid or stat.S_IMODE(st.st_mode) & 0o077:
        yield Finding(
            False,
            f"runtime directory {cfg.runtime_dir} must be {name}'s and mode 0700",
            f"chown {name} {cfg.runtime_dir} && chmod 0700 {cfg.runtime_dir}",
        )
    else:
        yield Finding(True, f"runtime directory {cfg.runtime_dir}")


def check_destinations(cfg: InitiatorConfig) -> Iterator[Finding]:
    name = run_user(cfg)
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        uid = -1  # check_user says so
    for dest in cfg.destinations:
        where = f"destination {dest.name}"
        if os.path.isfile(dest.identity_file):
            problem = key_file_problem(os.stat(dest.identity_file), uid)
            if problem is None:
                yield Finding(True, f"{where}: login key {dest.identity_file}")
            else:
                yield Finding(
                    False,
                    f"{where}: login key {dest.identity_file}: {problem}",
                    f"chown {name} {dest.identity_file} && chmod 0600 {dest.identity_file}",
                )
        else:
            yield Finding(
                False,
                f"{where}: login key {dest.identity_file} is missing",
                f"ssh-keygen -t ed25519 -N '' -f {dest.identity_file}",
            )
        scan = (f"ssh-keyscan -p {dest.port} -t ed25519 {dest.host} > {dest.known_hosts}, then "
                "compare ssh-keygen -lf of it with the backup host's own key")  # fmt: skip
        if not os.path.isfile(dest.known_hosts):
            yield Finding(False, f"{where}: {dest.known_hosts} is missing", scan)
        elif not _knows(cfg.ssh_keygen, dest.known_hosts, dest.host, dest.port):
            yield Finding(False, f"{where}: {dest.known_hosts} has no key for {dest.host}", scan)
        else:
            yield Finding(True, f"{where}: known_hosts {dest.known_hosts} pins {dest.host}")
        for source in dest.sources:
            if not os.path.exists(source):
                yield Finding(
                    False, f"{where}: source {source} does not exist", "fix `sources` in the config"
                )
        for phase, argv, timeout in (("before", dest.before, dest.before_timeout),
                                     ("after", dest.after, dest.after_timeout)):  # fmt: skip
            if argv:
                yield from _check_hook(f"{where}: {phase} hook", argv, timeout)


def _knows(ssh_keygen: str, known_hosts: str, host: str, port: int) -> bool:
    """Whether known_hosts has a key for host:port (ssh-keygen -F, which also
    finds hashed names; a port other than 22 is written [host]:port, sshd(8))."""
    name = host if port == 22 else f"[{host}]:{port}"
    try:
        done = subprocess.run([ssh_keygen, "-F", name, "-f", known_hosts],
                              capture_output=True, timeout=10, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _check_hook(where: str, argv: tuple[str, ...], timeout: float) -> Iterator[Finding]:
    from pullsnap.initiator.children import CHILD_PATH

    program = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=CHILD_PATH)
    if program is None or not os.access(program, os.X_OK):
        yield Finding(False, f"{where}: {argv[0]} is not an executable program",
                      "fix `before`/`after` in the config")  # fmt: skip
    else:
        shown = argv[2] if argv[:2] == ("/bin/sh", "-c") else " ".join(argv)
        yield Finding(True, f"{where}: {shown} (timeout {timeout:g} s)")


CHECKS: tuple[Callable[[InitiatorConfig], Iterator[Finding]], ...] = (
    check_tools,
    lambda cfg: check_landlock(),
    check_user,
    lambda cfg: check_caps(),
    check_runtime,
    check_destinations,
)


def run(cfg: InitiatorConfig) -> int:
    print(f"config: {cfg.path}: ok ({len(cfg.destinations)} destination(s))")
    problems = 0
    for check in CHECKS:
        problems += findings.print_all(
            findings.guarded(lambda check=check: check(cfg), "check"), sys.stdout
        )
    return errors.OK if problems == 0 else errors.FAILED
