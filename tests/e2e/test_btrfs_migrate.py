"""`grabber migrate HOST`: from hardlinked trees to btrfs subvolumes with
no full transfer; runs continue from the migrated snapshot, and the old
trees are deleted by retention like any snapshot."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pullsnap import errors
from pullsnap.grabber.cli import main
from tests.btrfsview import is_subvolume
from tests.e2e.conftest import Site
from tests.trees import differences, make_rich_tree

pytestmark = [pytest.mark.root, pytest.mark.e2e]

RETAIN_ONE = {"keep_within": 0, "keep_daily": 1, "keep_weekly": 0, "keep_monthly": 0,
              "keep_yearly": 0}  # fmt: skip


def _record(site: Site, name: str) -> dict:
    with open(os.path.join(site.host_dir(), name + ".json"), encoding="utf-8") as f:
        return json.load(f)


def test_migrate_then_runs_continue_on_btrfs(btrfs_site: Site, capsys) -> None:
    site = btrfs_site
    site.regrab(store="hardlink", policy=RETAIN_ONE, min_keep=1)
    make_rich_tree(site.src)
    for _ in range(2):
        assert site.run().returncode == errors.OK
    old, newest = site.snapshots()
    assert not is_subvolume(os.path.join(site.host_dir(), newest))
    config = site.regrab(store="btrfs", policy=RETAIN_ONE, min_keep=1)
    # Asked for btrfs, the host stays hardlinked until migrated, and check says how.
    assert main(["grabber", "--config", config, "check", "--user", site.lab.grabber_user]) in (
        errors.OK, errors.FAILED)  # fmt: skip
    assert "grabber migrate web1" in capsys.readouterr().out
    assert main(["grabber", "--config", config, "migrate", "web1"]) == errors.OK
    assert "is a subvolume now" in capsys.readouterr().out
    assert is_subvolume(os.path.join(site.host_dir(), newest))
    assert site.snapshots() == [old, newest]
    done = site.run()
    assert done.returncode == errors.OK, done.stderr
    resumed = site.snapshots()[-1]
    record = _record(site, resumed)
    assert record["link_dest"] == [newest]
    assert record["stats"]["transferred_size"] == 0  # nothing travelled again
    assert is_subvolume(os.path.join(site.host_dir(), resumed))
    # Retention removed the oldest, a plain tree, on the btrfs store.
    assert old not in site.snapshots()
    assert not os.path.exists(os.path.join(site.host_dir(), old))
    restored = os.path.join(site.root, "restored")
    subprocess.run(["rsync", "-aHAX", "--numeric-ids", "--modify-window=-1", "--fake-super",
                    "-M--super", site.in_snapshot(resumed) + "/", restored + "/"],
                   check=True)  # fmt: skip
    assert differences(site.src, restored) == []
    assert main(["grabber", "--config", config, "verify", "web1"]) == errors.OK
