"""What one run knows (run/context.py): its derived facts."""

from __future__ import annotations

import dataclasses
import time

import pytest

from pullsnap import errors
from pullsnap.config import GrabberConfig
from pullsnap.grabber.run.context import Found
from pullsnap.grabber.store.base import Target
from pullsnap.grabber.store.repository import HostRepo
from tests.grabber.run.test_backup import finishing

NAME = "2026-11-25T021700Z"


def test_a_run_names_its_host_and_target() -> None:
    host = HostRepo("/srv/pullsnap", "web1")
    run = finishing(GrabberConfig(), host, NAME)
    assert run.host is run.store.host and run.host.host == "web1"
    assert run.name == NAME
    run.target = None
    assert run.name == ""


@pytest.mark.parametrize(
    "state, made", [("complete", True), ("partial", True), ("failed", False), ("", False),
                    ("suspect", False)],
)  # fmt: skip
def test_only_complete_and_partial_runs_made_a_snapshot(state: str, made: bool) -> None:
    run = finishing(GrabberConfig(), HostRepo("/srv", "web1"), NAME)
    run.state = state
    assert run.made_snapshot is made


def test_a_new_run_starts_failed_with_empty_findings() -> None:
    run = finishing(GrabberConfig(), HostRepo("/srv", "web1"), NAME)
    fresh = dataclasses.replace(run, record={}, target=Target(NAME, "/x"))
    assert fresh.code == errors.FAILED and fresh.prehashed == {} and fresh.base_manifests is None
    assert fresh.budget.hosts == () and fresh.result is None


def test_found_is_immutable_and_empty_by_default() -> None:
    found = Found()
    assert (dict(found.record), found.code, found.message) == ({}, None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.code = 1  # type: ignore[misc]


def test_timed_adds_up_a_phase_even_when_it_fails() -> None:
    run = finishing(GrabberConfig(), HostRepo("/srv", "web1"), NAME)
    with run.timed("rsync"):
        time.sleep(0.01)
    first = run.phases["rsync"]
    assert first >= 0.01
    with pytest.raises(RuntimeError), run.timed("rsync"):
        raise RuntimeError("rsync died")
    assert run.phases["rsync"] >= first and set(run.phases) == {"rsync"}
