"""Retention applied by real runs: a grabber clock years ahead or behind
decides as a correct clock would, partial runs record their failing paths
and count as good only if the policy says so."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from pullsnap import errors
from pullsnap.config import load_grabber
from pullsnap.grabber.retention import prune
from pullsnap.grabber.store.repository import HostRepo
from tests.faults.conftest import attempts, fabricate, record
from tests.labfixtures import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.faults]

POLICY = {"keep_within": "1d", "keep_daily": 4, "keep_weekly": 2, "keep_monthly": 0,
          "keep_yearly": 0}  # fmt: skip


@pytest.mark.parametrize("years", [5, -5], ids=["clock-years-ahead", "clock-years-behind"])
def test_a_wrong_clock_expires_no_more_than_a_correct_one(site: Site, years: int) -> None:
    """History made with a correct clock, a run with the grabber's clock
    `years` off: the same as history `years` away from a correct clock."""
    site.regrab(policy=POLICY, min_keep=2)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    newest = now - dt.timedelta(days=365 * years)
    history = [fabricate(site, newest - dt.timedelta(hours=10 * i)) for i in range(60)]
    # What a correct clock decides: its run comes an hour after the newest snapshot.
    correct, _ = prune.decision_for(
        load_grabber(site.grabber_config), HostRepo(site.repo, "web1"),
        newest + dt.timedelta(hours=1),
    )  # fmt: skip
    assert 0 < len(correct.remove) < len(history)
    os.makedirs(site.src)
    with open(os.path.join(site.src, "f"), "w") as f:
        f.write("now\n")
    done = site.run()
    assert done.returncode == errors.OK, done.stderr
    left = {a.name for a in attempts(site)}
    [fresh] = left - set(history)
    assert fresh in site.snapshots()
    assert set(history) - left == set(correct.remove)
    assert record(site, fresh)["pruned_after"] == sorted(correct.remove)


def _run_without_capability(site: Site):
    pw = site.lab.initiator_pw()
    setpriv = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]
    env = {"PATH": "/usr/bin:/bin", "HOME": site.lab.path("home-i")}
    return site.lab.initiator("-c", site.initiator_config, "--now", prefix=setpriv, env=env)


def test_partial_runs_record_failing_paths_and_count_as_the_policy_says(site: Site) -> None:
    rules = {**POLICY, "keep_within": 0, "keep_daily": 1, "keep_weekly": 0}
    site.regrab(policy={**rules, "partial_is_good": False}, min_keep=1)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    history = [fabricate(site, now - dt.timedelta(days=d)) for d in range(10, 5, -1)]
    os.makedirs(os.path.join(site.src, "locked"), mode=0o700)
    for name in ("readable", "secret", "locked/inner"):
        with open(os.path.join(site.src, name), "w") as f:
            f.write(name)
    os.chmod(os.path.join(site.src, "secret"), 0o600)
    site.configure()
    done = _run_without_capability(site)
    assert done.returncode == errors.PARTIAL, done.stderr
    [partial] = [a for a in attempts(site) if a.name not in history]
    r = record(site, partial.name)
    assert r["state"] == "partial" and r["rsync_exit"] == 23
    failed = {entry["path"]: entry["error"] for entry in r["failed_paths"]}
    assert set(failed) == {f"{site.src}/secret", f"{site.src}/locked"}
    assert all("Permission denied (13)" in error for error in failed.values())
    listing = site.lab.grabber("--config", site.grabber_config, "list")
    assert f"web1  {partial.name}  partial" in listing.stdout
    assert "2 unreadable, e.g. " in listing.stdout
    # Not counted as good: retention did not run, nothing was removed.
    assert all(name in {a.name for a in attempts(site)} for name in history)

    # Counted as good (the default), it anchors the policy: an operator's
    # prune (as root) removes the older ones, as its dry run said it would.
    site.regrab(policy=rules, min_keep=1)
    grabber = ("--config", site.grabber_config, "prune")
    dry = site.lab.grabber(*grabber, "--dry-run", "web1")
    assert dry.returncode == 0, dry.stderr
    predicted = [line.split()[1] for line in dry.stdout.splitlines() if " would remove " in line]
    assert predicted == history
    assert f"web1 {partial.name}  keep " in dry.stdout and "daily 1/1" in dry.stdout
    real = site.lab.grabber(*grabber, "web1")
    assert real.returncode == 0, real.stderr
    assert [a.name for a in attempts(site)] == [partial.name]
    # The grabber still owns what root's prune touched: the next run works.
    for made in (".trash", ".lock"):
        assert os.stat(os.path.join(site.host_dir(), made)).st_uid == site.lab.grabber_pw().pw_uid
    assert _run_without_capability(site).returncode == errors.PARTIAL
    assert len(attempts(site)) == 2
