"""The handoff: what the initiator tells the grabber on ssh's stdin.

Wire format, version 1::

    PULLSNAP-HANDOFF 1 <length>\\n
    <length bytes of UTF-8 JSON object>

The header line is at most `MAX_HEADER` bytes and names the body length, so
the grabber refuses an oversized handoff before reading its body.  The body
is one JSON object with exactly the fields of `Handoff`; a missing, extra,
repeated or mistyped field is refused, and so is every string that is not
UTF-8 text (JSON can spell a lone surrogate, `"\\ud800"`, which no file name
or rsync argument can carry).  Whatever the bytes, `decode` returns a
`Handoff` or raises `HandoffError`: nothing else escapes it.  Everything
here is pure: `encode` and `decode` work on bytes, the grabber's I/O layer
feeds them.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from pullsnap import sources, sshkeys
from pullsnap.errors import HandoffError

VERSION = 1
MAGIC = "PULLSNAP-HANDOFF"
MAX_HEADER = 64
MAX_BODY = 64 * 1024
MAX_PATHS = 64
MAX_EXCLUDES = 1000
MAX_PATH_LEN = sources.MAX_PATH_LEN
MAX_EXCLUDE_LEN = sources.MAX_EXCLUDE_LEN
# A handoff nests two deep (the object, its lists).  json.loads recurses once
# per level in C and ends in RecursionError on a body of 60,000 `[`, so the
# nesting is measured first, without recursion; the slack lets a mistyped
# field still be named by its type.
MAX_NESTING = 16

_HEADER_RE = re.compile(rb"^PULLSNAP-HANDOFF ([0-9]{1,3}) ([0-9]{1,9})\n$")
_HOST_KEY_RE = re.compile(r"^ssh-ed25519 ([A-Za-z0-9+/]{68})\Z")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")
# A JSON string, escapes included (RFC 8259 section 7); what is left between
# the strings is structure, where the brackets are counted.
_JSON_STRING_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS_RE = re.compile(r"[\[\]{}]")


@dataclass(frozen=True)
class Handoff:
    """One run's parameters, sent from the initiator to the grabber."""

    client_key: str  # OpenSSH private key, one-time, for the connect-back
    host_key: str  # "ssh-ed25519 AAAA...", the one-shot sshd's public host key
    port: int  # where the one-shot sshd listens
    user: str  # account to log in as on the backed-up host
    paths: tuple[str, ...]  # absolute source paths to pull
    excludes: tuple[str, ...] = ()  # rsync exclude patterns
    probe: bool = False  # handshake only: dry-run of an empty list


_FIELDS = {
    "client_key": str,
    "host_key": str,
    "port": int,
    "user": str,
    "paths": list,
    "excludes": list,
    "probe": bool,
}


def encode(handoff: Handoff) -> bytes:
    """Serialise a handoff after checking it as the grabber will."""
    validate(handoff)
    fields = asdict(handoff)
    fields["paths"] = list(handoff.paths)
    fields["excludes"] = list(handoff.excludes)
    body = json.dumps(fields, ensure_ascii=True, separators=(",", ":")).encode()
    if len(body) > MAX_BODY:
        raise HandoffError(f"{len(body)} bytes is over the {MAX_BODY}-byte limit")
    return f"{MAGIC} {VERSION} {len(body)}\n".encode() + body


def decode_header(line: bytes) -> int:
    """Check the header line and return the body length it announces."""
    match = _HEADER_RE.match(line)
    if match is None:
        raise HandoffError("the first line is not a pullsnap handoff header")
    version, length = int(match.group(1)), int(match.group(2))
    if version != VERSION:
        raise HandoffError(f"version {version} is not supported (this grabber speaks {VERSION})")
    if length > MAX_BODY:
        raise HandoffError(f"{length} bytes is over the {MAX_BODY}-byte limit")
    return length


