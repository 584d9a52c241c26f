"""What `grabber restore` copies from where (restore/copy.py, prepare): the
snapshot, its mode, PATH inside it, without following its symlinks."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.grabber.restore import copy
from pullsnap.grabber.store.repository import HostRepo, snapshot_name

NAME = snapshot_name(dt.datetime(2026, 11, 25, 2, 17, tzinfo=dt.UTC))


def _host(tmp_path: Path, mode: str = "fake-super") -> HostRepo:
    host = HostRepo(str(tmp_path / "repo"), "web1")
    host.ensure()
    Path(host.tree(NAME), "home", "alice").mkdir(parents=True)
    Path(host.tree(NAME), "home", "alice", "notes").write_text("x\n")
    os.symlink("/etc", Path(host.tree(NAME), "etc"))  # the host's, not ours
    host.write_record(NAME, {"state": "complete", "mode": mode})
    host.point_latest(NAME)
    return host


def _request(host: HostRepo, path: str, **kw) -> copy.Request:
    return copy.Request(host=host, snapshot="latest", path=path, target="/restore/alice",
                        to_host="root@web1", **kw)  # fmt: skip


def test_a_directory_is_copied_as_its_contents_with_the_snapshots_mode(tmp_path: Path) -> None:
    host = _host(tmp_path)
    plan, name, in_snapshot, shown = copy.prepare(_request(host, "/home/alice"), False)
    assert (name, in_snapshot, shown) == (NAME, b"home/alice", "/home/alice")
    assert plan.source == host.tree(NAME) + "/home/alice/" and plan.target == "/restore/alice/"
    assert plan.mode == "fake-super"


def test_a_path_through_the_snapshots_symlink_is_not_in_it(tmp_path: Path) -> None:
    host = _host(tmp_path)
    with pytest.raises(errors.UsageError, match="/etc/passwd is not in web1/") as refused:
        copy.prepare(_request(host, "/etc/passwd", config="/srv/g.toml"), False)
    assert "(see: grabber --config /srv/g.toml versions web1 /etc/passwd)" in str(refused.value)


def test_a_record_without_a_mode_is_refused(tmp_path: Path) -> None:
    host = _host(tmp_path, mode="")
    with pytest.raises(errors.UsageError, match="names no mode"):
        copy.prepare(_request(host, "/home/alice"), False)
