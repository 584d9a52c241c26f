"""`grabber list`, `allow-run` and `accept` (commands/runs.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.grabber.run import admission
from tests.grabber.commands.conftest import N1, N2


def test_list_shows_each_snapshot_of_each_host(repo, grabber) -> None:
    code, out, _ = grabber("list")
    assert code == errors.OK
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["HOST", "SNAPSHOT", "STATE"]
    assert [line.split()[:3] for line in lines[1:]] == [["web1", N1, "complete"],
                                                        ["web1", N2, "complete"]]  # fmt: skip
    assert grabber("list", "db1")[1] == f"no snapshots in {repo.root}\n"


def test_allow_run_leaves_the_mark_the_next_run_reads(repo, grabber) -> None:
    code, out, _ = grabber("allow-run", "web1")
    assert code == errors.OK and out == "grabber: the next run of web1 may start now\n"
    assert os.path.exists(os.path.join(repo.path, admission.ALLOW_RUN))


def test_allow_run_of_an_unknown_host_says_how_to_find_one(repo, grabber, tmp_path, capsys) -> None:
    code, _, err = grabber("allow-run", "db1")
    assert code == errors.USAGE
    listing = f"grabber --config {tmp_path / 'grabber.toml'} list"
    assert err == f"grabber: no host 'db1' in {repo.root} (see: {listing})\n"
    with pytest.raises(SystemExit) as stop:  # a name that cannot be a host: usage
        grabber("allow-run", "../etc")
    assert stop.value.code == errors.USAGE
    assert "host name '../etc' is not allowed" in capsys.readouterr().err


def test_accept_makes_a_suspect_snapshot_good(repo, grabber) -> None:
    record = repo.read_record(N2)
    repo.write_record(N2, {**record, "suspect": {"reason": "files fell"}})
    code, out, _ = grabber("accept", "web1", N2)
    assert code == errors.OK and out == f"grabber: web1/{N2} now counts as good\n"
    assert "accepted_suspect" in repo.read_record(N2)
    code, _, err = grabber("accept", "web1", N1)
    assert code == errors.USAGE and "is not a suspect snapshot" in err


def test_a_missing_repository_is_named_with_the_setting(tmp_path: Path, grabber) -> None:
    code, _, err = grabber("list")
    assert code == errors.USAGE and "does not exist: check `repository`" in err