def decode_body(body: bytes) -> Handoff:
    """Parse and validate the JSON body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise HandoffError(f"the body is not UTF-8 (byte {e.start})") from None
    check_nesting(text)
    try:
        fields = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        # RecursionError cannot come past check_nesting; kept as the last word.
        raise HandoffError(f"the body is not JSON ({e.__class__.__name__})") from None
    if not isinstance(fields, dict):
        raise HandoffError("the body is not a JSON object")
    extra = sorted(set(fields) - set(_FIELDS))
    if extra:
        raise HandoffError(f"unknown field {extra[0]!r}")
    for name in _FIELDS:
        if name not in fields:
            raise HandoffError(f"missing field {name!r}")
        check_field_type(name, fields[name])
    handoff = Handoff(
        client_key=fields["client_key"],
        host_key=fields["host_key"],
        port=fields["port"],
        user=fields["user"],
        paths=tuple(fields["paths"]),
        excludes=tuple(fields["excludes"]),
        probe=fields["probe"],
    )
    validate(handoff)
    return handoff


def check_nesting(text: str) -> None:
    """Refuse JSON nested deeper than MAX_NESTING, counting brackets outside
    strings (no recursion, so no depth can exhaust the stack)."""
    depth = 0
    for bracket in _BRACKETS_RE.findall(_JSON_STRING_RE.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_NESTING:
            raise HandoffError(f"the body nests deeper than {MAX_NESTING} levels")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose names are unique: with a repeated one, parsers
    disagree on which value counts (RFC 8259 section 4), so none does."""
    fields = dict(pairs)
    if len(fields) != len(pairs):
        names = [name for name, _ in pairs]
        repeated = next(name for name in names if names.count(name) > 1)
        raise HandoffError(f"field {repeated!r} appears twice")
    return fields


def _no_constant(name: str) -> None:
    """NaN and Infinity are not JSON (RFC 8259 section 6), only Python's."""
    raise HandoffError(f"the body is not JSON ({name})")


def check_field_type(name: str, value: object) -> None:
    """`value` has the type field `name` needs, its items too."""
    kind = _FIELDS[name]
    if kind is list:
        if not isinstance(value, list | tuple):
            raise HandoffError(f"field {name!r} must be list")
        if not all(isinstance(item, str) for item in value):
            raise HandoffError(f"field {name!r} must be a list of strings")
    # bool is a subclass of int: a port of `true` is still the wrong type.
    elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise HandoffError(f"field {name!r} must be {kind.__name__}")


def decode(data: bytes) -> Handoff:
    """Decode a whole handoff (header and body) held in memory."""
    newline = data.find(b"\n", 0, MAX_HEADER)
    if newline < 0:
        raise HandoffError("the first line is not a pullsnap handoff header")
    length = decode_header(data[: newline + 1])
    body = data[newline + 1 :]
    if len(body) != length:
        raise HandoffError(f"announced {length} bytes but {len(body)} arrived")
    return decode_body(body)


def validate(handoff: Handoff) -> None:
    """Refuse anything the grabber should not act on."""
    for name in _FIELDS:
        check_field_type(name, getattr(handoff, name))
    check_client_key(handoff.client_key)
    check_host_key(handoff.host_key)
    if not 1 <= handoff.port <= 65535:
        raise HandoffError(f"port {handoff.port} is out of range")
    if not _USER_RE.match(handoff.user):
        raise HandoffError(f"user {handoff.user!r} is not a valid login name")
    if not handoff.paths and not handoff.probe:
        raise HandoffError("no source paths")
    if len(handoff.paths) > MAX_PATHS:
        raise HandoffError(f"more than {MAX_PATHS} source paths")
    for path in handoff.paths:
        check_source_path(path)
    if len(handoff.excludes) > MAX_EXCLUDES:
        raise HandoffError(f"more than {MAX_EXCLUDES} exclude patterns")
    for pattern in handoff.excludes:
        check_exclude(pattern)


def check_client_key(text: str) -> None:
    """An unencrypted OpenSSH private key in its armour, nothing else."""
    sshkeys.private_key_blob(text)


def check_host_key(text: str) -> None:
    """One ed25519 public key, without comment: exactly what we pin."""
    match = _HOST_KEY_RE.match(text)
    if match is None:
        raise HandoffError("host_key is not an ssh-ed25519 public key")
    blob = base64.b64decode(match.group(1))
    # RFC 8709: string "ssh-ed25519", string key (32 bytes).
    if blob != b"\0\0\0\x0bssh-ed25519\0\0\0\x20" + blob[19:] or len(blob) != 51:
        raise HandoffError("host_key is not an ssh-ed25519 public key")


def check_source_path(path: str) -> None:
    """Absolute, normalised, printable UTF-8 text, no glob characters (sources.py)."""
    check_text("source path", path)
    try:
        sources.check_source_path(path)
    except ValueError as e:
        raise HandoffError(str(e)) from None


def check_exclude(pattern: str) -> None:
    """A plain exclude pattern: UTF-8 text, no control bytes, no rule prefixes (sources.py)."""
    check_text("exclude", pattern)
    try:
        sources.check_exclude(pattern)
    except ValueError as e:
        raise HandoffError(str(e)) from None


def check_text(what: str, text: str) -> None:
    """`text` encodes as UTF-8: a lone surrogate (which JSON's \\u escapes
    can spell) names no file and cannot reach rsync's command line."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise HandoffError(
            f"{what} {text!r} is not UTF-8 text (a lone surrogate at character {e.start})"
        ) from None
