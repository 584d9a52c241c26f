"""`initiator check`: is this host ready to be backed up?

Each check is a small function returning findings; `run` prints them as
`ok:` / `problem:` lines, each problem with the command or setting that
fixes it, and exits 1 if there was any problem.
"""

from __future__ import annotations

import os
import pwd
import stat
import sys
from collections.abc import Callable, Iterator

from pullsnap import caps, errors, findings, landlock, oneshot, versions
from pullsnap.config import Destination, InitiatorConfig
from pullsnap.findings import Finding
from pullsnap.initiator import advice, hostkeys
from pullsnap.versions import MIN_RSYNC, parse_version


def _version(argv: list[str]) -> str:
    try:
        done = oneshot.run(argv, timeout=10)
    except OSError:  # TimeoutError is one
        return ""
    return done.stdout + done.stderr


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
    name = run_user(cfg)
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
    me = pwd.getpwuid(os.getuid()).pw_name if os.geteuid() != 0 else name
    if me != name:
        # What this account may read says nothing about the one backups run as.
        yield Finding(
            False,
            f"this check runs as {me}, but backups run as {name} (`user` in {cfg.path}: root "
            "drops to it, the systemd unit runs as it)",
            f"run `{advice.initiator(cfg, 'check')}` as root or as {name}",
        )


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
    """The account backups run as: the configured user (root drops to it,
    and the shipped systemd unit starts the initiator as it)."""
    return cfg.user


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
            f"install -d -o {name} -m 0700 {cfg.runtime_dir}  "
            f"(or: {advice.initiator(cfg, 'setup')})",
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


def check_destinations(cfg: InitiatorConfig, probe: bool = False) -> Iterator[Finding]:
    name = run_user(cfg)
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        uid = -1  # check_user says so
    for dest in cfg.destinations:
        where = f"destination {dest.name}"
        yield from _check_login_key(cfg, dest, where, name, uid)
        yield from check_host_key(cfg, dest, where, probe)
        for source in dest.sources:
            if not os.path.exists(source):
                yield Finding(
                    False,
                    f"{where}: source {source} does not exist",
                    f"fix `sources` in {cfg.path}",
                )
        for phase, argv, timeout in (("before", dest.before, dest.before_timeout),
                                     ("after", dest.after, dest.after_timeout)):  # fmt: skip
            if argv:
                yield from _check_hook(cfg, f"{where}: {phase} hook", argv, timeout)


def _check_login_key(
    cfg: InitiatorConfig, dest: Destination, where: str, name: str, uid: int
) -> Iterator[Finding]:
    key = dest.identity_file
    try:
        st = os.stat(key)
    except FileNotFoundError:
        setup = advice.initiator(cfg, "setup")
        yield Finding(False, f"{where}: login key {key} is missing",
                      f"ssh-keygen -t ed25519 -N '' -f {key}  (or: {setup})")  # fmt: skip
        return
    except PermissionError:
        yield _hidden(cfg, f"{where}: login key {key}")
        return
    problem = key_file_problem(st, uid)
    if problem is None:
        yield Finding(True, f"{where}: login key {key}")
    else:
        yield Finding(False, f"{where}: login key {key}: {problem}",
                      f"chown {name} {key} && chmod 0600 {key}")  # fmt: skip


def _hidden(cfg: InitiatorConfig, what: str) -> Finding:
    """A file this check's account may not even look at: not "missing"."""
    me = pwd.getpwuid(os.getuid()).pw_name
    fix = f"run `{advice.initiator(cfg, 'check')}` as root or as {run_user(cfg)}"
    return Finding(False, f"{what}: {me} may not look at it", fix)


def check_host_key(
    cfg: InitiatorConfig, dest: Destination, where: str, probe: bool
) -> Iterator[Finding]:
    """What known_hosts pins for the backup host, by ssh's own lookup rule;
    with `probe`, also whether that is the key the backup host offers."""
    name = advice.host_name(dest.host, dest.port)
    fetch = hostkeys.pin_fix(dest, "ED25519", "", replace=False)
    try:
        os.stat(dest.known_hosts)
    except FileNotFoundError:
        yield Finding(False, f"{where}: {dest.known_hosts} is missing", fetch)
        return
    except PermissionError:
        yield _hidden(cfg, f"{where}: known_hosts {dest.known_hosts}")
        return
    pinned = hostkeys.pinned(cfg.ssh_keygen, dest)
    if not pinned:
        also = f" (nor, without the port, for {dest.host.lower()})" if dest.port != 22 else ""
        yield Finding(False, f"{where}: {dest.known_hosts} has no key for {name}{also}", fetch)
        return
    if probe:
        offered = hostkeys.scan(os.path.join(os.path.dirname(cfg.ssh), "ssh-keyscan"), dest)
        shown, known = hostkeys.accepted(pinned, offered)
        if shown is not None and known:
            offers = f"the backup host's {shown.key_type} key {shown.fingerprint}"
            yield Finding(True, f"{where}: {offers} is the one {dest.known_hosts} pins")
            return
        if shown is not None:
            # A key under the bare host stays: a line for host:port goes before it.
            replace = any(k.name == name for k in pinned)
            yield Finding(
                False,
                f"{where}: the backup host offers {shown.key_type} key {shown.fingerprint}, "
                f"which {dest.known_hosts} does not pin for {name}",
                hostkeys.pin_fix(dest, shown.key_type, shown.fingerprint, replace),
            )
            return
    pins = ", ".join(f"{k.key_type} {k.fingerprint}" for k in pinned)
    bare = [k for k in pinned if k.name == dest.host.lower()] if dest.port != 22 else []
    note = f"; from its line without the port, which ssh uses for port {dest.port}" if bare else ""
    unasked = " (ssh-keyscan got no answer: the probe below tells)" if probe else ""
    yield Finding(True, f"{where}: known_hosts {dest.known_hosts} pins {name}: {pins}{note}"
                        f"{unasked}")  # fmt: skip


def _check_hook(
    cfg: InitiatorConfig, where: str, argv: tuple[str, ...], timeout: float
) -> Iterator[Finding]:
    from pullsnap.initiator.children import CHILD_PATH

    program = oneshot.which(argv[0], CHILD_PATH)
    if program is None or not os.access(program, os.X_OK):
        yield Finding(False, f"{where}: {argv[0]} is not an executable program",
                      f"fix `before`/`after` in {cfg.path}")  # fmt: skip
    else:
        shown = argv[2] if argv[:2] == ("/bin/sh", "-c") else " ".join(argv)
        yield Finding(True, f"{where}: {shown} (timeout {timeout:g} s)")


def run(cfg: InitiatorConfig, probe: bool = False) -> int:
    """Print every finding; with `probe`, the host key is asked of the backup
    host too (`initiator check --probe`)."""
    checks: tuple[Callable[[], Iterator[Finding]], ...] = (
        lambda: check_tools(cfg),
        check_landlock,
        lambda: check_user(cfg),
        check_caps,
        lambda: check_runtime(cfg),
        lambda: check_destinations(cfg, probe),
    )
    print(f"config: {cfg.path}: ok ({len(cfg.destinations)} destination(s))")
    problems = 0
    for check in checks:
        problems += findings.print_all(findings.guarded(check, "check"), sys.stdout)
    return errors.OK if problems == 0 else errors.FAILED
