"""The steps after the pull (run/steps.py): what each returns is merged into
the record and the verdict by one writer; a failing step is a warning."""

from __future__ import annotations

import json
from pathlib import Path

from pullsnap import errors
from pullsnap.config import GrabberConfig
from pullsnap.grabber.run import steps
from pullsnap.grabber.run.context import Found, Run
from pullsnap.grabber.store.repository import HostRepo
from tests.grabber.run.test_backup import finishing

NAME = "2026-11-25T021700Z"


def _run(tmp_path: Path) -> Run:
    host = HostRepo(str(tmp_path), "web1")
    host.ensure()
    run = finishing(GrabberConfig(), host, NAME)
    run.code = errors.OK
    return run


def test_findings_reach_the_record_and_the_verdict_in_order(tmp_path: Path) -> None:
    run = _run(tmp_path)
    order: list[str] = []

    def first(r: Run) -> Found:
        order.append("first")
        return Found({"manifest": {"files": 1}})

    def failing(r: Run) -> Found:
        order.append("failing")
        raise errors.RunFailed("no manifest for x: No space left on device")

    def last(r: Run) -> Found:
        order.append("last")
        assert r.record["manifest"] == {"files": 1}  # an earlier step's finding is there
        return Found({"pruned_after": ["a"]}, code=errors.SUSPECT, message="marked")

    steps.each([("manifest", first), ("prune", failing), ("hooks", last)], run)
    assert order == ["first", "failing", "last"]
    assert run.out.lines == ["warning: prune: no manifest for x: No space left on device"]
    assert (run.code, run.message) == (errors.SUSPECT, "marked")
    on_disk = json.loads(Path(run.host.record_path(NAME)).read_text())
    assert on_disk["manifest"] == {"files": 1} and on_disk["pruned_after"] == ["a"]


def test_no_room_for_a_finding_is_the_no_space_outcome(tmp_path: Path, monkeypatch) -> None:
    run = _run(tmp_path)

    def full(name: str, record: object) -> None:
        raise errors.NoSpace("web1: cannot write the record of x: No space left on device")

    monkeypatch.setattr(run.host, "write_record", full)
    steps.each([("prune", lambda r: Found({"pruned_after": ["a"]}))], run)
    assert run.code == errors.NO_SPACE and "No space left on device" in run.message
    assert run.out.lines == ["warning: prune: " + run.message]


def test_a_step_that_finds_nothing_writes_nothing(tmp_path: Path) -> None:
    run = _run(tmp_path)
    steps.each([("hooks", lambda r: Found())], run)
    assert not Path(run.host.record_path(NAME)).exists()
    assert (run.code, run.message) == (errors.OK, "")


def test_the_steps_and_their_order() -> None:
    assert [name for name, _ in steps.after_success()] == ["manifest", "prune", "hooks"]
    assert [name for name, _ in steps.after_failure()] == ["diskfull", "hooks"]
