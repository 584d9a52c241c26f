"""OpenSSH key formats (pure): the one-time private key a handoff carries,
and fingerprints as ssh-keygen -l shows them.

The private key is an unencrypted "openssh-key-v1" blob in its PEM-like
armour (OpenSSH's PROTOCOL.key): magic, cipher, kdf, kdf options, the key
count, then each public key, each a length-prefixed string (RFC 4251 5).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct

from pullsnap.errors import ClientKeyError

BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----\n"
END = "-----END OPENSSH PRIVATE KEY-----\n"
MAGIC = b"openssh-key-v1\0"
MAX_ARMOURED = 8192
_BASE64_LINE_RE = re.compile(r"^[A-Za-z0-9+/]{1,76}={0,2}$")


def private_key_blob(text: str) -> bytes:
    """The blob inside the armour of an OpenSSH private key, nothing else around it."""
    if len(text) > MAX_ARMOURED or not text.startswith(BEGIN) or not text.endswith(END):
        raise ClientKeyError("is not an OpenSSH private key")
    lines = text[len(BEGIN) : -len(END)].split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or not all(_BASE64_LINE_RE.match(line) for line in lines):
        raise ClientKeyError("is not an OpenSSH private key")
    try:
        blob = base64.b64decode("".join(lines), validate=True)
    except binascii.Error:
        raise ClientKeyError("is not an OpenSSH private key") from None
    if not blob.startswith(MAGIC):
        raise ClientKeyError("is not an OpenSSH private key")
    return blob


def _read_string(blob: bytes, offset: int) -> tuple[bytes, int]:
    if offset + 4 > len(blob):
        raise ClientKeyError("is truncated")
    (length,) = struct.unpack(">I", blob[offset : offset + 4])
    end = offset + 4 + length
    if end > len(blob):
        raise ClientKeyError("is truncated")
    return blob[offset + 4 : end], end


def public_of_private(blob: bytes) -> bytes:
    """The public key of an unencrypted, single ed25519 private key blob."""
    offset = len(MAGIC)
    cipher, offset = _read_string(blob, offset)
    kdf, offset = _read_string(blob, offset)
    _, offset = _read_string(blob, offset)  # kdf options
    if cipher != b"none" or kdf != b"none":
        raise ClientKeyError("is encrypted")
    if offset + 4 > len(blob):
        raise ClientKeyError("is truncated")
    (count,) = struct.unpack(">I", blob[offset : offset + 4])
    if count != 1:
        raise ClientKeyError("must hold exactly one key")
    public, _ = _read_string(blob, offset + 4)
    kind, _ = _read_string(public, 0)
    if kind != b"ssh-ed25519":
        raise ClientKeyError("is not an ed25519 key")
    return public


def fingerprint(public: bytes) -> str:
    """ssh-keygen -l style: SHA256:<base64 of the key blob's digest, no padding>."""
    digest = base64.b64encode(hashlib.sha256(public).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"
