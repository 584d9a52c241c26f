"""Properties 4 and 5 from the grabber's side: what a backed-up host (holding
its bound login key) can send, through the backup host's real sshd.

Each hostile handoff gets one clear line, a non-zero exit and leaves the
repository as it was; a host bound to web1 writes only below web1 and the
connect-back goes to the address sshd saw."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pullsnap import errors, handoff
from tests.labfixtures import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.security]


@pytest.fixture(scope="module")
def keypair(tmp_path_factory) -> tuple[str, str]:
    path = tmp_path_factory.mktemp("k") / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    public = " ".join(path.with_suffix(".pub").read_text().split()[:2])
    return path.read_text(), public


def _body(keypair: tuple[str, str], **changes) -> dict:
    private, public = keypair
    fields = {"client_key": private, "host_key": public, "port": 1, "user": "nobody",
              "paths": ["/etc"], "excludes": [], "probe": False}  # fmt: skip
    fields.update(changes)
    return fields


def _wire(fields: dict) -> bytes:
    body = json.dumps(fields).encode()
    return f"PULLSNAP-HANDOFF 1 {len(body)}\n".encode() + body


HOSTILE = {
    "extra-address-field": {"address": "192.0.2.66"},
    "extra-host-field": {"host": "web2"},
    "port-as-string": {"port": "22"},
    "port-as-bool": {"port": True},
    "paths-as-string": {"paths": "/etc"},
    "path-with-nul": {"paths": ["/etc\u0000/shadow"]},
    "relative-path": {"paths": ["etc"]},
    "dotdot-path": {"paths": ["/srv/../etc"]},
    "include-rule": {"excludes": ["+ /etc/shadow"]},
    "exclude-rule-prefix": {"excludes": ["- *"]},
    "merge-rule": {"excludes": ["merge /etc/shadow"]},
    "option-lookalike": {"excludes": ["--delete"]},
    "clear-list": {"excludes": ["!"]},
    "newline-in-exclude": {"excludes": ["a\nb"]},
    "not-a-key": {"client_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n"
                                "-----END OPENSSH PRIVATE KEY-----\n"},
    "public-key-as-key": {"client_key": "ssh-ed25519 AAAA"},
    # The right magic, "none" cipher and kdf, then nothing: no key count.
    "truncated-key": {"client_key": "-----BEGIN OPENSSH PRIVATE KEY-----\n"
                                    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAA=\n"
                                    "-----END OPENSSH PRIVATE KEY-----\n"},
    "rsa-host-key": {"host_key": "ssh-rsa AAAAB3NzaC1yc2E="},
    "user-with-slash": {"user": "../root"},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_handoff_is_refused_and_changes_nothing(site: Site, keypair, name) -> None:
    before = site.repo_state()
    done = site.lab.ssh_to_backup_host(_wire(_body(keypair, **HOSTILE[name])))
    assert done.returncode == errors.REFUSED, done.stderr
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("grabber error: bad handoff: "), lines
    assert site.repo_state() == before


def test_a_garbage_key_with_a_valid_shape_is_refused_by_ssh_add(site: Site, keypair) -> None:
    """Base64 of the right magic but nonsense inside: only ssh-add can tell."""
    import base64

    blob = b"openssh-key-v1\0" + b"\0\0\0\x04none\0\0\0\x04none\0\0\0\0\0\0\0\x01" + os.urandom(80)
    armour = base64.b64encode(blob).decode()
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(
        armour[i : i + 70] for i in range(0, len(armour), 70)
    ) + "\n-----END OPENSSH PRIVATE KEY-----\n"  # fmt: skip
    before = site.repo_state()
    done = site.lab.ssh_to_backup_host(_wire(_body(keypair, client_key=key)))
    assert done.returncode == errors.REFUSED
    assert done.stderr.decode().strip().startswith("grabber error: bad handoff: client_key")
    assert site.repo_state() == before


def test_oversized_handoff_is_refused_from_its_header(site: Site) -> None:
    """The header announces 10 MiB: refused before any body is read (the
    body never even arrives here)."""
    done = site.lab.ssh_to_backup_host(b"PULLSNAP-HANDOFF 1 10485760\n")
    assert done.returncode == errors.REFUSED
    assert b"over the 65536-byte limit" in done.stderr


def test_a_web1_key_writes_only_below_web1(site: Site) -> None:
    os.makedirs(site.src)
    with open(os.path.join(site.src, "f"), "w") as f:
        f.write("x")
    site.lab.authorize([("web1", site.grabber_config)])
    assert site.run().returncode == errors.OK
    assert sorted(os.listdir(site.repo)) == ["web1"]
    [record] = [n for n in os.listdir(site.host_dir()) if n.endswith(".json")]
    with open(os.path.join(site.host_dir(), record)) as f:
        assert json.load(f)["initiator"]["address"] == "127.0.0.1"  # from SSH_CONNECTION


@pytest.mark.parametrize("host", ["../web2", "web1/../web2", ".hidden", "-dash", "UPPER", "a\tb"])
def test_hostile_host_names_are_refused_when_authorizing(site: Site, host) -> None:
    key = site.lab.login_public_key()
    done = site.lab.grabber("authorize", "--user", site.lab.grabber_user, "--", host, key)
    assert done.returncode == errors.REFUSED
    assert "is not allowed" in done.stderr


def test_a_hand_written_line_with_a_hostile_host_is_refused_at_login(site: Site) -> None:
    key = site.lab.login_public_key()
    site.lab.write_raw_authorized_keys(
        f'restrict,command="pullsnap-grabber host=../../tmp config={site.grabber_config}" {key}\n'
    )
    before = site.repo_state()
    done = site.lab.ssh_to_backup_host(b"")
    assert done.returncode == errors.REFUSED
    assert b"host name '../../tmp' is not allowed" in done.stderr
    assert site.repo_state() == before
    assert handoff.MAX_BODY == 65536  # the limit the header test names
