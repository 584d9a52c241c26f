"""`grabber restore` and `grabber delete` on real snapshots: a restore comes
out exact in either mode (a --fake-super snapshot's xattrs turned back into
owners and modes), locally and to a host over ssh; it refuses to overwrite,
shows progress on a terminal and catches a file that is not what the
manifest says; a deletion refuses the newest good snapshot unless forced
and is recorded."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import tempfile

import pytest

from lab import Sshd, write
from pullsnap import errors
from pullsnap.grabber.retention import delete as deletion
from pullsnap.grabber.store.repository import HostRepo
from tests.e2e.conftest import Site
from tests.labfixtures import read_terminal
from tests.trees import differences, make_rich_tree

pytestmark = [pytest.mark.root, pytest.mark.e2e]


def _grabber(site: Site, *args: str) -> subprocess.CompletedProcess:
    return site.lab.grabber(*args, "--config", site.grabber_config)


def _record(site: Site, name: str) -> dict:
    with open(os.path.join(site.host_dir(), name + ".json")) as f:
        return json.load(f)


def _restore_exactly(site: Site, mode: str) -> None:
    make_rich_tree(site.src)
    done = site.run()
    assert done.returncode == errors.OK, done.stderr
    [name] = site.snapshots()
    assert _record(site, name)["mode"] == mode
    target = os.path.join(site.root, "restored")
    done = _grabber(site, "restore", "web1", "latest", site.src, target)
    assert done.returncode == errors.OK, done.stdout + done.stderr
    assert differences(site.src, target) == []
    last = done.stdout.strip().splitlines()[-1]
    assert f"({mode}) to {target}/: verified" in last and "against the manifest" in last
    listed = _grabber(site, "list")
    assert f"web1  {name}  complete  {mode}" in listed.stdout
    status = _grabber(site, "status", "web1")
    assert f"last good {name} ({mode})" in status.stdout
    versions = _grabber(site, "versions", "web1", site.src + "/etc/hosts")
    assert f", {mode} snapshot" in versions.stdout, versions.stdout
    page = os.path.join(site.root, "report.html")
    assert _grabber(site, "report", "--html", page).returncode == errors.OK
    with open(page) as f:
        assert f'{name} <span class="note">{mode}</span>' in f.read()


def test_a_fake_super_snapshot_restores_owners_and_modes_from_its_xattrs(site: Site) -> None:
    _restore_exactly(site, "fake-super")


def test_a_super_snapshot_restores_exactly(super_site: Site) -> None:
    _restore_exactly(super_site, "super")


def test_restore_refuses_to_overwrite_without_force(site: Site) -> None:
    make_rich_tree(site.src)
    assert site.run().returncode == errors.OK
    target = os.path.join(site.root, "restored")
    assert _grabber(site, "restore", "web1", "latest", site.src, target).returncode == 0
    with open(os.path.join(target, "etc", "hosts"), "w") as f:
        f.write("changed since\n")
    done = _grabber(site, "restore", "web1", "latest", site.src, target)
    assert done.returncode == errors.REFUSED
    assert "would be overwritten (etc/hosts): pick an empty target, or add --force" in done.stderr
    with open(os.path.join(target, "etc", "hosts")) as f:
        assert f.read() == "changed since\n"
    done = _grabber(site, "restore", "web1", "latest", site.src, target, "--force")
    assert done.returncode == errors.OK, done.stderr
    assert differences(site.src, target) == []


def test_restore_names_a_file_that_is_not_what_the_manifest_says(site: Site) -> None:
    """Bit rot in the snapshot travels with the copy; the check after it
    compares the bytes with the manifest written when the snapshot was made."""
    os.makedirs(os.path.join(site.src, "etc"))
    write(os.path.join(site.src, "etc", "hosts"), "127.0.0.1 localhost\n")
    assert site.run().returncode == errors.OK
    [name] = site.snapshots()
    stored = site.in_snapshot(name) + "/etc/hosts"
    st = os.stat(stored)
    with open(stored, "r+") as f:
        f.write("6")  # same size, same mtime: rsync sees no change
    os.utime(stored, ns=(st.st_atime_ns, st.st_mtime_ns))
    target = os.path.join(site.root, "restored")
    done = _grabber(site, "restore", "web1", name, site.src + "/etc/hosts", target)
    assert done.returncode == errors.FAILED
    assert f"{target}: contents differ from the manifest" in done.stdout


def test_restore_shows_progress_on_a_terminal(site: Site) -> None:
    os.makedirs(site.src)
    with open(os.path.join(site.src, "big"), "wb") as f:
        f.write(os.urandom(64 << 20))
    assert site.run().returncode == errors.OK
    target = os.path.join(site.root, "restored")
    primary, secondary = pty.openpty()
    argv = [os.path.join(site.lab.venv_bin, "grabber"), "restore", "web1", "latest", site.src,
            target, "--config", site.grabber_config]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=secondary, stderr=secondary)
    os.close(secondary)
    seen = read_terminal(primary)
    os.close(primary)
    assert proc.wait(120) == errors.OK, seen[-500:]
    assert b"100%" in seen and b"to-chk=0/" in seen, seen[-500:]
    assert b"verified" in seen


def test_restore_to_a_host_over_ssh(site: Site) -> None:
    """--to-host: rsync over ssh to root on the host (a loopback sshd that
    lets root in with a key of this test's), the fake-super metadata
    written for real there."""
    make_rich_tree(site.src)
    assert site.run().returncode == errors.OK
    key = os.path.join(site.root, "root_key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    # sshd's StrictModes wants no group- or world-writable directory above
    # root's key file (so not under /tmp), and root's own ~/.ssh stays untouched.
    keys = tempfile.mkdtemp(prefix="pullsnap-restore-", dir="/run")
    with open(key + ".pub") as f:
        authorized = write(os.path.join(keys, "authorized_keys"), f.read(), 0o600)
    sshd = Sshd(os.path.join(site.root, "sshd"), ["root"], permit_root=True,
                authorized_keys=authorized)  # fmt: skip
    try:
        sshd.start()
        known = write(os.path.join(site.root, "known_hosts"), sshd.known_hosts_line())
        rsh = (f"ssh -F /dev/null -p {sshd.port} -i {key} -o BatchMode=yes "
               f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes")  # fmt: skip
        target = os.path.join(site.root, "on-host")
        args = ["restore", "web1", "latest", site.src, target, "--to-host", "root@127.0.0.1",
                "--rsh", rsh]  # fmt: skip
        done = _grabber(site, *args)
        assert done.returncode == errors.OK, done.stdout + done.stderr
        assert differences(site.src, target) == []
        assert f"to root@127.0.0.1:{target}/: verified" in done.stdout
        write(os.path.join(target, "etc", "hosts"), "changed there\n")
        again = _grabber(site, *args)
        assert again.returncode == errors.REFUSED, again.stdout + again.stderr
        assert "(etc/hosts): pick an empty target, or add --force" in again.stderr
    finally:
        sshd.stop()
        shutil.rmtree(keys)


def test_delete_refuses_the_newest_good_unless_forced_and_records_who(site: Site) -> None:
    os.makedirs(os.path.join(site.src, "etc"))
    write(os.path.join(site.src, "etc", "hosts"), "127.0.0.1 localhost\n")
    for _ in range(3):
        assert site.run().returncode == errors.OK
    first, second, third = site.snapshots()
    done = _grabber(site, "delete", "web1", second, "--reason", "held a leaked key")
    assert done.returncode == errors.OK, done.stderr
    assert site.snapshots() == [first, third]
    assert not os.path.exists(os.path.join(site.host_dir(), second + ".json"))
    refused = _grabber(site, "delete", "web1", third)
    assert refused.returncode == errors.FAILED and site.snapshots() == [first, third]
    printed = refused.stderr.strip().split("to delete it anyway: ", 1)[1]
    assert printed == f"grabber --config {site.grabber_config} delete web1 {third} --force"
    env = {"PATH": f"{site.lab.venv_bin}:/usr/bin:/bin", "SUDO_USER": "alice"}
    forced = subprocess.run(["sh", "-c", printed], capture_output=True, text=True, env=env,
                            check=False)  # fmt: skip
    assert forced.returncode == errors.OK, forced.stderr
    assert site.snapshots() == [first]
    assert os.readlink(os.path.join(site.host_dir(), "latest")) == first
    lines = deletion.deletions(HostRepo(site.repo, "web1"))
    assert [(d["snapshot"], d["by"], d["forced"], d["reason"], d["mode"]) for d in lines] == [
        (second, "root", False, "held a leaked key", "fake-super"),
        (third, "root (sudo from alice)", True, "", "fake-super"),
    ]
    # The next run builds on what is left, and becomes latest.
    assert site.run().returncode == errors.OK
    assert len(site.snapshots()) == 2


def test_restore_and_delete_on_the_btrfs_store(btrfs_site: Site) -> None:
    """Through the store, not hard links: a read-only subvolume restores
    exactly, and a forced deletion of the newest removes the subvolume and
    moves latest back."""
    site = btrfs_site
    make_rich_tree(site.src)
    for _ in range(2):
        assert site.run().returncode == errors.OK
    first, second = site.snapshots()
    target = os.path.join(site.root, "restored")
    done = _grabber(site, "restore", "web1", first, site.src, target)
    assert done.returncode == errors.OK, done.stdout + done.stderr
    assert differences(site.src, target) == []
    assert _grabber(site, "delete", "web1", second).returncode == errors.FAILED
    done = _grabber(site, "delete", "web1", second, "--force")
    assert done.returncode == errors.OK, done.stderr
    assert site.snapshots() == [first] and not os.path.exists(site.host_dir() + "/" + second)
    assert os.readlink(os.path.join(site.host_dir(), "latest")) == first
    assert site.run().returncode == errors.OK  # the next run builds on what is left
