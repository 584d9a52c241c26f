"""Reading the grabber user's authorized_keys back, for `grabber check` (pure).

A line is `[options] keytype base64 [comment]`; options are comma-separated,
may hold double-quoted values with `\\"` inside, and end at the first
unquoted space (sshd(8), AUTHORIZED_KEYS FILE FORMAT).  A line pullsnap can
use is bound: `restrict` (no pty, no forwarding, no agent, no X11, no user
rc) and `command="pullsnap-grabber host=NAME"`, so the host name comes from
this file and not from the client.  sshd uses the *first* line whose key
matches, so the same key on two lines binds it to the first host only.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

from pullsnap import sshkeys
from pullsnap.config import DEFAULT_GRABBER_CONFIG
from pullsnap.errors import BindingError
from pullsnap.grabber import hints
from pullsnap.grabber.session import binding

# sshd(8) AUTHORIZED_KEYS FILE FORMAT: the key types OpenSSH 9 accepts.
KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ssh-dss",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)


@dataclass(frozen=True)
class KeyLine:
    number: int  # 1-based line number
    options: tuple[str, ...]
    key_type: str
    blob: bytes
    comment: str

    def public_key(self) -> str:
        """`keytype base64`, as `grabber authorize` takes it."""
        return f"{self.key_type} {base64.b64encode(self.blob).decode('ascii')}"

    def fingerprint(self) -> str:
        """As ssh-keygen -l shows it."""
        return sshkeys.fingerprint(self.blob)

    def option(self, name: str) -> str | None:
        """The unquoted value of `name="..."`, "" for a bare `name`, None if absent."""
        for word in self.options:
            key, sep, value = word.partition("=")
            if key.lower() == name:
                if not sep:
                    return ""
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                return value.replace('\\"', '"')
        return None


def split_options(text: str) -> tuple[list[str], str]:
    """Options up to the first unquoted blank, and the rest of the line."""
    options: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quoted and ch == "\\" and text[i + 1 : i + 2] == '"':
            current.append('\\"')
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == ",":
            options.append("".join(current))
            current = []
            i += 1
            continue
        elif not quoted and ch in " \t":
            break
        current.append(ch)
        i += 1
    if quoted:
        raise ValueError("an option's quotes are not closed")
    options.append("".join(current))
    return options, text[i:].strip()


def parse_line(number: int, line: str) -> KeyLine | None:
    """One line, or None for a blank line or comment; ValueError if malformed."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    options: list[str] = []
    if text.split(None, 1)[0] not in KEY_TYPES:
        options, text = split_options(text)
    fields = text.split(None, 2)
    if len(fields) < 2 or fields[0] not in KEY_TYPES:
        raise ValueError("no key type and key where one should be")
    try:
        blob = base64.b64decode(fields[1], validate=True)
        (length,) = struct.unpack_from(">I", blob)
        inner = blob[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError):
        raise ValueError("the key is not valid base64 of an OpenSSH key") from None
    if inner != fields[0]:
        raise ValueError(f"the key says it is {inner!r}, the line says {fields[0]!r}")
    comment = fields[2] if len(fields) > 2 else ""
    return KeyLine(number, tuple(options), fields[0], blob, comment)


@dataclass(frozen=True)
class Verdict:
    line: int
    host: str | None  # the bound host, if the line is usable
    problem: str = ""
    fix: str = ""
    detail: str = ""


def audit(text: str, path: str, config: str = "", user: str = "") -> list[Verdict]:
    """Every key line's verdict, in file order.

    `config`: the grabber configuration in use; a line bound to another one
    (or, without `config=`, to the default) sends that host's backups to
    that file's repository and policy, so it is a problem here.  `user`:
    the account, when fixes must name it (`--user`)."""
    more = ("--user", user) if user else ()
    verdicts: list[Verdict] = []
    first_use: dict[bytes, tuple[int, str]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        delete = f"delete line {number} of {path}"
        try:
            key = parse_line(number, raw)
        except ValueError as e:
            verdicts.append(Verdict(number, None, f"malformed: {e}", delete))
            continue
        if key is None:
            continue
        shown = f"{key.key_type} {key.fingerprint()}"
        command = key.option("command")
        if command is None:
            verdicts.append(
                Verdict(
                    number,
                    None,
                    f"{shown} is not bound to a host",
                    f"{delete}, then: {hints.authorize(config, 'HOST', key.public_key(), *more)}",
                )
            )
            continue
        try:
            bound = binding.parse_forced_command(command)
        except BindingError as e:
            again = hints.authorize(config, "HOST", key.public_key(), *more)
            verdicts.append(Verdict(number, None, f"{shown}: {e}", f"{delete}, then: {again}"))
            continue
        # A rewrite keeps the line's address restriction (sshd's from="...").
        keep = ("--from", key.option("from") or "") if key.option("from") else ()
        if key.option("restrict") is None:
            verdicts.append(
                Verdict(
                    number,
                    bound.host,
                    f"{bound.host}: no `restrict` option "
                    "(the session may get a pty and forwarding)",
                    f"{hints.authorize(config, bound.host, key.public_key(), *more, *keep)} "
                    "rewrites it",
                )
            )
            continue
        earlier = first_use.get(key.blob)
        if earlier is not None:
            verdicts.append(
                Verdict(
                    number,
                    bound.host,
                    f"{shown} is bound on line {earlier[0]} "
                    f"to {earlier[1]} already: sshd never reaches this line",
                    delete,
                )
            )
            continue
        first_use[key.blob] = (number, bound.host)
        if config and not hints.same_config(bound.config, config):
            used = bound.config or f"the default {DEFAULT_GRABBER_CONFIG}"
            verdicts.append(
                Verdict(
                    number,
                    bound.host,
                    f"{bound.host} is bound to config {used}, not {config} in use here: "
                    "its backups read that file",
                    f"{hints.authorize(config, bound.host, key.public_key(), *more, *keep)} "
                    "rewrites it",
                )
            )
            continue
        bound_to = f", config {bound.config}" if bound.config else ""
        sources = key.option("from")
        where = f", only from {sources}" if sources else ""
        verdicts.append(Verdict(number, bound.host, detail=f"{shown}{bound_to}{where}"))
    return verdicts
