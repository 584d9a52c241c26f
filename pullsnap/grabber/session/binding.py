"""Who is calling: the host binding and the connect-back address (pure).

The grabber is the login shell of its user, so sshd starts it as
`grabber -c COMMAND` (sshd(8) LOGIN PROCESS).  A bound key's
authorized_keys line forces COMMAND::

    restrict,command="pullsnap-grabber host=web1" ssh-ed25519 AAAA... web1

and the initiator always asks for the command `pullsnap`, which sshd then
puts in SSH_ORIGINAL_COMMAND.  A key *without* a forced command would get
its client's own words as COMMAND and no SSH_ORIGINAL_COMMAND at all, so
"SSH_ORIGINAL_COMMAND is exactly `pullsnap`" is what proves that the host
name came from authorized_keys and not from the client.  (sshd sets that
variable itself; a client could only inject it through AcceptEnv, which
must not list it for this user; SECURITY.md says so.)

The connect-back address is the peer address sshd saw (SSH_CONNECTION),
never one the client names.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from pullsnap.errors import BindingError, NotAPublicKey
from pullsnap.names import check_host_name, normalise_address

FORCED_PREFIX = "pullsnap-grabber"
CLIENT_COMMAND = "pullsnap"
_CONFIG_RE = re.compile(r"^/[A-Za-z0-9._/-]{1,1023}\Z")


@dataclass(frozen=True)
class Binding:
    host: str
    config: str | None = None


def forced_command(host: str, config: str | None = None) -> str:
    """The COMMAND an authorized_keys line forces for `host`."""
    words = [FORCED_PREFIX, f"host={check_host_name(host)}"]
    if config is not None:
        if not _CONFIG_RE.match(config) or "/../" in config + "/":
            raise BindingError(f"config path {config!r} is not allowed in a forced command")
        words.append(f"config={config}")
    return " ".join(words)


def parse_forced_command(command: str) -> Binding:
    """Parse `pullsnap-grabber host=NAME [config=PATH]`, strictly."""
    words = command.split(" ")
    if not words or words[0] != FORCED_PREFIX:
        raise BindingError(
            "this key is not bound to a host (its authorized_keys line needs "
            f'command="{FORCED_PREFIX} host=NAME")'
        )
    fields: dict[str, str] = {}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep or key not in ("host", "config") or key in fields:
            raise BindingError(f"bad word {word!r} in the forced command")
        fields[key] = value
    if "host" not in fields:
        raise BindingError("the forced command names no host")
    binding = Binding(host=check_host_name(fields["host"]), config=fields.get("config"))
    if binding.config is not None:
        forced_command(binding.host, binding.config)  # validates the path
    return binding


def binding_from_login(argv: list[str], environ: Mapping[str, str]) -> Binding:
    """From `grabber -c COMMAND` and sshd's environment, or refuse."""
    if len(argv) != 3 or argv[1] != "-c":
        raise BindingError("this account only accepts pullsnap backups (no interactive login)")
    if environ.get("SSH_ORIGINAL_COMMAND") != CLIENT_COMMAND:
        raise BindingError("this key is not bound to a host (no forced command in authorized_keys)")
    return parse_forced_command(argv[2])


# sshd(8) ENVIRONMENT: every session it starts has these; a person who types
# `grabber -c ...` in a shell has none of them.
SSHD_VARIABLES = ("SSH_CONNECTION", "SSH_CLIENT", "SSH_ORIGINAL_COMMAND")


def started_by_sshd(environ: Mapping[str, str]) -> bool:
    return any(name in environ for name in SSHD_VARIABLES)


def login_mistake(argv: list[str], commands: Collection[str]) -> str:
    """What to say to a person who started the login-shell mode by hand (pure):
    `grabber -c status`, `grabber -c FILE status`, or a login as the user."""
    what = (
        "`grabber -c ...` is the login shell sshd starts for a backup, and this was not "
        "started by sshd (no SSH_CONNECTION)"
    )
    typed_c = len(argv) > 1 and argv[1] == "-c"
    words = argv[2:] if typed_c else []
    if typed_c and len(argv) == 3:
        try:
            words = shlex.split(argv[2])
        except ValueError:  # an unclosed quote: take it as one word
            words = [argv[2]]
    if words and words[0] in commands:
        return f"{what}: to run that command, type: {shlex.join(['grabber', *words])}"
    if len(words) > 1 and words[0].startswith("/") and words[1] in commands:
        typed = shlex.join(["grabber", "--config", *words])
        return f"{what}: to use {words[0]} as the configuration, type: {typed}"
    if not words and typed_c:
        return f"{what}: for a configuration file, type: grabber --config FILE COMMAND"
    return (
        f"{what}: this account only serves backups; as root or another user, run "
        "grabber COMMAND (grabber --help lists them)"
    )


def peer_address(environ: Mapping[str, str]) -> str:
    """The client address from SSH_CONNECTION ("client port server port")."""
    fields = environ.get("SSH_CONNECTION", "").split()
    if len(fields) != 4:
        raise BindingError("SSH_CONNECTION is missing: the grabber must be started by sshd")
    try:
        return normalise_address(fields[0])
    except ValueError:
        raise BindingError(f"SSH_CONNECTION names no IP address: {fields[0]!r}") from None


def source_pattern(addresses: Sequence[str]) -> str:
    """The value of `from="..."` for `addresses`: IP addresses or networks
    (address/bits), which sshd matches against the client's address
    (sshd(8) AUTHORIZED_KEYS FILE FORMAT, `from`); anything else is refused."""
    patterns = []
    for text in addresses:
        try:
            network = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise BindingError(
                f"--from {text!r} is not an IP address or network (like 192.0.2.7 or 192.0.2.0/24)"
            ) from None
        single = network.prefixlen == network.max_prefixlen
        patterns.append(str(network.network_address) if single else str(network))
    return ",".join(patterns)


def authorized_keys_line(
    host: str, public_key: str, config: str | None = None, sources: Sequence[str] = ()
) -> str:
    """The line `grabber authorize` writes for a host's login key; with
    `sources`, sshd accepts the key only from those addresses."""
    fields = public_key.strip().split()
    if len(fields) < 2 or not fields[0].startswith(("ssh-", "ecdsa-", "sk-")):
        raise NotAPublicKey()
    if not re.match(r"^[A-Za-z0-9+/]+={0,3}$", fields[1]):
        raise NotAPublicKey()
    command = forced_command(host, config)
    where = f'from="{source_pattern(sources)}",' if sources else ""
    return f'restrict,{where}command="{command}" {fields[0]} {fields[1]} pullsnap:{host}\n'
