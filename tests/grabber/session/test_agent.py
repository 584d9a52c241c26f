"""The one-time key's public half, read from the private key the handoff
carries (pure): every malformed key is a refused handoff, never a crash."""

from __future__ import annotations

import base64
import struct

import pytest

from pullsnap.errors import HandoffError
from pullsnap.grabber.session import agent


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _armour(blob: bytes) -> str:
    body = base64.b64encode(blob).decode()
    lines = "\n".join(body[i : i + 70] for i in range(0, len(body), 70))
    return f"-----BEGIN OPENSSH PRIVATE KEY-----\n{lines}\n-----END OPENSSH PRIVATE KEY-----\n"


_HEAD = b"openssh-key-v1\0" + _string(b"none") + _string(b"none") + _string(b"")


@pytest.mark.parametrize(
    "blob",
    [
        _HEAD,  # no key count
        _HEAD + b"\0\0",  # half a key count
        _HEAD + b"\0\0\0\x01",  # one key, no public key
        _HEAD + b"\0\0\0\x01" + _string(b""),  # an empty public key
        _HEAD + b"\0\0\0\x01" + _string(_string(b"ssh-rsa") + b"x"),
        _HEAD + b"\0\0\0\x02",
    ],
    ids=["no-count", "half-count", "no-public-key", "empty-public-key", "rsa", "two-keys"],
)
def test_a_malformed_key_is_a_refused_handoff(blob: bytes) -> None:
    with pytest.raises(HandoffError):
        agent.public_blob(_armour(blob))


def test_the_public_key_of_a_well_formed_key() -> None:
    public = _string(b"ssh-ed25519") + _string(bytes(32))
    blob = _HEAD + b"\0\0\0\x01" + _string(public) + _string(b"private part")
    assert agent.public_blob(_armour(blob)) == public
