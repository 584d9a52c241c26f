"""End to end, as in production: root-started initiator dropping to its user,
a real one-shot sshd and gate, the backup host's real sshd with `grabber` as
the login shell, real rsync both ways."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pullsnap import errors
from tests.e2e.conftest import Site
from tests.trees import describe, differences, make_rich_tree

pytestmark = [pytest.mark.root, pytest.mark.e2e]


def _record(site: Site, name: str) -> dict:
    with open(os.path.join(site.host_dir(), name + ".json"), encoding="utf-8") as f:
        return json.load(f)


def _regular_inodes(tree: str) -> dict[bytes, int]:
    entries, _ = describe(tree, times=False)
    base = os.fsencode(tree)
    return {
        rel: os.lstat(os.path.join(base, rel)).st_ino
        for rel, e in entries.items()
        if e.kind == "file"
    }


def test_fake_super_snapshot_restores_exactly(site: Site) -> None:
    make_rich_tree(site.src)
    done = site.run()
    assert done.returncode == errors.OK, done.stderr
    [name] = site.snapshots()
    assert os.readlink(os.path.join(site.host_dir(), "latest")) == name
    record = _record(site, name)
    assert record["state"] == "complete" and record["mode"] == "fake-super"
    assert record["initiator"]["address"] == "127.0.0.1"
    assert record["key_fingerprint"].startswith("SHA256:")
    snap = site.in_snapshot(name)
    # In the repository nothing is privileged: no setuid bit, no device node.
    assert not os.lstat(os.path.join(snap, "suid-true")).st_mode & 0o4000
    assert os.path.isfile(os.path.join(snap, "null-dev"))
    # The documented restore (README "Restore"): root reads the fake-super
    # metadata back with --fake-super and writes it for real with -M--super.
    restored = os.path.join(site.root, "restored")
    subprocess.run(
        [
            "rsync",
            "-aHAX",
            "--numeric-ids",
            "--modify-window=-1",
            "--fake-super",
            "-M--super",
            snap + "/",
            restored + "/",
        ],
        check=True,
    )
    assert differences(site.src, restored) == []


def test_second_run_hardlinks_everything_and_adds_nothing(site: Site) -> None:
    make_rich_tree(site.src)
    assert site.run().returncode == errors.OK
    assert site.run().returncode == errors.OK
    first, second = site.snapshots()
    one = _regular_inodes(site.in_snapshot(first))
    two = _regular_inodes(site.in_snapshot(second))
    assert one.keys() == two.keys() and len(one) > 20
    assert one == two, "every regular file of the no-change run is the same inode"
    record = _record(site, second)
    assert record["stats"]["transferred_size"] == 0
    assert record["link_dest"] == [first]


def test_changed_files_are_the_only_new_data(site: Site) -> None:
    make_rich_tree(site.src)
    assert site.run().returncode == errors.OK
    with open(os.path.join(site.src, "etc", "hosts"), "ab") as f:
        f.write(b"10.0.0.1 new\n")
    with open(os.path.join(site.src, "added.txt"), "wb") as f:
        f.write(b"n" * 5000)
    done = site.run()
    assert done.returncode == errors.OK, done.stderr
    first, second = site.snapshots()
    one = _regular_inodes(site.in_snapshot(first))
    two = _regular_inodes(site.in_snapshot(second))
    changed = {rel for rel in two if one.get(rel) != two[rel]}
    assert changed == {b"etc/hosts", b"added.txt"}
    hosts_size = os.path.getsize(os.path.join(site.src, "etc", "hosts"))
    assert _record(site, second)["stats"]["transferred_size"] == hosts_size + 5000
    # The first snapshot still holds the old content.
    with open(os.path.join(site.in_snapshot(first), "etc", "hosts"), "rb") as f:
        assert b"10.0.0.1 new" not in f.read()


def test_verdict_line_and_listing(site: Site) -> None:
    os.makedirs(site.src)
    with open(os.path.join(site.src, "f"), "w") as f:
        f.write("x")
    done = site.run()
    assert done.returncode == errors.OK
    [name] = site.snapshots()
    assert f"lab: ok, snapshot web1/{name}" in done.stdout
    listing = site.lab.grabber("--config", site.grabber_config, "list")
    assert listing.returncode == 0
    assert f"web1  {name}  complete" in listing.stdout


def test_cron_mode_is_silent_on_success(site: Site) -> None:
    os.makedirs(site.src)
    site.configure()
    done = site.lab.initiator("-c", site.initiator_config)
    assert done.returncode == errors.OK
    assert done.stdout == "" and done.stderr == ""
    assert len(site.snapshots()) == 1


def test_ambient_capability_from_setpriv(site: Site) -> None:
    """Started unprivileged with CAP_DAC_READ_SEARCH ambient, as systemd's
    AmbientCapabilities= does: root-only files are still backed up."""
    make_rich_tree(site.src)
    site.configure()
    pw = site.lab.initiator_pw()
    setpriv = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups",
               "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--"]  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "HOME": site.lab.path("home-i")}
    done = site.lab.initiator("-c", site.initiator_config, "--now", prefix=setpriv, env=env)
    assert done.returncode == errors.OK, done.stderr
    assert "CAP_DAC_READ_SEARCH is missing" not in done.stderr
    [name] = site.snapshots()
    with open(os.path.join(site.in_snapshot(name), "etc", "shadow"), "rb") as f:
        assert f.read().startswith(b"root:")


def test_door_on_every_address_admits_the_backup_host(site: Site) -> None:
    """listen_address "": one dual-stack socket; the backup host's IPv4
    connect-back arrives as ::ffff:127.0.0.1 and still passes the door's
    check and sshd's from= (which compares the plain IPv4 address)."""
    make_rich_tree(site.src)
    site.configure(listen_address="")
    done = site.run("-v")
    assert done.returncode == errors.OK, done.stderr
    assert "connect-back from 127.0.0.1" in done.stderr
    assert len(site.snapshots()) == 1


