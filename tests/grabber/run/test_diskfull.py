"""A run that filled the disk (run/diskfull.py): its partial tree goes at
once, its record says what was missing, the message says what to do."""

from __future__ import annotations

import os
from pathlib import Path

from pullsnap import errors
from pullsnap.config import GrabberConfig
from pullsnap.grabber.retention.guard import Budget
from pullsnap.grabber.run import diskfull
from pullsnap.grabber.store.repository import HostRepo
from pullsnap.grabber.store.space import Space
from pullsnap.grabber.transfer.pull import PullResult
from tests.grabber.run.test_backup import finishing

NAME = "2026-11-25T021700Z"


def _run(tmp_path: Path, code: int):
    host = HostRepo(str(tmp_path), "web1")
    host.ensure()
    os.makedirs(os.path.join(host.incomplete(NAME), "etc"))
    Path(host.incomplete(NAME), "etc", "big").write_bytes(b"x" * 4096)
    run = finishing(GrabberConfig(repository=str(tmp_path)), host, NAME)
    run.code = code
    return run


def test_the_message_names_what_was_needed_and_what_to_change() -> None:
    text = diskfull.message("web1", NAME, "/srv/pullsnap", 1 << 20, 3 << 20)
    assert text.startswith(f"web1: the repository filled up: snapshot {NAME} needs more than")
    assert "1.0 MiB free in /srv/pullsnap" in text and "received 3.0 MiB" in text
    assert "raise min_free_abs" in text
    assert "received" not in diskfull.message("web1", NAME, "/srv", 0, 0)


def test_another_failure_leaves_the_tree_alone(tmp_path: Path) -> None:
    run = _run(tmp_path, errors.FAILED)
    assert diskfull.after_failure(run).record == {}
    assert os.path.isdir(run.host.incomplete(NAME))
    assert run.out.lines == []


def test_a_full_disk_removes_the_partial_tree_and_records_why(tmp_path: Path) -> None:
    run = _run(tmp_path, errors.NO_SPACE)
    run.result = PullResult(11, received=123)
    found = diskfull.after_failure(run)
    assert not os.path.exists(run.host.incomplete(NAME))
    assert found.record["tree"] == "removed"
    facts = found.record["no_space"]
    assert facts["received"] >= 123 and facts["free"] > 0 and "kept_for" not in facts
    assert found.message == found.record["message"] == run.out.lines[0]
    assert "filled up" in found.message
    assert found.code is None  # the verdict stays NO_SPACE


def test_a_run_the_watch_stopped_says_the_watch_s_reason_and_the_reservation(
    tmp_path: Path,
) -> None:
    run = _run(tmp_path, errors.NO_SPACE)
    run.result = PullResult(20, stopped="web1: stopped: it would take what db1 needs")
    run.budget = Budget(Space(1000, 10), ("db1",))
    found = diskfull.after_failure(run)
    assert found.message == "web1: stopped: it would take what db1 needs"
    assert found.record["no_space"]["kept_for"] == {"hosts": ["db1"], "bytes": 1000,
                                                    "inodes": 10}  # fmt: skip


def test_a_tree_already_gone_is_no_error(tmp_path: Path) -> None:
    run = _run(tmp_path, errors.NO_SPACE)
    os.rename(run.host.incomplete(NAME), str(tmp_path / "elsewhere"))
    found = diskfull.after_failure(run)
    assert found.record["tree"] == "removed" and found.record["no_space"]["received"] >= 0
