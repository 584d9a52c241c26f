"""`grabber status`'s reading side (views/status.py) on a repository made
here: which hosts, each host's summary, the repository's room, the
Prometheus textfile."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.config import grabber_from_dict
from pullsnap.grabber.store.repository import HostRepo, snapshot_name
from pullsnap.grabber.views import status

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def _config(root: Path, **top):
    return grabber_from_dict({"repository": str(root), "policy": {"max_age": "36h"},
                              "hosts": {"db1": {"max_age": "1h"}}, **top})  # fmt: skip


def _good(root: Path, host: str, when: dt.datetime) -> str:
    repo = HostRepo(str(root), host)
    repo.ensure()
    name = snapshot_name(when)
    Path(repo.tree(name)).mkdir()
    Path(repo.tree(name), "f").write_bytes(b"x" * 100)
    repo.write_record(name, {"state": "complete", "host": host, "started": name,
                             "finished": name})  # fmt: skip
    return name


def test_the_hosts_are_those_on_disk_and_those_configured(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    _good(tmp_path, "web1", NOW)
    assert status.host_names(cfg, ()) == ["db1", "web1"]
    assert status.host_names(cfg, ("web1", "zz", "web1")) == ["web1", "zz"]


def test_each_host_is_judged_by_its_own_max_age(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    _good(tmp_path, "web1", NOW - dt.timedelta(hours=3))
    _good(tmp_path, "db1", NOW - dt.timedelta(hours=3))
    got = {s.host: s for s in status.collect(cfg, now=NOW)}
    assert not got["web1"].stale and got["db1"].stale
    assert got["web1"].snapshots == 1 and got["web1"].used is not None and got["web1"].used > 0
    assert got["web1"].verify is None
    # A max_age from the command line overrides every host's.
    assert all(s.stale for s in status.collect(cfg, now=NOW, max_age=60))
    assert status.collect(cfg, ("web1",), now=NOW, with_usage=False)[0].used is None


def test_a_configured_host_without_snapshots_is_stale(tmp_path: Path) -> None:
    [db1] = status.collect(_config(tmp_path), ("db1",), now=NOW)
    assert db1.stale and db1.last_good is None and db1.snapshots == 0


def test_the_verify_outcome_is_read(tmp_path: Path) -> None:
    _good(tmp_path, "web1", NOW)
    Path(tmp_path, "web1", ".verify.json").write_text(json.dumps(
        {"time": "2026-11-25T11:00:00Z", "snapshot": "all", "result": "mismatch",
         "checked": 3, "mismatches": ["x/y"], "sample": 1.0}))  # fmt: skip
    [web1] = status.collect(_config(tmp_path), ("web1",), now=NOW)
    assert web1.verify is not None and web1.verify.result == "mismatch"


def test_a_missing_repository_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(errors.UsageError, match="does not exist"):
        status.collect(_config(tmp_path / "none"))


def test_the_room_is_assessed_against_the_thresholds(tmp_path: Path) -> None:
    roomy = status.room(_config(tmp_path, free_warn="0", free_crit="0", free_inodes_warn=0,
                                free_inodes_crit=0))  # fmt: skip
    assert roomy is not None and roomy.level == "ok" and roomy.problems == ()
    tight = status.room(_config(tmp_path, free_warn="100%", free_crit="0"))
    assert tight is not None and tight.level == "warning" and "below 100%" in tight.problems[0]
    assert status.room(_config(tmp_path / "none")) is None
    assert status.filesystem_of(str(tmp_path / "none")) is None


def test_prometheus_textfile_is_replaced_or_a_warning_given(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    _good(tmp_path, "web1", NOW)
    statuses = status.collect(cfg, ("web1",), now=NOW)
    target = tmp_path / "pullsnap.prom"
    warned: list[str] = []
    assert status.write_prometheus(cfg, statuses, NOW, str(target), warned.append)
    text = target.read_text()
    assert 'host="web1"' in text and warned == []
    assert target.stat().st_mode & 0o777 == 0o644
    missing = tmp_path / "no-such-dir" / "pullsnap.prom"
    assert not status.write_prometheus(cfg, statuses, NOW, str(missing), warned.append)
    assert len(warned) == 1 and f"cannot write {missing}" in warned[0]
