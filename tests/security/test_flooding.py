"""Property 6: a backed-up host cannot flood retention.

Runs that make a snapshot are at least min_interval apart (the operator on
the backup host can let one through), and a snapshot that shrank too much
is kept but suspect: not `latest`, not good, not a base."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from pullsnap import errors
from pullsnap.grabber.run.admission import wait_left
from pullsnap.grabber.run.sanity import suspicion
from tests.e2e.conftest import Site

T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def test_wait_left_counts_from_the_last_snapshot() -> None:
    assert wait_left(None, T0, 3600) == 0
    assert wait_left(T0, T0 + dt.timedelta(minutes=10), 3600) == 3000
    assert wait_left(T0, T0 + dt.timedelta(hours=2), 3600) == 0
    assert wait_left(T0, T0 + dt.timedelta(minutes=10), 0) == 0


def test_a_clock_set_back_does_not_block_forever() -> None:
    assert wait_left(T0, T0 - dt.timedelta(days=400), 3600) == 0


def test_suspicion_flags_a_big_drop_in_files_or_bytes() -> None:
    before = {"files": 1000, "total_size": 10_000_000}
    assert suspicion(before, {"files": 990, "total_size": 9_900_000}, 0.5) is None
    files = suspicion(before, {"files": 10, "total_size": 9_900_000}, 0.5)
    assert files is not None and "files fell from 1,000 to 10" in files["reason"]
    size = suspicion(before, {"files": 1000, "total_size": 1000}, 0.5)
    assert size is not None and "bytes fell" in size["reason"]
    assert suspicion(before, {"files": 0, "total_size": 0}, 0) is None  # disabled
    assert suspicion({}, {"files": 0}, 0.5) is None  # nothing to compare with


def _tree(site: Site, files: int = 40) -> None:
    os.makedirs(os.path.join(site.src, "data"), exist_ok=True)
    for i in range(files):
        with open(os.path.join(site.src, "data", f"f{i}"), "w") as f:
            f.write("x" * 1000)


@pytest.mark.root
@pytest.mark.e2e
@pytest.mark.security
def test_runs_closer_than_min_interval_are_refused(site: Site) -> None:
    site.regrab(policy={"min_interval": "1h"})
    _tree(site)
    assert site.run().returncode == errors.OK
    before = site.repo_state()
    again = site.run()
    assert again.returncode == errors.TOO_SOON
    assert "min_interval is 1h00m" in again.stderr
    assert f"grabber --config {site.grabber_config} allow-run web1" in again.stderr
    assert site.repo_state() == before
    allowed = site.lab.grabber("--config", site.grabber_config, "allow-run", "web1")
    assert allowed.returncode == errors.OK, allowed.stderr
    assert site.run().returncode == errors.OK
    assert len(site.snapshots()) == 2
    assert site.run().returncode == errors.TOO_SOON  # the allowance was used once


@pytest.mark.root
@pytest.mark.e2e
@pytest.mark.security
def test_exclude_everything_is_kept_but_suspect(site: Site) -> None:
    _tree(site)
    assert site.run().returncode == errors.OK
    [good] = site.snapshots()
    site.configure(excludes=("data/",))
    done = site.run()
    assert done.returncode == errors.SUSPECT, done.stderr
    assert "marked suspect" in done.stderr
    assert f"grabber --config {site.grabber_config} accept web1" in done.stderr
    assert site.snapshots() == [good]  # not good, not latest
    assert os.readlink(os.path.join(site.host_dir(), "latest")) == good
    names = sorted(n[:-5] for n in os.listdir(site.host_dir()) if n.endswith(".json"))
    suspect = names[-1]
    with open(os.path.join(site.host_dir(), suspect + ".json")) as f:
        assert json.load(f)["suspect"]["previous"] == good
    listing = site.lab.grabber("--config", site.grabber_config, "list")
    assert f"{suspect}  suspect" in listing.stdout
    # The next normal run links against the good snapshot, not the suspect one.
    site.configure()
    later = site.run()
    assert later.returncode == errors.OK, later.stderr
    assert site.snapshots()[0] == good and len(site.snapshots()) == 2
    # An operator who knows the shrink was real accepts it.
    accepted = site.lab.grabber("--config", site.grabber_config, "accept", "web1", suspect)
    assert accepted.returncode == errors.OK, accepted.stderr
    assert suspect in site.snapshots()
    # accept ran as root: the record stays the grabber user's, or its runs could
    # not read it (the snapshot would be "unknown": never good, never removed).
    record = os.stat(os.path.join(site.host_dir(), suspect + ".json"))
    assert (record.st_uid, record.st_gid) == (
        os.stat(site.host_dir()).st_uid,
        os.stat(site.host_dir()).st_gid,
    )
