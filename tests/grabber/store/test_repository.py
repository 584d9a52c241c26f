"""The snapshot repository on a temporary directory (no root needed)."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pullsnap.errors import LOCKED, Locked, NoSpace
from pullsnap.grabber.store import repository
from pullsnap.grabber.store.repository import HostRepo, parse_name, snapshot_name

# --- naming -------------------------------------------------------------------------

_OFFSETS = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
_WHEN = st.datetimes(
    min_value=dt.datetime(1970, 1, 2),
    max_value=dt.datetime(9998, 12, 30),
    timezones=_OFFSETS,
)


@given(when=_WHEN)
def test_snapshot_name_round_trips_to_the_second(when: dt.datetime) -> None:
    name = snapshot_name(when)
    assert ":" not in name
    assert repository.NAME_RE.match(name)
    parsed = parse_name(name)
    assert parsed is not None
    assert parsed.tzinfo is not None and parsed.utcoffset() == dt.timedelta(0)
    assert parsed == when.replace(microsecond=0)
    assert snapshot_name(parsed) == name


@given(a=_WHEN, b=_WHEN)
def test_names_sort_like_the_instants(a: dt.datetime, b: dt.datetime) -> None:
    a, b = a.replace(microsecond=0), b.replace(microsecond=0)
    na, nb = snapshot_name(a), snapshot_name(b)
    assert (na < nb) == (a < b)
    assert (na == nb) == (a == b)


def test_snapshot_name_is_utc() -> None:
    when = dt.datetime(2026, 11, 25, 15, 15, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert snapshot_name(when) == "2026-11-25T141500Z"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "latest",
        "2026-11-25T14:15:00Z",
        "2026-11-25T141500",
        "2026-11-25T141500Z.incomplete",
        "2026-11-25T141500Z.json",
        "2026-13-25T141500Z",
        "2026-02-30T141500Z",
        "2026-11-25T246000Z",
        "../2026-11-25T141500Z",
        "2026-11-25T141500Z\n",
        "2026-11-25T141500Z/",
        "\uff12\uff10\uff12\uff16-11-25T141500Z",  # fullwidth digits
    ],
)
def test_parse_name_refuses_other_names(name: str) -> None:
    assert parse_name(name) is None


# --- helpers ------------------------------------------------------------------------------

HOST = "web1"
N1, N2, N3, N4, N5, N6 = (
    snapshot_name(dt.datetime(2026, 11, day, 2, 0, 0, tzinfo=dt.UTC)) for day in range(20, 26)
)


def make_tree(path: str, content: str = "data") -> None:
    os.makedirs(os.path.join(path, "etc"))
    Path(path, "etc", "hostname").write_text(content)


def good(repo: HostRepo, name: str, state: str = "complete", **extra: object) -> None:
    make_tree(repo.tree(name), name)
    repo.write_record(name, {"state": state, **extra})


def latest(repo: HostRepo) -> str | None:
    try:
        return os.readlink(os.path.join(repo.path, "latest"))
    except FileNotFoundError:
        return None


# --- attempts ----------------------------------------------------------------------------------


def test_attempts_are_classified_from_records_and_trees(repo: HostRepo) -> None:
    good(repo, N1)
    make_tree(repo.incomplete(N2))
    repo.write_record(N2, {"state": "running"})
    make_tree(repo.tree(N3))  # a tree without a record
    repo.write_record(N4, {"state": "failed"})  # a record without a tree
    good(repo, N5, suspect=True)
    good(repo, N6, state="partial")
    # Things that are not attempts.
    os.symlink(N1, os.path.join(repo.path, "latest"))
    Path(repo.path, ".lock").write_text("")
    Path(repo.path, "notes.txt").write_text("x")
    os.mkdir(os.path.join(repo.path, "2026-13-01T000000Z"))

    found = {a.name: a for a in repo.attempts()}
    assert sorted(found) == [N1, N2, N3, N4, N5, N6]
    assert [a.name for a in repo.attempts()] == [N1, N2, N3, N4, N5, N6]

    def shape(name: str) -> tuple[str, bool, bool, bool]:
        a = found[name]
        return a.state, a.has_tree, a.has_incomplete, a.good

    assert shape(N1) == ("complete", True, False, True)
    assert shape(N2) == ("running", False, True, False)
    assert shape(N3) == ("unknown", True, False, False)
    assert shape(N4) == ("failed", False, False, False)
    assert shape(N5) == ("complete", True, False, False)
    assert shape(N6) == ("partial", True, False, True)
    assert found[N1].record["host"] == HOST
    assert found[N1].record["name"] == N1
    assert found[N1].when == dt.datetime(2026, 11, 20, 2, 0, 0, tzinfo=dt.UTC)

    assert [a.name for a in repo.good()] == [N1, N6]
    newest = repo.newest_good()
    assert newest is not None and newest.name == N6


def test_a_symlink_named_like_a_snapshot_is_no_tree(repo: HostRepo, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, repo.tree(N1))
    repo.write_record(N1, {"state": "complete"})
    (attempt,) = repo.attempts()
    assert not attempt.has_tree and not attempt.good
    assert repo.newest_good() is None


def test_unreadable_record_counts_as_unknown(repo: HostRepo) -> None:
    make_tree(repo.tree(N1))
    Path(repo.record_path(N1)).write_text("{not json")
    make_tree(repo.tree(N2))
    Path(repo.record_path(N2)).write_text("[1, 2]")
    assert [(a.state, a.good) for a in repo.attempts()] == [("unknown", False)] * 2


def test_empty_or_missing_repository(tmp_path: Path) -> None:
    r = HostRepo(str(tmp_path / "none"), HOST)
    assert r.attempts() == [] and r.good() == [] and r.newest_good() is None
    assert repository.hosts(str(tmp_path / "none")) == []


def test_hosts_lists_directories_only(repo: HostRepo) -> None:
    root = repo.root
    os.mkdir(os.path.join(root, "db2"))
    os.mkdir(os.path.join(root, ".trash"))
    Path(root, "README").write_text("x")
    assert repository.hosts(root) == ["db2", HOST]


def test_write_record_is_atomic_and_private(repo: HostRepo) -> None:
    repo.write_record(N1, {"state": "running", "pid": 7})
    record = json.loads(Path(repo.record_path(N1)).read_text())
    assert record == {
        "format": repository.RECORD_FORMAT,
        "host": HOST,
        "name": N1,
        "state": "running",
        "pid": 7,
    }
    assert stat.S_IMODE(os.stat(repo.record_path(N1)).st_mode) == 0o600
    assert not os.path.exists(repo.record_path(N1) + ".tmp")


def _full(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_record_without_room_is_no_space(repo: HostRepo, monkeypatch) -> None:
    """No block or no inode for the temporary file: the run's no-space
    outcome (exit 5), not a crash."""
    monkeypatch.setattr(repository.atomicfile, "replace_json", _full)
    with pytest.raises(NoSpace, match=r"cannot write the record of .* out of space or inodes"):
        repo.write_record(N1, {"state": "running"})
    monkeypatch.setattr(repository.os, "symlink", _full)
    with pytest.raises(NoSpace, match="cannot point latest"):
        repo.point_latest(N1)


def test_recent_good_reads_back_from_the_newest(repo: HostRepo) -> None:
    for name in (N1, N2, N3):
        good(repo, name)
    repo.write_record(N4, {"state": "failed"})
    good(repo, "2026-11-29T000000Z", suspect={"reason": "x"})
    assert [a.name for a in repo.recent_good(2)] == [N2, N3]
    assert [a.name for a in repo.recent_good(10)] == [N1, N2, N3]


def test_new_name_avoids_clashes(repo: HostRepo) -> None:
    now = dt.datetime(2026, 11, 20, 2, 0, 0, tzinfo=dt.UTC)
    repo.write_record(snapshot_name(now), {"state": "failed"})
    make_tree(repo.incomplete(snapshot_name(now + dt.timedelta(seconds=1))))
    assert repo.new_name(now) == snapshot_name(now + dt.timedelta(seconds=2))


# --- the lock -----------------------------------------------------------------------------------

_HOLD = """
import os, sys, time
from pullsnap.grabber.store.repository import HostRepo
repo = HostRepo(sys.argv[1], sys.argv[2])
with repo.lock({"pid": os.getpid(), "since": sys.argv[3]}):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_lock_is_refused_while_another_process_holds_it(repo: HostRepo) -> None:
    since = "2026-11-25T14:15:00Z"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, repo.root, HOST, since],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        assert repo.is_locked()
        with pytest.raises(Locked) as info, repo.lock({"pid": os.getpid(), "since": "now"}):
            pytest.fail("the lock was granted twice")
        assert str(info.value) == f"{HOST}: already running since {since} (pid {holder.pid})"
        assert info.value.exit_code == LOCKED
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    # The kernel dropped the killed holder's flock: no stale lock.
    assert holder.returncode == -signal.SIGKILL
    assert not repo.is_locked()
    with repo.lock({"pid": os.getpid(), "since": "later"}):
        assert repo.is_locked()
        content = json.loads(Path(repo.path, repository.LOCK).read_text())
        assert content == {"pid": os.getpid(), "since": "later"}
    assert not repo.is_locked()


