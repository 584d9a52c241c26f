"""A --super snapshot holds root's read-only directories; retention must
still be able to delete it (the grabber uses its held capabilities)."""

from __future__ import annotations

import os

import pytest

from pullsnap import errors
from tests.labfixtures import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.faults]


def test_retention_deletes_a_super_snapshot_with_root_only_directories(super_site: Site) -> None:
    site = super_site
    rules = {"keep_within": 0, "keep_daily": 1, "keep_weekly": 0, "keep_monthly": 0,
             "keep_yearly": 0, "suspect_drop": 0}  # fmt: skip
    site.regrab(min_keep=1, policy=rules)
    locked = os.path.join(site.src, "usr", "share")
    os.makedirs(locked)
    for i in range(3):
        with open(os.path.join(locked, f"doc{i}"), "w") as f:
            f.write("root's\n")
    os.chmod(locked, 0o555)
    sticky = os.path.join(site.src, "tmp")
    os.makedirs(sticky)
    with open(os.path.join(sticky, "someone's"), "w") as f:
        f.write("x")
    os.chown(os.path.join(sticky, "someone's"), 4242, 4242)
    os.chmod(sticky, 0o1777)
    assert site.run().returncode == errors.OK
    [first] = site.snapshots()
    assert os.stat(os.path.join(site.in_snapshot(first), "usr", "share")).st_uid == 0
    # keep_daily = 1, min_keep = 1: each run's retention (which leaves out
    # the snapshot the run just made) keeps one of the older ones, so the
    # third run removes the first, from inside the grabber under its launcher.
    for _ in range(2):
        done = site.run("-v")
        assert done.returncode == errors.OK, done.stderr
    assert first not in site.snapshots()
    assert not os.path.exists(os.path.join(site.host_dir(), first))
    trash = os.path.join(site.host_dir(), ".trash")
    assert not os.path.exists(trash) or os.listdir(trash) == []
