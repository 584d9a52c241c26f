"""Properties 4 and 5 from the grabber's side: what a backed-up host (holding
its bound login key) can send, through the backup host's real sshd.

Each hostile handoff gets one clear line, a non-zero exit and leaves the
repository as it was; a host bound to web1 writes only below web1 and the
connect-back goes to the address sshd saw."""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections.abc import Callable

import pytest

from pullsnap import errors, handoff, report
from pullsnap.grabber.setup.authorize import authorized_keys_path
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
    # JSON spells a lone surrogate in ASCII; no file name or argv can hold it.
    "path-with-lone-surrogate": {"paths": ["/etc/\ud800"]},
    "exclude-with-lone-surrogate": {"excludes": ["*.\udfff"]},
    # Wrong types at every level: the fields, their items, inside the items.
    "body-field-as-object": {"client_key": {"-----BEGIN": "x"}},
    "host-key-as-number": {"host_key": 25519},
    "user-as-list": {"user": ["nobody"]},
    "port-as-float": {"port": 22.0},
    "port-beyond-64-bits": {"port": 10**30},
    "probe-as-string": {"probe": "false"},
    "paths-as-object": {"paths": {"/etc": True}},
    "path-as-list": {"paths": [["/etc"]]},
    "path-as-null": {"paths": [None]},
    "exclude-as-number": {"excludes": [1]},
    "exclude-as-object": {"excludes": [{"pattern": "*"}]},
}  # fmt: skip


def _deep(opener: str, closer: str, depth: int) -> bytes:
    return (opener * depth + closer * depth).encode()


def _with_body(body: bytes) -> bytes:
    return f"PULLSNAP-HANDOFF 1 {len(body)}\n".encode() + body


def _repeated_paths(fields: dict) -> bytes:
    """paths twice: which one a parser keeps is its own choice."""
    text = json.dumps(fields)
    return _with_body((text[:-1] + ', "paths": ["/root"]}').encode())


def _invalid_utf8(fields: dict) -> bytes:
    return _with_body(
        json.dumps(fields).replace("/etc", "/etc\udcff").encode("utf-8", "surrogateescape")
    )


# Whole messages, built from a valid body where they need one.
RAW: dict[str, Callable[[dict], bytes]] = {
    "deep-nesting-arrays": lambda fields: _with_body(b"[" * 60000),
    "deep-nesting-objects": lambda fields: _with_body(_deep('{"a":', "}", 10000)),
    "deep-nesting-in-a-field": lambda fields: _with_body(
        json.dumps({**fields, "paths": 0}).replace('"paths": 0', '"paths": %s').encode()
        % _deep("[", "]", 20000)
    ),
    "nul-bytes-body": lambda fields: _with_body(b"\0" * 1000),
    "nul-byte-in-json": lambda fields: _with_body(json.dumps(fields).encode()[:-1] + b"\0}"),
    "nul-byte-in-header": lambda fields: b"PULLSNAP-HANDOFF\0 1 2\n{}",
    "junk-5-mib": lambda fields: random.Random(15).randbytes(5 << 20),
    "junk-body-under-a-header": lambda fields: _with_body(
        random.Random(16).randbytes(handoff.MAX_BODY)
    ),
    "invalid-utf-8": _invalid_utf8,
    "repeated-field": _repeated_paths,
    "nan-port": lambda fields: _with_body(json.dumps(fields).replace('"port": 1', '"port": NaN')
                                          .encode()),
}  # fmt: skip


def _hostile(keypair: tuple[str, str], name: str) -> bytes:
    if name in RAW:
        return RAW[name](_body(keypair))
    return _wire(_body(keypair, **HOSTILE[name]))


@pytest.mark.parametrize("name", sorted(HOSTILE) + sorted(RAW))
def test_hostile_handoff_is_refused_and_changes_nothing(site: Site, keypair, name) -> None:
    """One result line for the initiator, one line on stderr, exit 6, and the
    repository as it was: no record, no .incomplete tree, no traceback."""
    before = site.repo_state()
    done = site.lab.ssh_to_backup_host(_hostile(keypair, name))
    assert done.returncode == errors.REFUSED, done.stderr
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("grabber error: bad handoff: "), lines
    [line] = done.stdout.decode().splitlines()
    kind, result = report.parse_line(line)
    assert kind == report.RESULT, line
    assert result == {"status": "refused", "exit": errors.REFUSED,
                      "message": lines[0].removeprefix("grabber error: ")}  # fmt: skip
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
    # Its snapshots, its session places (sessions.py), named by the binding,
    # and the pull slots, which are no host's.
    assert sorted(os.listdir(site.repo)) == [".pull-slots", ".sessions", "web1"]
    assert os.listdir(os.path.join(site.repo, ".sessions")) == ["web1"]
    [record] = [n for n in os.listdir(site.host_dir()) if n.endswith(".json")]
    with open(os.path.join(site.host_dir(), record)) as f:
        assert json.load(f)["initiator"]["address"] == "127.0.0.1"  # from SSH_CONNECTION


@pytest.mark.parametrize("host", ["../web2", "web1/../web2", ".hidden", "-dash", "UPPER", "a\tb"])
def test_hostile_host_names_are_refused_when_authorizing(site: Site, host) -> None:
    key = site.lab.login_public_key()
    keys = authorized_keys_path(site.lab.grabber_user)
    before = _contents(keys)
    done = site.lab.grabber("authorize", "--user", site.lab.grabber_user, "--", host, key)
    assert done.returncode == errors.USAGE  # argparse refuses it before anything is read
    assert "is not allowed" in done.stderr
    assert _contents(keys) == before


def _contents(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


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
