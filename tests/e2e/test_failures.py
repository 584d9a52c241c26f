"""Failure paths, each through the real chain: clear exit codes, one-line
messages, nothing half-made presented as good, nothing old lost."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from lab import free_port
from pullsnap import errors, handoff
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


def test_a_door_that_cannot_listen_names_the_setting(site: Site) -> None:
    _tree(site)
    site.configure(listen_address="192.0.2.7")  # TEST-NET-1: on no interface here
    done = site.run()
    assert done.returncode == errors.FAILED, done.stderr
    assert "lab: failed: cannot listen on 192.0.2.7 port 0 (listen_address, listen_port): " in (
        done.stderr
    )
    assert os.listdir(site.runtime) == []


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


def test_run_timeout_stays_the_verdict_while_the_after_hook_runs(site: Site) -> None:
    """The call to the backup host, killed at the deadline, ends while the
    `after` hook runs: the verdict is still the timeout, not that end."""
    _tree(site)
    site.lab.write_raw_authorized_keys(
        f'restrict,command="sleep 60" {site.lab.login_public_key()}\n', user=site.lab.plain_user
    )
    site.configure(connect_back_timeout=60, run_timeout=2,
                   destination={"user": site.lab.plain_user, "after": "sleep 1"})  # fmt: skip
    done = site.run()
    assert done.returncode == errors.TIMEOUT, done.stderr
    assert "lab: timeout: the whole run took longer than 2 s" in done.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopped_initiator_fails_cleans_up_and_runs_after(site: Site, sig: int) -> None:
    """systemctl stop, a unit's timeout (SIGTERM) or Ctrl-C (SIGINT) mid-run:
    a failure with one line, never exit 0; the run directory and every child
    are gone, the `after` hook still runs, later destinations are not tried.
    A second signal while the `after` hook runs changes nothing."""
    _tree(site)
    site.lab.write_raw_authorized_keys(
        f'restrict,command="sleep 60" {site.lab.login_public_key()}\n', user=site.lab.plain_user
    )
    out = os.path.join(site.root, "out")
    os.makedirs(out)
    pw = site.lab.initiator_pw()
    os.chown(out, pw.pw_uid, pw.pw_gid)
    after = f"sleep 1; echo $PULLSNAP_EXIT > {out}/after.$PULLSNAP_DESTINATION"
    config = site.configure(
        connect_back_timeout=60, destination={"user": site.lab.plain_user, "after": after}
    )
    with open(config, "a", encoding="utf-8") as f:
        f.write('\n[[destination]]\nname = "second"\nhost = "127.0.0.1"\n'
                f'allow_from = ["127.0.0.1"]\nsources = ["{site.src}"]\n'
                f'after = "{after}"\n')  # fmt: skip
    proc = site.lab.initiator_background("-c", config, "--now", "--format", "text")
    waiting = lambda: any("sshd_config" in os.listdir(os.path.join(site.runtime, d))  # noqa: E731
                          for d in os.listdir(site.runtime))  # fmt: skip
    deadline = time.monotonic() + 30
    while not waiting() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert waiting(), "the run never reached the connect-back"
    proc.send_signal(sig)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == errors.FAILED, stderr
    name = signal.Signals(sig).name
    assert f"lab: failed: interrupted by {name}" in stderr and "Traceback" not in stderr
    assert os.listdir(site.runtime) == []
    assert _pids_of(pw.pw_uid, "sshd") == [] and _pids_of(pw.pw_uid, "ssh ") == []
    with open(os.path.join(out, "after.lab"), encoding="ascii") as f:
        assert f.read().strip() == str(errors.FAILED)
    assert not os.path.exists(os.path.join(out, "after.second"))


def test_the_next_run_removes_what_a_killed_initiator_left(site: Site) -> None:
    """SIGKILL gives no chance to clean up: the run directory (host key,
    sshd_config) stays until the next run, which removes it."""
    _tree(site)
    site.lab.write_raw_authorized_keys(
        f'restrict,command="sleep 60" {site.lab.login_public_key()}\n', user=site.lab.plain_user
    )
    config = site.configure(connect_back_timeout=60, destination={"user": site.lab.plain_user})
    proc = site.lab.initiator_background("-c", config, "--now")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(
        "sshd_config" in os.listdir(os.path.join(site.runtime, d)) for d in os.listdir(site.runtime)
    ):
        time.sleep(0.05)
    proc.kill()
    proc.communicate()
    [left] = os.listdir(site.runtime)
    site.configure()
    done = site.run()
    assert done.returncode == errors.OK, done.stderr
    assert os.listdir(site.runtime) == [], left


@pytest.mark.parametrize("trouble", ["missing", "unreadable", "too-open"])
def test_a_login_key_ssh_cannot_use_is_not_blamed_on_the_backup_host(
    site: Site, trouble: str
) -> None:
    """ssh ends with "Permission denied (publickey)" whether the backup host
    refused the key or this host never offered it: say which."""
    _tree(site)
    key = os.path.join(site.root, "id_ed25519")
    with open(site.lab.path("initiator", "id_ed25519"), "rb") as f:
        private = f.read()
    if trouble != "missing":
        with open(key, "wb") as f:
            f.write(private)
        pw = site.lab.initiator_pw()
        if trouble == "too-open":
            os.chown(key, pw.pw_uid, pw.pw_gid)
        os.chmod(key, 0o644 if trouble == "too-open" else 0o600)
    site.configure(destination={"identity_file": key})
    done = site.run()
    assert done.returncode == errors.FAILED, done.stderr
    assert f"lab: failed: this host's login key {key}: " in done.stderr
    assert "grabber authorize" not in done.stderr


def test_an_unknown_backup_host_key_is_a_refusal_that_names_known_hosts(site: Site) -> None:
    _tree(site)
    known_hosts = os.path.join(site.root, "known_hosts")
    with open(known_hosts, "w") as f:
        f.write(f"[127.0.0.1]:{site.lab.sshd.port} {_keypair(site.root)[1]}\n")
    site.configure(destination={"known_hosts": known_hosts})
    done = site.run()
    assert done.returncode == errors.REFUSED, done.stderr
    assert "Host key verification failed" in done.stderr and known_hosts in done.stderr


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
