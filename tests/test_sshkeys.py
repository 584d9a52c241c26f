"""OpenSSH key formats (sshkeys.py, pure): the armour, the key blob, the
fingerprint ssh-keygen shows."""

from __future__ import annotations

import base64
import struct
import subprocess

import pytest

from pullsnap import errors, sshkeys


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    path = tmp_path_factory.mktemp("k") / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.read_text(), (path.parent / "key.pub").read_text()


def test_the_public_half_and_fingerprint_are_ssh_keygens(key: tuple[str, str], tmp_path) -> None:
    private, public = key
    blob = sshkeys.public_of_private(sshkeys.private_key_blob(private))
    assert base64.b64encode(blob).decode() == public.split()[1]
    (tmp_path / "k.pub").write_text(public)
    shown = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True,
                           text=True, check=True).stdout.split()[1]  # fmt: skip
    assert sshkeys.fingerprint(blob) == shown


@pytest.mark.parametrize(
    "text",
    ["", "ssh-ed25519 AAAA", sshkeys.BEGIN + "not base64!\n" + sshkeys.END,
     sshkeys.BEGIN + base64.b64encode(b"openssh-key-v2\0").decode() + "\n" + sshkeys.END,
     sshkeys.BEGIN + "A" * (sshkeys.MAX_ARMOURED + 1) + "\n" + sshkeys.END],
    ids=["empty", "a-public-key", "not-base64", "wrong-magic", "too-long"],
)  # fmt: skip
def test_what_is_not_an_armoured_private_key_is_refused(text: str) -> None:
    with pytest.raises(errors.ClientKeyError, match="client_key is not an OpenSSH private key"):
        sshkeys.private_key_blob(text)


def test_an_encrypted_key_is_refused() -> None:
    blob = sshkeys.MAGIC + _string(b"aes256-ctr") + _string(b"bcrypt") + _string(b"salt")
    with pytest.raises(errors.ClientKeyError, match="is encrypted") as refused:
        sshkeys.public_of_private(blob + b"\0\0\0\x01")
    assert refused.value.exit_code == errors.REFUSED
    assert str(refused.value) == "bad handoff: client_key is encrypted"
