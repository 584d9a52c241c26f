"""The backup host's key: what ssh refused, what known_hosts pins, what the
backup host offers, and what to tell the operator.

ssh's rule (OpenSSH sshconnect.c check_host_key, hostfile.c
check_hostkeys_by_key_or_type): it looks the offered key up under `host`,
or `[host]:port` when the port is not 22.  A matching key there is
accepted; any other key there, of any type, is a changed key; only when
that name has no key at all does it look again under the bare `host` (a
line without the port), accepting only a matching key.  It asks the backup
host for the key types known_hosts holds first (order_hostkeyalgs), else
for its default order.  `pinned` and `accepted` follow that rule, so
`initiator check` agrees with what the login does.  Parsing and judging
are pure; `pinned` runs ssh-keygen -F (which also finds hashed names) and
`scan` runs ssh-keyscan.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import re
from dataclasses import dataclass

from pullsnap import oneshot
from pullsnap.config import Destination
from pullsnap.initiator import advice, children

# ssh's default preference among plain key types (ssh_config(5) HostKeyAlgorithms).
TYPE_ORDER = ("ED25519", "ECDSA", "RSA")

_FINGERPRINT_RE = re.compile(
    r"The fingerprint for the (\S+) key sent by the remote host is\s+(SHA256:[A-Za-z0-9+/]+)"
)
_UNKNOWN_RE = re.compile(r"No (\S+) host key is known for \S+ and you have requested strict")


@dataclass(frozen=True)
class HostKey:
    key_type: str  # as ssh names it: ED25519, ECDSA, RSA
    blob: str  # the base64 key
    name: str = ""  # the name it was found under (a hash, in a hashed line)

    @property
    def fingerprint(self) -> str:
        """OpenSSH's SHA256 fingerprint: unpadded base64 of the key blob's digest."""
        try:
            digest = hashlib.sha256(base64.b64decode(self.blob, validate=True)).digest()
        except binascii.Error:
            return "(not a key)"
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class Refusal:
    """Why ssh refused the backup host's key, as its stderr says."""

    key_type: str
    fingerprint: str  # "" when ssh does not print it (a key it knows nothing of)
    changed: bool  # known_hosts pins other keys under the name ssh looked up


def key_type(algorithm: str) -> str:
    """ED25519 for ssh-ed25519, ECDSA for ecdsa-sha2-*, RSA for ssh-rsa."""
    if algorithm.startswith("ecdsa-sha2-"):
        return "ECDSA"
    return algorithm.removeprefix("ssh-").upper()


def parse_lines(text: str) -> list[HostKey]:
    """Keys in known_hosts lines (ssh-keygen -F and ssh-keyscan print them);
    `@cert-authority` and `@revoked` lines pin nothing."""
    keys = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not fields[0].startswith(("#", "@")):
            keys.append(HostKey(key_type(fields[1]), fields[2], fields[0]))
    return keys


def parse_refusal(ssh_stderr: str) -> Refusal | None:
    changed = _FINGERPRINT_RE.search(ssh_stderr)
    if changed:
        return Refusal(changed.group(1), changed.group(2), changed=True)
    unknown = _UNKNOWN_RE.search(ssh_stderr)
    if unknown:
        return Refusal(unknown.group(1), "", changed=False)
    return None


def _rank(key: HostKey) -> int:
    return TYPE_ORDER.index(key.key_type) if key.key_type in TYPE_ORDER else len(TYPE_ORDER)


def accepted(pinned: list[HostKey], offered: list[HostKey]) -> tuple[HostKey | None, bool]:
    """The key the login would be shown, and whether known_hosts pins it."""
    known = {k.key_type for k in pinned}
    choices = sorted(offered, key=_rank)
    shown = next((k for k in choices if k.key_type in known), choices[0] if choices else None)
    if shown is None:
        return None, False
    return shown, any((k.key_type, k.blob) == (shown.key_type, shown.blob) for k in pinned)


def pin_fix(dest: Destination, key_type: str, fingerprint: str, replace: bool) -> str:
    """Compare first, then (remove the old key and) pin the offered one."""
    fetch = advice.pin(dest.host, dest.port, key_type, dest.known_hosts)
    if replace:
        fetch = advice.forget(dest.host, dest.port, dest.known_hosts) + " && " + fetch
    compare = advice.compare(dest.host, dest.port, fingerprint, key_type)
    return f"first {compare}; if they match: {fetch}"


def refused_message(dest: Destination, refusal: Refusal) -> str:
    """The login's host-key failure, with the fingerprint and the fix."""
    name = advice.host_name(dest.host, dest.port)
    if refusal.changed:
        seen = (f"the backup host offered {refusal.key_type} key {refusal.fingerprint}, not "
                f"the one {dest.known_hosts} pins for {name}")  # fmt: skip
    else:
        seen = (f"the backup host offered an {refusal.key_type} key, and {dest.known_hosts} "
                f"pins none for {name}")  # fmt: skip
    return f"{seen}: {pin_fix(dest, refusal.key_type, refusal.fingerprint, refusal.changed)}"


# --- what the files and the backup host say -------------------------------------------


def _lookup(ssh_keygen: str, known_hosts: str, name: str) -> list[HostKey]:
    try:
        done = oneshot.run([ssh_keygen, "-F", name, "-f", known_hosts], timeout=10)
    except OSError:  # TimeoutError is one
        return []
    found = parse_lines(done.stdout) if done.ok else []
    # Named by the lookup, not by the line: a hashed line's name is a hash.
    return [dataclasses.replace(key, name=name) for key in found]


def pinned(ssh_keygen: str, dest: Destination) -> list[HostKey]:
    """The keys ssh accepts for the destination: those under its name, or
    when there are none, those under the bare host (port not 22)."""
    exact = _lookup(ssh_keygen, dest.known_hosts, advice.host_name(dest.host, dest.port))
    if exact or dest.port == 22:
        return exact
    return _lookup(ssh_keygen, dest.known_hosts, dest.host.lower())


def scan(ssh_keyscan: str, dest: Destination, timeout: float = 10) -> list[HostKey]:
    """The backup host's keys as ssh-keyscan fetches them (none if it cannot)."""
    types = ",".join(t.lower() for t in TYPE_ORDER)
    argv = [ssh_keyscan, "-T", str(int(timeout)), "-p", str(dest.port), "-t", types, dest.host]
    try:
        done = oneshot.run(children.with_pdeathsig(argv), timeout=timeout + 5)
    except OSError:  # TimeoutError is one
        return []
    return parse_lines(done.stdout)
