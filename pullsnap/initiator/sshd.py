"""Configuration text for the one-shot `sshd -i` (pure builders).

sshd runs as the initiator's own unprivileged user, in inetd mode on the
one accepted socket, so it serves exactly one connection and then exits.
It can only log in its own user; it runs the forced command as
`$SHELL -c COMMAND` (sshd(8) LOGIN PROCESS), which is why that user needs
a real shell and why the command is quoted with shlex.

Every option that could widen the door is closed twice where OpenSSH
allows it: in sshd_config and with `restrict` on the authorized_keys line.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

GATE_MODULE = "pullsnap.initiator.gatecmd"


@dataclass(frozen=True)
class GateCommand:
    """How sshd's forced command starts the gate."""

    python: str
    roots: tuple[str, ...]
    rsync: str
    nice: int
    ionice: str
    log: str
    confine_root: bool = True
    lifeline: str = ""  # lifeline.py: the sender ends when the initiator does
    once: str = ""  # made by the first session: one sender per door

    def argv(self) -> list[str]:
        argv = [self.python, "-I", "-m", GATE_MODULE, "--rsync", self.rsync]
        for root in self.roots:
            argv += ["--root", root]
        argv += ["--nice", str(self.nice), "--ionice", self.ionice, "--log", self.log]
        if not self.confine_root:
            argv.append("--no-confine-root")
        if self.lifeline:
            argv += ["--lifeline", self.lifeline]
        if self.once:
            argv += ["--once", self.once]
        return argv

    def shell_line(self) -> str:
        return "exec " + shlex.join(self.argv())


@dataclass(frozen=True)
class DoorConfig:
    """Everything sshd_config needs for one run."""

    user: str
    host_key: str
    authorized_keys: str
    gate: GateCommand
    login_grace_seconds: int = 30


def sshd_config(c: DoorConfig) -> str:
    """The whole sshd_config (sshd_config(5)); nothing is inherited."""
    force = c.gate.shell_line()
    lines = [
        "# pullsnap one-shot sshd: one connection, public key only, forced gate",
        f"HostKey {c.host_key}",
        "HostKeyAlgorithms ssh-ed25519",
        "PubkeyAcceptedAlgorithms ssh-ed25519",
        f"AuthorizedKeysFile {c.authorized_keys}",
        "AuthorizedKeysCommand none",
        "AuthorizedPrincipalsFile none",
        "AuthenticationMethods publickey",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "HostbasedAuthentication no",
        "GSSAPIAuthentication no",
        "PermitEmptyPasswords no",
        "PermitRootLogin no",
        f"AllowUsers {c.user}",
        # The client offers one key; a failure ends the connection.
        "MaxAuthTries 1",
        "MaxSessions 1",
        f"LoginGraceTime {c.login_grace_seconds}",
        "DisableForwarding yes",
        "AllowAgentForwarding no",
        "AllowTcpForwarding no",
        "AllowStreamLocalForwarding no",
        "GatewayPorts no",
        "X11Forwarding no",
        "PermitTTY no",
        "PermitTunnel no",
        "PermitUserEnvironment no",
        "PermitUserRC no",
        "PermitListen none",
        "PermitOpen none",
        # The key files are ours, in a 0700 directory made by mkdtemp(3);
        # StrictModes would also walk up and refuse a sticky world-writable
        # parent such as /dev/shm, which the sticky bit already protects.
        "StrictModes no",
        "UsePAM no",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        "Compression no",
        "ClientAliveInterval 30",
        "ClientAliveCountMax 4",
        "PidFile none",
        "LogLevel VERBOSE",
        # Applies to shell, exec and subsystem requests alike (sshd_config(5)).
        f"ForceCommand {force}",
    ]
    return "\n".join(lines) + "\n"


def authorized_keys_line(public_key: str, allow_from: Sequence[str], command: str) -> str:
    """`restrict` (no pty, forwarding, agent, X11, user rc), `from=`, `command=`."""
    if not allow_from:
        raise ValueError("allow_from must name at least one address")
    if "\n" in command or command.endswith("\\"):
        raise ValueError("the forced command cannot be embedded in authorized_keys")
    # shlex quotes a root holding "'" as '"'"'; sshd(8) AUTHORIZED_KEYS FILE
    # FORMAT: "A quote may be included in the command by quoting it with a
    # backslash" (misc.c opt_dequote turns \" into " and nothing else).
    quoted = command.replace('"', '\\"')
    sources = ",".join(allow_from)
    return f'restrict,from="{sources}",command="{quoted}" {public_key} pullsnap-once\n'
