"""The btrfs store end to end: each snapshot a read-only subvolume made from
the last one, exact as a fresh copy, sharing what did not change."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess

import pytest

from pullsnap import errors
from pullsnap.grabber.cli import main
from tests.btrfsview import subvolume_flags
from tests.e2e.conftest import Site
from tests.trees import differences, make_rich_tree

pytestmark = [pytest.mark.root, pytest.mark.e2e]


def _record(site: Site, name: str) -> dict:
    with open(os.path.join(site.host_dir(), name + ".json"), encoding="utf-8") as f:
        return json.load(f)


def _restore(snap: str, to: str) -> None:
    subprocess.run(["rsync", "-aHAX", "--numeric-ids", "--modify-window=-1", "--fake-super",
                    "-M--super", snap + "/", to + "/"], check=True)  # fmt: skip


def test_snapshots_are_read_only_subvolumes_and_exact(btrfs_site: Site, capsys) -> None:
    site = btrfs_site
    make_rich_tree(site.src)
    assert site.run().returncode == errors.OK
    # The host changes: a hard-linked group rewritten in place (all three
    # names change), then split (a changed, b and etc/linked-c not:
    # --inplace must not write through the old link), a file added.
    with open(os.path.join(site.src, "linked-a"), "r+b") as f:
        f.write(b"changed all\n")
    assert site.run().returncode == errors.OK
    os.unlink(os.path.join(site.src, "linked-a"))
    with open(os.path.join(site.src, "linked-a"), "wb") as f:
        f.write(b"another content, longer\n")
    with open(os.path.join(site.src, "added"), "wb") as f:
        f.write(b"new\n")
    done = site.run()
    assert done.returncode == errors.OK, done.stderr
    names = site.snapshots()
    assert len(names) == 3
    for name in names:
        assert subvolume_flags(os.path.join(site.host_dir(), name)) == (True, True)
        assert _record(site, name)["state"] == "complete"
    restored = os.path.join(site.root, "restored")
    _restore(site.in_snapshot(names[-1]), restored)
    assert differences(site.src, restored) == []
    # The older snapshot still holds the linked pair as it was.
    old = site.in_snapshot(names[1])
    with open(os.path.join(old, "linked-b"), "rb") as f:
        assert f.read() == b"changed all\n"
    assert not os.path.exists(os.path.join(old, "added"))
    new = site.in_snapshot(names[-1])
    assert os.lstat(os.path.join(new, "linked-a")).st_ino != os.lstat(
        os.path.join(new, "linked-b")).st_ino  # fmt: skip
    assert _record(site, names[-1])["link_dest"] == [names[1]]
    # Every snapshot's manifest matches its tree.
    assert main(["grabber", "--config", site.grabber_config, "verify", "web1"]) == errors.OK
    # The views read the same repository: list, status with its space, the report.
    capsys.readouterr()
    assert main(["grabber", "--config", site.grabber_config, "list", "web1"]) == errors.OK
    listed = capsys.readouterr().out
    assert all(f"web1  {name}  complete" in listed for name in names), listed
    assert main(["grabber", "--config", site.grabber_config, "status", "--json"]) == errors.OK
    status = json.loads(capsys.readouterr().out)
    [web1] = [h for h in status if h["host"] == "web1"]
    assert web1["last_good"] == names[-1] and web1["snapshots"] == 3, web1
    assert web1["used"] > 0 and not web1["stale"], web1
    page = os.path.join(site.root, "report.html")
    assert main(["grabber", "--config", site.grabber_config, "report", "--html", page]) == 0
    with open(page, encoding="utf-8") as f:
        assert names[-1] in f.read()


def test_files_changed_in_place_are_hashed_while_rsync_runs(btrfs_site: Site) -> None:
    """The hasher reads what rsync --inplace writes as it goes (rsync names
    a file once its data is written, shortened ones truncated): every
    changed file is hashed during the run and the manifest is exact."""
    site = btrfs_site
    os.makedirs(site.src)
    big, short = os.path.join(site.src, "big.bin"), os.path.join(site.src, "short.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(8 << 20))
    with open(short, "wb") as f:
        f.write(os.urandom(1 << 20))
    assert site.run().returncode == errors.OK
    with open(big, "r+b") as f:  # a MiB in the middle rewritten
        f.seek(3 << 20)
        f.write(os.urandom(1 << 20))
    with open(short, "r+b") as f:  # shorter: rsync truncates it in place
        f.truncate(300_000)
    done = site.run()
    assert done.returncode == errors.OK, done.stderr
    manifest = _record(site, site.snapshots()[-1])["manifest"]
    assert manifest["hashed"] == 2 and manifest["prehashed"] == 2, manifest
    assert main(["grabber", "--config", site.grabber_config, "verify", "web1"]) == errors.OK


RETAIN_ONE = {"keep_within": 0, "keep_daily": 1, "keep_weekly": 0, "keep_monthly": 0,
              "keep_yearly": 0}  # fmt: skip


def _subvolumes(site: Site) -> list[str]:
    found = []
    for entry in sorted(os.listdir(site.host_dir())):
        path = os.path.join(site.host_dir(), entry)
        if os.path.isdir(path) and not os.path.islink(path):
            found.append(entry)
    return [e for e in found if not e.startswith(".")]


@pytest.mark.parametrize("mode", ["fake-super", "super"])
def test_retention_deletes_read_only_subvolumes(btrfs_site: Site, mode: str) -> None:
    """As the subvolumes' owner on a user_subvol_rm_allowed mount (fake-super,
    no capability), and through the CAP_SYS_ADMIN child (the launcher)."""
    site = btrfs_site
    site.regrab(policy=RETAIN_ONE, min_keep=1)
    make_rich_tree(site.src)
    with site.super_mode() if mode == "super" else contextlib.nullcontext():
        for i in range(3):
            with open(os.path.join(site.src, "counter"), "w") as f:
                f.write(f"{i}\n")
            done = site.run()
            assert done.returncode == errors.OK, done.stderr
    # Each run's retention leaves out the snapshot it just made and keeps
    # one older: the third run removed the first.
    names = site.snapshots()
    assert len(names) == 2 and _subvolumes(site) == names
    assert _record(site, names[-1])["mode"] == mode
    assert len(_record(site, names[-1])["pruned_after"]) == 1
    with open(os.path.join(site.in_snapshot(names[-1]), "counter")) as f:
        assert f.read() == "2\n"


def test_a_source_no_longer_sent_is_not_in_the_next_snapshot(btrfs_site: Site) -> None:
    """The run starts from a copy of the last snapshot: what the host stopped
    sending goes, as it would from a fresh copy."""
    site = btrfs_site
    site.regrab(policy={"suspect_drop": 0})  # far fewer files is what this run means
    make_rich_tree(site.src)
    assert site.run().returncode == errors.OK
    site.configure(sources=[os.path.join(site.src, "etc"), os.path.join(site.src, "home")])
    done = site.run()
    assert done.returncode == errors.OK, done.stderr
    first, second = site.snapshots()
    assert sorted(os.listdir(site.in_snapshot(second))) == ["etc", "home"]
    assert len(os.listdir(site.in_snapshot(first))) > 2
    assert main(["grabber", "--config", site.grabber_config, "verify", "web1"]) == errors.OK
