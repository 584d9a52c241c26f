"""What one run starts and where it keeps its files (builders and probes).

The private run directory's base, the addresses allowed to connect back,
and the argv of the call to the backup host and of the one-shot sshd.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import tempfile
from collections.abc import Callable

from pullsnap import connectfd, errors, versions
from pullsnap.config import Destination, InitiatorConfig

LOGIN_COMMAND = "pullsnap"
_PLAIN_PATH_RE = re.compile(r"^/[A-Za-z0-9._/-]*\Z")


def runtime_base(cfg: InitiatorConfig, environ: dict[str, str] | None = None) -> str:
    """Where the private run directory goes: config, else systemd, XDG, tmpfs, /tmp."""
    env = os.environ if environ is None else environ
    wanted = cfg.runtime_dir
    if wanted and not (os.path.isdir(wanted) and os.access(wanted, os.W_OK | os.X_OK)):
        # Configured means meant: no silent fallback to a shared directory.
        from pullsnap.initiator import advice

        raise errors.RunFailed(
            f"runtime_dir {cfg.runtime_dir} is not a directory this user can write "
            f"(`{advice.initiator(cfg, 'setup')}` makes it, `{advice.initiator(cfg, 'check')}` "
            "says what is wrong)"
        )
    for candidate in (
        cfg.runtime_dir,
        env.get("RUNTIME_DIRECTORY", "").split(":")[0],
        env.get("XDG_RUNTIME_DIR", ""),
        "/dev/shm",
        tempfile.gettempdir(),
    ):
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            if not _PLAIN_PATH_RE.match(candidate):
                # sshd_config and ssh -o split on spaces and expand % and ~.
                raise errors.ConfigError(
                    f"runtime directory {candidate!r}", "use a path of letters, digits, '._-/'"
                )
            return candidate
    raise errors.RunFailed("no writable runtime directory (set runtime_dir in the config)")


def resolve_allowed(dest: Destination) -> tuple[str, ...]:
    """The addresses the grabber may connect back from."""
    if dest.allow_from:
        return dest.allow_from
    try:
        infos = socket.getaddrinfo(dest.host, dest.port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise errors.Unreachable(f"cannot resolve {dest.host}: {e.strerror}") from None
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


def ssh_argv(
    cfg: InitiatorConfig, dest: Destination, connect_timeout: float, nodelay: bool = True
) -> list[str]:
    """The call to the backup host; its stdin carries the handoff.

    `nodelay`: connect through connectfd.py (Nagle off during the
    handshake); False when ssh_config already routes this host through a
    ProxyCommand or ProxyJump of the operator's (`own_proxy`)."""
    return [
        cfg.ssh,
        "-T",
        "-x",
        "-a",
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        "-o", f"IdentityFile={dest.identity_file}",
        "-o", f"UserKnownHostsFile={dest.known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"ConnectTimeout={max(1, int(connect_timeout))}",
        "-o", "ServerAliveInterval=30",
        "-o", "ServerAliveCountMax=4",
        "-o", "ClearAllForwardings=yes",
        "-o", "ForwardAgent=no",
        "-o", "RequestTTY=no",
        "-o", "PermitLocalCommand=no",
        "-o", "ControlMaster=no",
        "-o", "ControlPath=none",
        "-o", "LogLevel=ERROR",
        *(connectfd.proxy_options(dest.host, dest.port, connect_timeout) if nodelay else []),
        "-p", str(dest.port),
        "-l", dest.user,
        "--",
        dest.host,
        LOGIN_COMMAND,
    ]  # fmt: skip


def own_proxy(cfg: InitiatorConfig, dest: Destination) -> bool:
    """Does ssh_config send this host through a ProxyCommand or ProxyJump?
    (`ssh -G` prints the options that apply, connecting nowhere.)  When
    ssh cannot say, the answer is yes: the operator's setup is left alone."""
    from pullsnap.initiator import children

    argv = [cfg.ssh, "-G", "-p", str(dest.port), "-l", dest.user, "--", dest.host]
    try:
        done = subprocess.run(
            children.with_pdeathsig(argv), capture_output=True, text=True, timeout=10,
            env=children.child_env(HOME=os.environ.get("HOME", "/")), check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return True
    if done.returncode != 0:
        return True
    keys = {line.split(" ", 1)[0].lower() for line in done.stdout.splitlines()}
    return bool(keys & {"proxycommand", "proxyjump"})


def sshd_argv(cfg: InitiatorConfig, config_path: str) -> list[str]:
    return [cfg.sshd, "-i", "-e", "-f", config_path]


def start_confine_root_probe(rsync: str) -> Callable[[], bool]:
    """Does this rsync have --confine-root (rsync >= 3.5 bounds server-side
    merge-file opens with it)?  `rsync --help` starts now and is answered
    when asked: the run needs it only for the sshd configuration, after the
    call to the backup host has started."""
    output = versions.start_output([rsync, "--help"])
    return lambda: b"--confine-root" in output()


def login_name() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
