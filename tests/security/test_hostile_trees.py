"""A backed-up host chooses the shape of its tree.  One deeper than Python's
recursion limit (rsync sends about 1024 levels) must not break the run after
its snapshot is published (manifest), `grabber verify`, or retention's
deletion of it."""

from __future__ import annotations

import os
import subprocess

import pytest

from pullsnap import errors
from tests.labfixtures import Site
from tests.trees import deep_tree

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.security]

DEPTH = 1010  # with the lab's path: below rsync's own limit, above Python's recursion limit


def test_a_tree_deeper_than_the_recursion_limit_is_kept_verified_and_pruned(site: Site) -> None:
    rules = {"keep_within": 0, "keep_daily": 1, "keep_weekly": 0, "keep_monthly": 0,
             "keep_yearly": 0, "suspect_drop": 0}  # fmt: skip
    site.regrab(min_keep=1, policy=rules)
    bottom = deep_tree(site.src, DEPTH)
    try:
        done = site.run()
        assert done.returncode == errors.OK, done.stderr[-2000:]
        [first] = site.snapshots()
        with open(os.path.join(site.host_dir(), first + ".manifest")) as f:
            assert f'"{site.src.lstrip("/")}/{bottom}"' in f.read()
        verified = site.lab.grabber("--config", site.grabber_config, "verify", "web1")
        assert verified.returncode == errors.OK, verified.stderr[-2000:]
        # keep_daily = 1, min_keep = 1: the third run removes the first.
        for _ in range(2):
            again = site.run()
            assert again.returncode == errors.OK, again.stderr[-2000:]
        assert first not in site.snapshots()
        assert not os.path.lexists(os.path.join(site.host_dir(), first))
        trash = os.path.join(site.host_dir(), ".trash")
        assert not os.path.exists(trash) or os.listdir(trash) == []
    finally:
        # shutil.rmtree (the fixture's cleanup) recurses and would leave it.
        subprocess.run(["rm", "-rf", site.src, site.repo], check=True)
