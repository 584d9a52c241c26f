"""The run's record (run/record.py): what prepare and finish put into it, and
the one writer that merges and writes it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pullsnap.config import GrabberConfig
from pullsnap.grabber.run import record
from pullsnap.grabber.run.context import Run
from pullsnap.grabber.store.base import Target, open_store
from pullsnap.grabber.store.repository import HostRepo
from pullsnap.grabber.transfer.pull import ConnectBack, PullResult
from pullsnap.handoff import Handoff

NAME = "2026-11-25T021700Z"


def _run(tmp_path: Path) -> Run:
    host = HostRepo(str(tmp_path), "web1")
    host.ensure()
    connect = ConnectBack("pullsnap", "192.0.2.7", 2222, "/k", "/p", "/a", 30)
    h = Handoff(client_key="", host_key="", port=2222, user="pullsnap", paths=("/etc",),
                excludes=("*.tmp",))  # fmt: skip
    base = host.tree("2026-11-24T021700Z")
    return Run(cfg=GrabberConfig(), store=open_store(host), connect=connect, handoff=h,
               fingerprint="SHA256:x", mode="fake-super", held=(), out=None,  # type: ignore[arg-type]
               now=lambda: None, target=Target(NAME, host.incomplete(NAME), (base,)))  # type: ignore[arg-type]  # fmt: skip


def test_a_running_record_names_what_the_run_builds_on(tmp_path: Path) -> None:
    run = _run(tmp_path)
    fields = record.running(run, "2026-11-25T02:17:00Z", ["web2/2026-01-01T000000Z"])
    assert fields["state"] == "running" and fields["pid"] == os.getpid()
    assert fields["link_dest"] == ["2026-11-24T021700Z"]  # what retention keeps meanwhile
    assert fields["initiator"] == {"address": "192.0.2.7", "port": 2222, "user": "pullsnap"}
    assert (fields["paths"], fields["excludes"]) == (["/etc"], ["*.tmp"])
    assert fields["pruned_before"] == ["web2/2026-01-01T000000Z"]


def test_the_verdict_keeps_the_last_errors_and_the_unreadable_files() -> None:
    result = PullResult(
        23, stats={"files": 9}, errors=[f"e{i}" for i in range(30)], seconds=1.23456,
        failed_paths=[{"path": "/etc/shadow", "error": "denied"}], failed_paths_total=1,
    )  # fmt: skip
    fields = record.verdict("partial", "some files could not be read", result, "END")
    assert fields["errors"] == [f"e{i}" for i in range(10, 30)]
    assert (fields["seconds"], fields["rsync_exit"], fields["end"]) == (1.235, 23, "END")
    assert fields["failed_paths_total"] == 1
    assert "failed_paths" not in record.verdict("complete", "", PullResult(0), "END")


def test_the_one_writer_merges_drops_and_writes_whole(tmp_path: Path) -> None:
    run = _run(tmp_path)
    record.write(run, {"state": "running", "pid": 7})
    record.write(run, {"state": "complete", "manifest": {"files": 3}}, drop=("pid",))
    on_disk = json.loads(Path(run.host.record_path(NAME)).read_text())
    assert on_disk == {"format": 1, "host": "web1", "name": NAME, "state": "complete",
                       "manifest": {"files": 3}}  # fmt: skip
    assert run.record == {"state": "complete", "manifest": {"files": 3}}
