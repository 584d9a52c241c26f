"""The commands the initiator's messages tell an operator to run (pure).

Every hint, fix and `problem:` line that names a command spells it so that
it runs as printed: an `initiator` command names the configuration file
when it is not the default one, and the lines for the backup host's
operator say how to run them when that host's grabber configuration is
elsewhere.  Lines are built with shlex.quote, so a path with a space or a
`[host]:port` name survives the shell.
"""

from __future__ import annotations

import shlex

from pullsnap.config import DEFAULT_GRABBER_CONFIG, DEFAULT_INITIATOR_CONFIG, InitiatorConfig

# OpenSSH's host key files on the backup host, by the key type ssh names
# (sshd(8) FILES); what the operator there compares a fingerprint with.
HOST_KEY_FILES = {
    "ED25519": "/etc/ssh/ssh_host_ed25519_key.pub",
    "ECDSA": "/etc/ssh/ssh_host_ecdsa_key.pub",
    "RSA": "/etc/ssh/ssh_host_rsa_key.pub",
}


def shell_line(words: list[str]) -> str:
    return " ".join(shlex.quote(word) for word in words)


def initiator(cfg: InitiatorConfig, *words: str) -> str:
    """`initiator WORDS`, with `-c FILE` when the configuration is not the default."""
    config = [] if cfg.path in ("", DEFAULT_INITIATOR_CONFIG) else ["-c", cfg.path]
    return shell_line(["initiator", *config, *words])


def grabber_authorize(host: str, public_key: str, grabber_user: str) -> list[str]:
    """The lines for the backup host's operator: the `grabber authorize`
    command, and how to run it when that host's grabber configuration is
    not the default file.  `--bind-config` writes that file into the key's
    forced command (grabber/setup/authorize.py), without it the login reads the
    default file; `--config` goes before the subcommand (grabber's global
    option)."""
    key = " ".join(public_key.split()[:3])
    user = [] if grabber_user == "pullsnap" else ["--user", grabber_user]
    return [
        shell_line(["grabber", "authorize", *user, host, key]),
        f"# with a grabber configuration other than {DEFAULT_GRABBER_CONFIG}, name it:",
        "# grabber --config FILE authorize --bind-config " + shell_line([*user, host, key]),
    ]


def host_name(host: str, port: int) -> str:
    """The name ssh looks a host key up by: `host`, or `[host]:port` when
    the port is not 22 (OpenSSH put_host_port); ssh lowercases the host."""
    host = host.lower()
    return host if port == 22 else f"[{host}]:{port}"


def keyscan(host: str, port: int, key_type: str) -> str:
    """The line that prints the backup host's key of `key_type` (ED25519,
    ECDSA, RSA) as a known_hosts line."""
    port_words = ["-p", str(port)] if port != 22 else []
    return shell_line(["ssh-keyscan", *port_words, "-t", key_type.lower(), host])


def pin(host: str, port: int, key_type: str, known_hosts: str) -> str:
    """The line that appends that key to `known_hosts`."""
    return f"{keyscan(host, port, key_type)} >> {shlex.quote(known_hosts)}"


def forget(host: str, port: int, known_hosts: str) -> str:
    """The line that removes the keys `known_hosts` pins for host:port."""
    return shell_line(["ssh-keygen", "-R", host_name(host, port), "-f", known_hosts])


def compare(host: str, port: int, fingerprint: str, key_type: str) -> str:
    """The reminder: a key is worth pinning only once the backup host itself
    showed the same fingerprint.  Without one from ssh, first the line that
    shows the offered key's fingerprint without pinning it (ssh-keygen -lf
    reads stdin as "-", ssh-keygen(1))."""
    on_vault = HOST_KEY_FILES.get(key_type.upper(), "/etc/ssh/ssh_host_*_key.pub")
    there = f"with `ssh-keygen -lf {on_vault}` run on the backup host"
    if fingerprint:
        return f"compare {fingerprint} {there}"
    show = f"{keyscan(host, port, key_type)} | ssh-keygen -lf -"
    return f"see its fingerprint: {show}; compare it {there}"