def test_without_capability_warns_and_marks_partial(site: Site) -> None:
    make_rich_tree(site.src)
    site.configure()
    pw = site.lab.initiator_pw()
    setpriv = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]
    env = {"PATH": "/usr/bin:/bin", "HOME": site.lab.path("home-i")}
    done = site.lab.initiator("-c", site.initiator_config, "--now", prefix=setpriv, env=env)
    assert "CAP_DAC_READ_SEARCH is missing" in done.stderr
    assert done.returncode == errors.PARTIAL
    [name] = site.snapshots()
    record = _record(site, name)
    assert record["state"] == "partial" and record["rsync_exit"] == 23
    assert not os.path.exists(os.path.join(site.in_snapshot(name), "etc", "shadow"))
    assert os.path.exists(os.path.join(site.in_snapshot(name), "etc", "hosts"))


def test_super_snapshot_matches_source_exactly(super_site: Site) -> None:
    site = super_site
    """Through the capability launcher the receiver runs --super: owners,
    setuid bits, devices, ACLs, xattrs and file capabilities land as they are."""
    make_rich_tree(site.src)
    done = site.run()
    assert done.returncode == errors.OK, done.stderr
    [name] = site.snapshots()
    assert _record(site, name)["mode"] == "super"
    assert differences(site.src, site.in_snapshot(name)) == []
    second = site.run()
    assert second.returncode == errors.OK, second.stderr
    first, again = site.snapshots()
    assert _regular_inodes(site.in_snapshot(first)) == _regular_inodes(site.in_snapshot(again))
    # Restore (README "The repository and restoring"): from a --super
    # snapshot, root copies with rsync or cp and every attribute comes back.
    rsync_restored = os.path.join(site.root, "restored-rsync")
    subprocess.run(["rsync", "-aHAX", "--numeric-ids", site.in_snapshot(again) + "/",
                    rsync_restored + "/"], check=True)  # fmt: skip
    assert differences(site.src, rsync_restored) == []
    cp_restored = os.path.join(site.root, "restored-cp")
    subprocess.run(["cp", "-a", site.in_snapshot(again), cp_restored], check=True)
    assert differences(site.src, cp_restored) == []
