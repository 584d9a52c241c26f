"""The snapshot repository on a temporary directory (no root needed)."""

from __future__ import annotations

import contextlib
import datetime as dt
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

from pullsnap.errors import LOCKED, Locked, PullsnapError
from pullsnap.grabber.store import repository
from pullsnap.grabber.store.repository import HostRepo, parse_name, snapshot_name
from tests.trees import deep_tree

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


@pytest.fixture
def repo(tmp_path: Path) -> HostRepo:
    r = HostRepo(str(tmp_path / "repo"), HOST)
    r.ensure()
    return r


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


def test_new_name_avoids_clashes(repo: HostRepo) -> None:
    now = dt.datetime(2026, 11, 20, 2, 0, 0, tzinfo=dt.UTC)
    repo.write_record(snapshot_name(now), {"state": "failed"})
    make_tree(repo.incomplete(snapshot_name(now + dt.timedelta(seconds=1))))
    assert repo.new_name(now) == snapshot_name(now + dt.timedelta(seconds=2))


# --- publish and recover ---------------------------------------------------------------------


def test_publish_moves_the_tree_and_latest(repo: HostRepo) -> None:
    make_tree(repo.incomplete(N2), "second")
    repo.write_record(N2, {"state": "complete"})
    repo.publish(N2)
    assert not os.path.exists(repo.incomplete(N2))
    assert Path(repo.tree(N2), "etc", "hostname").read_text() == "second"
    assert latest(repo) == N2

    # An older attempt published later does not pull `latest` back.
    make_tree(repo.incomplete(N1), "first")
    repo.write_record(N1, {"state": "partial"})
    repo.publish(N1)
    assert os.path.isdir(repo.tree(N1))
    assert latest(repo) == N2
    assert [a.name for a in repo.good()] == [N1, N2]


def test_recover_publishes_a_finished_tree_left_incomplete(repo: HostRepo) -> None:
    # The crash came between rsync's success (record written) and the rename.
    good(repo, N1)
    os.symlink(N1, os.path.join(repo.path, "latest"))
    make_tree(repo.incomplete(N2), "finished")
    repo.write_record(N2, {"state": "complete"})
    assert repo.newest_good() is not None and repo.newest_good().name == N1

    done = repo.recover()
    assert any(N2 in line and "published" in line for line in done)
    assert os.path.isdir(repo.tree(N2)) and not os.path.exists(repo.incomplete(N2))
    assert Path(repo.tree(N2), "etc", "hostname").read_text() == "finished"
    assert latest(repo) == N2
    assert repo.recover() == []  # idempotent


def test_recover_marks_a_stale_running_record_interrupted(repo: HostRepo) -> None:
    good(repo, N1)
    make_tree(repo.incomplete(N2))
    repo.write_record(N2, {"state": "running", "pid": 99999})

    assert repo.recover(running_elsewhere=True) == []
    assert repo.read_record(N2)["state"] == "running"

    done = repo.recover()
    assert done == [f"marked {N2} interrupted"]
    record = repo.read_record(N2)
    assert record["state"] == "interrupted"
    assert record["message"]
    assert record["pid"] == 99999  # the rest of the record is kept
    # Not published, but reusable as an extra --link-dest.
    assert not os.path.exists(repo.tree(N2))
    assert repo.reusable_trees() == [repo.incomplete(N2)]
    assert latest(repo) == N1


def test_recover_repairs_a_missing_latest(repo: HostRepo) -> None:
    good(repo, N1)
    good(repo, N2)
    repo.recover()
    assert latest(repo) == N2


def test_reusable_trees_are_newest_first(repo: HostRepo) -> None:
    for name, state in ((N1, "failed"), (N2, "interrupted"), (N3, "running"), (N4, "failed")):
        make_tree(repo.incomplete(name))
        repo.write_record(name, {"state": state})
    assert repo.reusable_trees() == [repo.incomplete(N4), repo.incomplete(N2), repo.incomplete(N1)]


# --- delete ---------------------------------------------------------------------------------------


def test_delete_refuses_the_newest_good(repo: HostRepo) -> None:
    good(repo, N1)
    good(repo, N2)
    make_tree(repo.incomplete(N3))
    repo.write_record(N3, {"state": "failed"})
    with pytest.raises(PullsnapError, match="newest good snapshot"):
        repo.delete(N2)
    assert os.path.isdir(repo.tree(N2))


