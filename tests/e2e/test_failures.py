"""Failure paths, each through the real chain: clear exit codes, one-line
messages, nothing half-made presented as good, nothing old lost."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from pullsnap import errors, handoff
from pullsnap.lab import free_port
from tests.e2e.conftest import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e]


def _tree(site: Site, big: int = 0) -> None:
    os.makedirs(os.path.join(site.src, "d"))
    for i in range(5):
        with open(os.path.join(site.src, "d", f"f{i}"), "w") as f:
            f.write(f"file {i}\n")
    for i in range(big):
        with open(os.path.join(site.src, f"big{i}"), "wb") as f:
            f.write(os.urandom(40 * 1024 * 1024))


def _keypair(directory: str) -> tuple[str, str]:
    path = os.path.join(directory, "k")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)
    with open(path) as f:
        private = f.read()
    with open(path + ".pub") as f:
        public = " ".join(f.read().split()[:2])
    os.unlink(path)
    return private, public


def _pids_of(uid: int, needle: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(entry))
    return found


def test_unreachable_backup_host(site: Site) -> None:
    _tree(site)
    site.configure(destination={"port": free_port()})
    done = site.run()
    assert done.returncode == errors.UNREACHABLE
    assert "lab: unreachable:" in done.stderr and "Connection refused" in done.stderr
    assert os.listdir(site.runtime) == []
    assert site.snapshots() == []


def test_connect_back_never_happens(site: Site) -> None:
    """A backup host that takes the handoff and never connects back: the
    initiator gives up at its deadline and tears everything down."""
    _tree(site)
    site.lab.write_raw_authorized_keys(
        f'restrict,command="sleep 60" {site.lab.login_public_key()}\n', user=site.lab.plain_user
    )
    site.configure(connect_back_timeout=2, destination={"user": site.lab.plain_user})
    started = time.monotonic()
    done = site.run()
    assert done.returncode == errors.TIMEOUT, done.stderr
    assert "did not connect back within 2 s" in done.stderr
    assert time.monotonic() - started < 20
    assert os.listdir(site.runtime) == []
    uid = site.lab.initiator_pw().pw_uid
    assert _pids_of(uid, "sshd") == [] and _pids_of(uid, "ssh ") == []


@pytest.mark.security
def test_unbound_key_is_refused(site: Site) -> None:
    _tree(site)
    site.lab.write_raw_authorized_keys(f"{site.lab.login_public_key()}\n")
    before = site.repo_state()
    done = site.run()
    assert done.returncode == errors.REFUSED
    assert "not bound to a host" in done.stderr
    assert site.repo_state() == before


@pytest.mark.security
def test_forged_binding_without_forced_command_is_refused(site: Site) -> None:
    """An unbound key asking for the forced command's own words gets them as
    `-c`, but sshd sets no SSH_ORIGINAL_COMMAND: still refused."""
    site.lab.write_raw_authorized_keys(f"{site.lab.login_public_key()}\n")
    done = site.lab.ssh_to_backup_host(
        b"", command=f"pullsnap-grabber host=web2 config={site.grabber_config}"
    )
    assert done.returncode == errors.REFUSED
    assert b"not bound to a host" in done.stderr
    assert not os.path.exists(os.path.join(site.repo, "web2"))


@pytest.mark.security
@pytest.mark.parametrize(
    "payload",
    [b"", b"hello\n", b"PULLSNAP-HANDOFF 1 10\n{}", b"PULLSNAP-HANDOFF 2 2\n{}",
     b"PULLSNAP-HANDOFF 1 99999999\n", b"PULLSNAP-HANDOFF 1 2\n[]"],
    ids=["empty", "garbage", "truncated", "version", "oversized", "not-object"],
)  # fmt: skip
def test_malformed_handoff_changes_nothing(site: Site, payload: bytes) -> None:
    before = site.repo_state()
    done = site.lab.ssh_to_backup_host(payload)
    assert done.returncode == errors.REFUSED, done.stderr
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("grabber error: bad handoff: ")
    assert site.repo_state() == before


@pytest.mark.security
def test_host_key_mismatch_on_connect_back(site: Site, tmp_path) -> None:
    """Something answers at the connect-back address and port with a host key
    other than the one in the handoff: the grabber refuses and records it."""
    private, _ = _keypair(str(tmp_path))
    _, wrong_host_key = _keypair(str(tmp_path))
    assert site.lab.sshd is not None
    message = handoff.encode(
        handoff.Handoff(
            client_key=private, host_key=wrong_host_key, port=site.lab.sshd.port,
            user=site.lab.plain_user, paths=("/etc",),
        )
    )  # fmt: skip
    done = site.lab.ssh_to_backup_host(message)
    assert done.returncode == errors.REFUSED
    assert b"host key did not match" in done.stdout
    assert site.snapshots() == []
    [record] = [n for n in os.listdir(site.host_dir()) if n.endswith(".json")]
    with open(os.path.join(site.host_dir(), record)) as f:
        assert '"state": "failed"' in f.read()


def test_rsync_dies_mid_transfer(site: Site) -> None:
    """Kill the sender while data flows: no new good snapshot, the old one
    intact, the lock free (the next run works)."""
    _tree(site)
    site.configure()
    assert site.run().returncode == errors.OK
    [first] = site.snapshots()
    _tree_big = [os.path.join(site.src, f"big{i}") for i in range(3)]
    for path in _tree_big:
        with open(path, "wb") as f:
            f.write(os.urandom(40 * 1024 * 1024))
    proc = site.lab.initiator_background("-c", site.initiator_config, "--now")
    uid = site.lab.initiator_pw().pw_uid
    deadline = time.monotonic() + 60
    killed = False
    while time.monotonic() < deadline and proc.poll() is None:
        incomplete = [n for n in os.listdir(site.host_dir()) if n.endswith(".incomplete")]
        moving = incomplete and any(
            files for _, _, files in os.walk(os.path.join(site.host_dir(), incomplete[0]))
        )
        senders = _pids_of(uid, "--sender")
        if moving and senders:
            for pid in senders:
                os.kill(pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.005)
    _, err = proc.communicate(timeout=120)
    assert killed, "the transfer finished before it could be interrupted"
    assert proc.returncode == errors.FAILED, err
    assert site.snapshots() == [first]
    assert os.readlink(os.path.join(site.host_dir(), "latest")) == first
    with open(os.path.join(site.in_snapshot(first), "d", "f0")) as f:
        assert f.read() == "file 0\n"
    again = site.run()
    assert again.returncode == errors.OK, again.stderr
    assert len(site.snapshots()) == 2