def test_lock_in_the_same_process_is_released_on_exit(repo: HostRepo) -> None:
    with repo.lock({"pid": 1, "since": "a"}):
        pass
    with repo.lock({"pid": 2, "since": "b"}):
        pass


def test_a_run_refused_during_a_prune_names_the_prune(repo: HostRepo) -> None:
    """The lock file still names the last run after it ended; a prune holding
    the lock must not let a refused run blame that run (its pid may be reused
    by then, and an operator would kill the wrong process)."""
    with repo.lock({"pid": 4242, "since": "2026-11-24T02:00:00Z"}):
        pass
    with repo.try_lock(
        {"pid": os.getpid(), "since": "2026-11-25T14:15:00Z", "by": "grabber prune"}
    ) as locked:
        assert locked
        with pytest.raises(Locked) as info, repo.lock({"pid": 1, "since": "now"}):
            pytest.fail("the lock was granted twice")
    assert str(info.value) == (
        f"{HOST}: locked by grabber prune since 2026-11-25T14:15:00Z (pid {os.getpid()})"
    )


def test_lock_message_without_a_readable_holder() -> None:
    assert repository._lock_message("web1", b"") == "web1: already running"
    assert repository._lock_message("web1", b'{"pid": 1}') == "web1: already running"


def test_a_planted_fifo_or_link_is_not_read_as_a_record_manifest_or_lock(tmp_path: Path) -> None:
    """What root runs (`grabber status`, `list`, `verify`) reads host files
    only when they are regular files: a FIFO would block it, a link would
    make it read elsewhere."""
    from pullsnap.grabber.integrity import manifest

    host = HostRepo(str(tmp_path), "web1")
    host.ensure()
    name = "2026-11-25T120000Z"
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"state": "complete"}))
    os.mkfifo(host.record_path(name))  # nobody ever writes to it
    os.symlink(outside, host.manifest_path(name))
    lock = os.path.join(host.path, repository.LOCK)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(lock)
    os.mkfifo(lock)
    assert host.read_record(name) is None
    assert manifest.read(host.manifest_path(name)) is None
    assert host.lock_holder() == "web1: already running"
    os.unlink(host.record_path(name))
    os.symlink(outside, host.record_path(name))
    assert host.read_record(name) is None