def test_delete_refuses_a_directory_without_a_record(repo: HostRepo) -> None:
    good(repo, N2)
    make_tree(repo.tree(N1))
    with pytest.raises(PullsnapError, match="does not look like a pullsnap snapshot"):
        repo.delete(N1)
    assert os.path.isdir(repo.tree(N1))


def test_delete_refuses_a_record_for_another_host(repo: HostRepo) -> None:
    good(repo, N2)
    make_tree(repo.tree(N1))
    Path(repo.record_path(N1)).write_text(json.dumps({"state": "complete", "host": "db2"}))
    with pytest.raises(PullsnapError, match="does not look like a pullsnap snapshot"):
        repo.delete(N1)
    assert os.path.isdir(repo.tree(N1))


@pytest.mark.parametrize(
    "name", ["latest", ".lock", "..", "../web1", f"{N1}.incomplete", f"{N1}/etc", "etc"]
)
def test_delete_refuses_names_that_are_not_snapshots(repo: HostRepo, name: str) -> None:
    good(repo, N1)
    good(repo, N2)
    os.symlink(N2, os.path.join(repo.path, "latest"))
    # Even with a record beside it, a wrong name is refused.
    with open(repo.record_path(name), "w") as f:
        json.dump({"host": HOST, "state": "complete"}, f)
    before = sorted(os.listdir(repo.path))
    with pytest.raises(PullsnapError, match="does not look like a pullsnap snapshot"):
        repo.delete(name)
    assert sorted(os.listdir(repo.path)) == before
    assert os.path.isdir(repo.tree(N1))


def test_delete_removes_read_only_trees(repo: HostRepo) -> None:
    good(repo, N1)
    good(repo, N2)
    deep = Path(repo.tree(N1), "ro", "inner")
    deep.mkdir(parents=True)
    (deep / "file").write_text("x")
    (deep / "file").chmod(0o444)
    os.symlink("/", deep / "link-to-root")
    for path in (deep, deep.parent, Path(repo.tree(N1), "etc"), Path(repo.tree(N1))):
        path.chmod(0o555)
    # The interrupted tree of the same attempt goes too.
    make_tree(repo.incomplete(N1))
    Path(repo.incomplete(N1), "etc").chmod(0o555)

    repo.delete(N1)
    assert not os.path.lexists(repo.tree(N1))
    assert not os.path.lexists(repo.incomplete(N1))
    assert not os.path.lexists(repo.record_path(N1))
    assert os.listdir(os.path.join(repo.path, repository.TRASH)) == []
    assert [a.name for a in repo.attempts()] == [N2]
    assert os.path.isdir("/")  # the symlink was removed, not followed


def test_remove_tree_handles_unreadable_directories(tmp_path: Path) -> None:
    top = tmp_path / "t"
    (top / "a" / "b").mkdir(parents=True)
    (top / "a" / "b" / "f").write_text("x")
    (top / "a" / "b").chmod(0o000)
    (top / "a").chmod(0o500)
    repository.remove_tree(str(top))
    assert not top.exists()


def test_empty_trash(repo: HostRepo) -> None:
    trash = Path(repo.path, repository.TRASH)
    (trash / "left.123" / "d").mkdir(parents=True)
    (trash / "left.123" / "d").chmod(0o555)
    repo.empty_trash()
    assert list(trash.iterdir()) == []


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


def test_remove_tree_removes_a_tree_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    """A backed-up host picks its tree's depth (rsync sends about 1024 levels);
    a snapshot that cannot be deleted blocks retention and the space guard."""
    top = tmp_path / "deep"
    deep_tree(top, 1100)
    try:
        repository.remove_tree(str(top))
        assert not os.path.lexists(top)
    finally:
        subprocess.run(["rm", "-rf", str(top)], check=True)


_DEEP_UNDER_A_LOW_LIMIT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
from pullsnap.grabber import cli
from pullsnap.grabber.store import removal
cli.enough_descriptors()
removal.remove_tree(sys.argv[1])
"""


def test_the_grabber_has_descriptors_for_the_deepest_tree(tmp_path: Path) -> None:
    """The walks hold a descriptor per directory level; a soft limit below the
    depth (1024 is the usual one) is raised towards the hard limit first."""
    top = tmp_path / "deep"
    deep_tree(top, 600)
    try:
        done = subprocess.run([sys.executable, "-c", _DEEP_UNDER_A_LOW_LIMIT, str(top)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr[-500:]
        assert not os.path.lexists(top)
    finally:
        subprocess.run(["rm", "-rf", str(top)], check=True)


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
