"""Suspect snapshots (run/sanity.py): a shrink beyond the limit is kept but
marked, and only `grabber accept` makes it good."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.config import grabber_from_dict
from pullsnap.grabber.run import sanity
from pullsnap.grabber.store.repository import HostRepo, snapshot_name
from pullsnap.grabber.transfer.pull import PullResult
from tests.grabber.run.test_backup import finishing

T0 = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "previous, current, drop, reason",
    [({"files": 100, "total_size": 1000}, {"files": 49, "total_size": 1000}, 0.5,
      "files fell from 100 to 49"),
     ({"files": 100, "total_size": 1000}, {"files": 100, "total_size": 10}, 0.5,
      "bytes fell from 1,000 to 10"),
     ({"files": 10, "total_size": 10}, {}, 0.1,
      "files fell from 10 to 0; bytes fell from 10 to 0")],
)  # fmt: skip
def test_a_drop_beyond_the_limit_is_suspect(previous, current, drop, reason) -> None:
    assert sanity.suspicion(previous, current, drop) == {"reason": reason, "limit": drop}


@pytest.mark.parametrize(
    "previous, current, drop",
    [({"files": 100}, {"files": 50}, 0.5),  # exactly the limit: not beyond it
     ({"files": 100}, {"files": 1}, 0),  # 0 disables
     ({}, {"files": 0}, 0.5),  # nothing to compare with
     ({"files": 10}, {"files": 1000}, 0.5)],  # growth is fine
)  # fmt: skip
def test_what_is_not_suspect(previous, current, drop) -> None:
    assert sanity.suspicion(previous, current, drop) is None


def _host(tmp_path: Path, drop: float = 0.5):
    cfg = grabber_from_dict({"repository": str(tmp_path), "policy": {"suspect_drop": drop}})
    host = HostRepo(cfg.repository, "web1")
    host.ensure()
    return cfg, host


def _good(host: HostRepo, when: dt.datetime, files: int) -> str:
    name = snapshot_name(when)
    Path(host.tree(name)).mkdir()
    host.write_record(name, {"state": "complete", "host": "web1",
                             "stats": {"files": files, "total_size": files}})  # fmt: skip
    return name


def test_check_marks_a_shrunken_run_and_says_how_to_accept(tmp_path: Path) -> None:
    cfg, host = _host(tmp_path)
    previous = _good(host, T0, 1000)
    name = snapshot_name(T0 + dt.timedelta(days=1))
    run = finishing(cfg, host, name)
    run.result = PullResult(0, stats={"files": 10, "total_size": 10})
    found = sanity.check(run)
    assert found.code == errors.SUSPECT
    assert found.record["suspect"]["previous"] == previous
    assert f"grabber accept web1 {name}" in found.message
    assert run.out.lines == [found.message]


def test_check_without_a_previous_good_snapshot_finds_nothing(tmp_path: Path) -> None:
    cfg, host = _host(tmp_path)
    run = finishing(cfg, host, snapshot_name(T0))
    run.result = PullResult(0, stats={"files": 0})
    assert sanity.check(run).code is None and run.out.lines == []


def test_accept_makes_a_suspect_snapshot_good_and_latest(tmp_path: Path) -> None:
    _, host = _host(tmp_path)
    _good(host, T0, 1000)
    name = snapshot_name(T0 + dt.timedelta(days=1))
    Path(host.tree(name)).mkdir()
    host.write_record(name, {"state": "complete", "host": "web1", "suspect": {"reason": "r"}})
    assert host.newest_good().name != name
    now = T0 + dt.timedelta(days=2)
    sanity.accept(host, name, now)
    record = json.loads(Path(host.record_path(name)).read_text())
    assert "suspect" not in record
    assert record["accepted_suspect"]["reason"] == "r"
    assert host.newest_good().name == name
    assert Path(host.path, "latest").resolve().name == name


def test_accept_refuses_a_snapshot_that_is_not_suspect(tmp_path: Path) -> None:
    _, host = _host(tmp_path)
    name = _good(host, T0, 1)
    with pytest.raises(errors.UsageError, match=f"web1/{name} is not a suspect snapshot"):
        sanity.accept(host, name, T0)
    with pytest.raises(errors.UsageError, match="not a suspect"):
        sanity.accept(host, "2020-01-01T000000Z", T0)
