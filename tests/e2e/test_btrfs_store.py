"""The btrfs store end to end: each snapshot a read-only subvolume made from
the last one, exact as a fresh copy, sharing what did not change."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pullsnap import errors
from pullsnap.grabber.cli import main
from pullsnap.grabber.store import btrfsioctl
from tests.e2e.conftest import Site
from tests.trees import differences, make_rich_tree

pytestmark = [pytest.mark.root, pytest.mark.e2e]


def _record(site: Site, name: str) -> dict:
    with open(os.path.join(site.host_dir(), name + ".json"), encoding="utf-8") as f:
        return json.load(f)


def _subvolume_flags(path: str) -> tuple[bool, bool]:
    """(a subvolume, read-only)."""
    fd = btrfsioctl.open_dir(path)
    try:
        return btrfsioctl.is_subvolume(fd), btrfsioctl.is_readonly(fd)
    finally:
        os.close(fd)


def _restore(snap: str, to: str) -> None:
    subprocess.run(["rsync", "-aHAX", "--numeric-ids", "--modify-window=-1", "--fake-super",
                    "-M--super", snap + "/", to + "/"], check=True)  # fmt: skip


def test_snapshots_are_read_only_subvolumes_and_exact(btrfs_site: Site) -> None:
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
        assert _subvolume_flags(os.path.join(site.host_dir(), name)) == (True, True)
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
