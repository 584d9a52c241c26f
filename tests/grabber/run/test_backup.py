"""One run's last phases: the verdict, what finish writes and publishes, and
which steps follow (backup.finish, backup.verdict)."""

from __future__ import annotations

import datetime as dt
import errno
import os
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.config import GrabberConfig
from pullsnap.grabber.run import backup
from pullsnap.grabber.run.context import Run
from pullsnap.grabber.store import repository
from pullsnap.grabber.store.base import Target, open_store
from pullsnap.grabber.store.repository import HostRepo, snapshot_name
from pullsnap.grabber.transfer import pull
from tests.grabber.retention.test_prune import NOW, T0, config, days, make


class Out:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, text: str) -> None:
        self.lines.append(text)

    def progress(self, p: object) -> None:
        pass


def finishing(cfg: GrabberConfig, host: HostRepo, name: str) -> Run:
    """A run whose pull into `name`.incomplete just ended (no handoff, no connection)."""
    return Run(cfg=cfg, store=open_store(host), connect=None, handoff=None,  # type: ignore[arg-type]
               fingerprint="", mode="fake-super", held=(), out=Out(), now=lambda: NOW,
               target=Target(name, host.incomplete(name)), record={"state": "running"})  # fmt: skip


def test_the_verdict_tells_bytes_over_the_wire_from_bytes_added() -> None:
    """README "Log lines": `transferred` is what was sent, `added` what the
    snapshot took on disk as the store measured it; a delta-transferred
    change sends less than it adds, a metadata-only one sends nothing."""
    run = finishing(GrabberConfig(), HostRepo("/nonexistent", "web1"), "2026-11-25T021700Z")
    run.state, run.code = "complete", errors.OK
    run.result = pull.PullResult(
        0, stats={"files": 3, "transferred_size": 1000, "bytes_received": 250, "total_size": 5000}
    )
    run.record["added"] = {"bytes": 1 << 20, "inodes": 4}
    verdict = backup.verdict(run)
    assert (verdict["transferred"], verdict["added"], verdict["total"]) == (250, 1 << 20, 5000)
    assert verdict["added_inodes"] == 4
    # Not measured (the walk failed): rsync's figure, no inodes.
    del run.record["added"]
    run.record["stats"] = run.result.stats
    assert (backup.verdict(run)["added"], backup.verdict(run)["added_inodes"]) == (1000, 0)


def _finished_run(tmp_path: Path, exit_code: int, errors_seen: list[str]):
    cfg = config(str(tmp_path), keep_daily=1, keep_weekly=0)
    host = HostRepo(cfg.repository, "web1")
    history = days(host, 4)
    name = snapshot_name(NOW)
    os.makedirs(os.path.join(host.incomplete(name), "etc"))
    Path(host.incomplete(name), "etc", "f").write_text("new")
    run = finishing(cfg, host, name)
    run.result = pull.PullResult(exit_code, errors=errors_seen)
    run.state, run.code, run.message = pull.judge(run.result)
    backup.finish(run)
    return run, host, history


def test_no_retention_after_a_failed_run(tmp_path: Path) -> None:
    run, host, history = _finished_run(tmp_path, 12, ["rsync error: protocol data stream"])
    assert run.code == errors.FAILED
    assert [a.name for a in host.good()] == history
    assert os.path.isdir(host.incomplete(run.name))  # kept for the next run to reuse


def test_retention_after_a_good_run(tmp_path: Path) -> None:
    run, host, history = _finished_run(tmp_path, 0, [])
    assert run.code == errors.OK
    assert [a.name for a in host.good()] == [history[-1], run.name]
    assert run.record["pruned_after"] == history[:-1]
    assert run.record["manifest"]["hashed"] == 1


def test_the_record_says_where_the_run_s_time_went(tmp_path: Path) -> None:
    """ "phases": seconds by phase, written last, for a good run and a failed one."""
    run, host, _ = _finished_run(tmp_path, 0, [])
    phases = host.read_record(run.name)["phases"]
    assert set(phases) == {"check", "publish", "manifest", "prune", "hooks"}
    assert all(isinstance(v, float) and v >= 0 for v in phases.values())
    failed, host, _ = _finished_run(tmp_path / "failed", 12, ["rsync error: protocol"])
    assert set(host.read_record(failed.name)["phases"]) == {"check", "diskfull", "hooks"}


def test_a_full_disk_removes_the_new_tree_and_says_why(tmp_path: Path) -> None:
    full = 'rsync: [receiver] write failed on "x": No space left on device (28)'
    run, host, history = _finished_run(tmp_path, 11, [full])
    assert run.code == errors.NO_SPACE
    assert not os.path.exists(host.incomplete(run.name))
    assert run.message.startswith(f"web1: the repository filled up: snapshot {run.name} needs ")
    assert host.read_record(run.name)["tree"] == "removed"
    assert [a.name for a in host.good()] == history


def test_a_suspect_run_is_never_on_disk_as_complete_and_unmarked(tmp_path: Path) -> None:
    """A crash after the record said "complete" but before it said "suspect"
    would let the next run's recovery publish the emptied snapshot as good."""
    cfg = config(str(tmp_path))
    host = HostRepo(cfg.repository, "web1")
    make(host, T0 - dt.timedelta(days=1), stats={"files": 1000, "total_size": 10**6})
    name = snapshot_name(NOW)
    os.makedirs(host.incomplete(name))
    written: list[dict] = []
    write = host.write_record
    host.write_record = lambda n, r: (written.append(dict(r)), write(n, r))[1]  # type: ignore[method-assign]
    run = finishing(cfg, host, name)
    run.result = pull.PullResult(0, stats={"files": 1, "total_size": 10})
    run.state, run.code, run.message = pull.judge(run.result)
    backup.finish(run)
    assert run.code == errors.SUSPECT
    assert all(r.get("suspect") for r in written if r["state"] in repository.GOOD_STATES)


def test_no_room_for_the_new_tree_is_the_no_space_outcome(tmp_path: Path, monkeypatch) -> None:
    cfg = config(str(tmp_path))
    host = HostRepo(cfg.repository, "web1")
    host.ensure()
    name = snapshot_name(NOW)
    run = finishing(cfg, host, name)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "mkdir", full)
    with pytest.raises(errors.NoSpace, match=r"cannot make .*incomplete: No space left"):
        backup.begin(run)
    record = host.read_record(name)
    assert record is not None and record["state"] == "failed" and "pid" not in record
