"""A full repository filesystem (a small tmpfs): a distinct exit code and a
message naming needed against free space, old snapshots intact byte for
byte, the rule for the in-progress tree, and the guard making room."""

from __future__ import annotations

import filecmp
import os
import shutil

import pytest

from pullsnap import errors
from pullsnap.grabber.store.repository import HostRepo
from pullsnap.units import human_size
from tests.faults.conftest import MIB, attempts, record, tmpfs_repository, write_random
from tests.labfixtures import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.faults]

# Keep everything the time policy allows the guard to take (no bucket, no window).
NO_RULES = {"keep_within": 0, "keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0,
            "keep_yearly": 0}  # fmt: skip


def same_content(copy: str, tree: str) -> list[str]:
    """Regular files whose bytes differ between a saved copy and a snapshot."""
    differ = []
    for dirpath, _, files in os.walk(copy):
        for name in files:
            a = os.path.join(dirpath, name)
            b = os.path.join(tree, os.path.relpath(a, copy))
            if not os.path.isfile(b) or not filecmp.cmp(a, b, shallow=False):
                differ.append(os.path.relpath(a, copy))
    return differ


def test_disk_full_then_the_guard_makes_room(site: Site) -> None:
    os.makedirs(os.path.join(site.src, "etc"))
    with open(os.path.join(site.src, "etc", "hosts"), "w") as f:
        f.write("127.0.0.1 localhost\n")
    copies = []
    with tmpfs_repository(site, "24m"):
        site.regrab(min_free_abs="1M", min_free_avg=0, min_keep=2, policy=NO_RULES)
        site.configure()
        for step, name in enumerate(("a.bin", "b.bin")):
            for old in ("a.bin",) if step else ():
                os.unlink(os.path.join(site.src, old))
            write_random(os.path.join(site.src, name), 8 * MIB)
            done = site.run()
            assert done.returncode == errors.OK, done.stderr
            copies.append(os.path.join(site.root, f"copy{step}"))
            shutil.copytree(site.src, copies[-1], symlinks=True)
        first, second = site.snapshots()

        # 10 MiB more does not fit in what is left.
        write_random(os.path.join(site.src, "c.bin"), 10 * MIB)
        full = site.run()
        assert full.returncode == errors.NO_SPACE, full.stderr
        line = full.stderr.strip().splitlines()[-1]
        assert line.startswith("lab: no-space: web1: the repository filled up: snapshot ")
        assert site.snapshots() == [first, second]
        [failed] = [a for a in attempts(site) if a.name not in (first, second)]
        assert not failed.has_incomplete and not failed.has_tree  # the documented rule
        assert record(site, failed.name)["tree"] == "removed"
        free = record(site, failed.name)["no_space"]["free"]
        assert f"needs more than the {human_size(free)} free in {site.repo} (" in line
        assert free < 10 * MIB
        for copy, name in zip(copies, (first, second), strict=True):
            assert same_content(copy, site.in_snapshot(name)) == []
        verified = site.lab.grabber("--config", site.grabber_config, "verify", "web1")
        assert verified.returncode == 0, verified.stdout + verified.stderr

        # The guard may not go below min_keep: it refuses before pulling anything.
        site.regrab(min_free_abs="20M", min_free_avg=0, min_keep=2, policy=NO_RULES)
        refused = site.run()
        assert refused.returncode == errors.NO_SPACE
        assert "no-space: web1: a run needs 20.0 MiB and " in refused.stderr
        assert "web1 is growing" in refused.stderr and "deleting" not in refused.stderr
        assert site.snapshots() == [first, second]

        # Allowed to take the older snapshot, the guard frees room and the run fits.
        site.regrab(min_free_abs="12M", min_free_avg=0, min_keep=1, policy=NO_RULES)
        retry = site.run()
        assert retry.returncode == errors.OK, retry.stderr
        good = site.snapshots()
        assert good[0] == second and len(good) == 2
        assert record(site, good[1])["pruned_before"] == [f"web1/{first}"]
        assert same_content(site.src, site.in_snapshot(good[1])) == []
        assert not HostRepo(site.repo, "web1").is_locked()
