"""Retention on disk (prune.py) on a temporary repository: dry run against a
real prune, trash-then-delete, locks, and the free-space guard's order."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pullsnap import errors
from pullsnap.config import grabber_from_dict
from pullsnap.grabber.cli import main as grabber_main
from pullsnap.grabber.retention import prune, rules
from pullsnap.grabber.store import repository
from pullsnap.grabber.store.repository import HostRepo, snapshot_name

pytestmark = pytest.mark.faults  # the snapshot lifecycle under faults (issue 5)

T0 = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(hours=1)


def config(root: str, **policy):
    rules = {"keep_within": 0, "keep_daily": 2, "keep_weekly": 1, "keep_monthly": 0,
             "keep_yearly": 0, **policy}  # fmt: skip
    return grabber_from_dict({"repository": root, "min_keep": 1, "policy": rules})


def make(host: HostRepo, when: dt.datetime, state: str = "complete", tree: bool = True,
         incomplete: bool = False, **record) -> str:  # fmt: skip
    host.ensure()
    name = snapshot_name(when)
    if tree:
        os.makedirs(os.path.join(host.tree(name), "etc"))
        Path(host.tree(name), "etc", "f").write_text(name)
    if incomplete:
        os.makedirs(host.incomplete(name))
    host.write_record(name, {"state": state, **record})
    return name


def days(host: HostRepo, count: int) -> list[str]:
    return [make(host, T0 - dt.timedelta(days=i)) for i in range(count)][::-1]


def test_prune_keeps_with_reasons_and_removes_the_rest(tmp_path: Path) -> None:
    cfg = config(str(tmp_path))
    host = HostRepo(cfg.repository, "web1")
    names = days(host, 20)
    said: list[str] = []
    assert prune.prune_host(cfg, host, NOW, False, said.append)
    kept = [a.name for a in host.attempts()]
    # Wednesday the 25th: daily keeps the 25th and 24th; weekly's first week
    # is used up by them, so it keeps the newest of the week before (the 22nd).
    assert kept == [names[-4], names[-2], names[-1]]
    assert any(line.endswith("daily 1/2; newest good; min_keep 1") for line in said)
    assert sum(" remove " in line for line in said) == 17
    assert os.listdir(os.path.join(host.path, repository.TRASH)) == []
    for name in set(names) - set(kept):
        assert not os.path.exists(host.record_path(name))


@st.composite
def histories(draw) -> list[tuple[int, str]]:
    hours = draw(st.lists(st.integers(0, 120 * 24), min_size=1, max_size=12, unique=True))
    states = st.sampled_from(["complete", "complete", "partial", "failed", "suspect"])
    return [(h, draw(states)) for h in hours]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=histories(), daily=st.integers(0, 4), weekly=st.integers(0, 3))
def test_dry_run_predicts_exactly_what_prune_removes(
    tmp_path_factory: pytest.TempPathFactory, history, daily: int, weekly: int
) -> None:
    root = str(tmp_path_factory.mktemp("repo"))
    cfg = config(root, keep_daily=daily, keep_weekly=weekly, keep_within=3600)
    host = HostRepo(root, "web1")
    for hours, state in history:
        suspect = {"suspect": {"reason": "x"}} if state == "suspect" else {}
        real = "complete" if state == "suspect" else state
        make(host, T0 - dt.timedelta(hours=hours), real, tree=real != "failed", **suspect)
    before = {a.name for a in host.attempts()}
    dry: list[str] = []
    prune.prune_host(cfg, host, NOW, True, dry.append)
    predicted = {line.split()[1] for line in dry if " would remove " in line}
    assert {a.name for a in host.attempts()} == before, "a dry run changes nothing"
    prune.prune_host(cfg, host, NOW, False, lambda line: None)
    after = {a.name for a in host.attempts()}
    assert before - after == predicted
    # Idempotent on disk too.
    again: list[str] = []
    prune.prune_host(cfg, host, NOW, False, again.append)
    assert not any(" remove " in line for line in again)


def test_an_interrupted_deletion_is_finished_by_the_next_prune(tmp_path: Path) -> None:
    cfg = config(str(tmp_path))
    host = HostRepo(cfg.repository, "web1")
    days(host, 4)
    decision, _ = prune.decision_for(cfg, host, NOW)
    with host.try_lock() as locked:
        assert locked
        removed = prune.apply(host, decision, print)
    # A deletion "killed" after the rename: the trees wait in the trash.
    trash = os.path.join(host.path, repository.TRASH)
    assert sorted(os.listdir(trash)) == sorted(f"{n}.{os.getpid()}" for n in removed)
    assert {a.name for a in host.attempts()}.isdisjoint(removed)
    prune.prune_host(cfg, host, NOW, False, lambda line: None)
    assert os.listdir(trash) == []


def test_a_host_with_a_run_in_progress_is_skipped(tmp_path: Path) -> None:
    cfg = config(str(tmp_path))
    host = HostRepo(cfg.repository, "web1")
    days(host, 6)
    before = host.attempts()
    said: list[str] = []
    with host.lock({"pid": 4242, "since": "2026-11-25T03:00:00Z"}):
        assert not prune.prune_host(cfg, host, NOW, False, said.append)
    assert said == ["web1: skipped, already running since 2026-11-25T03:00:00Z (pid 4242)"]
    assert host.attempts() == before


def test_the_base_of_a_running_backup_is_never_removed(tmp_path: Path) -> None:
    cfg = config(str(tmp_path), keep_daily=1, keep_weekly=0)
    host = HostRepo(cfg.repository, "web1")
    names = days(host, 3)
    make(host, NOW, state="running", tree=False, incomplete=True, link_dest=[names[0]])
    decision, _ = prune.decision_for(cfg, host, NOW)
    assert decision.keep[names[0]][0].startswith("link-dest of the running")
    assert list(decision.remove) == [names[1]]


def test_grabber_prune_command(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    conf = tmp_path / "grabber.toml"
    conf.write_text(
        f'repository = "{root}"\nmin_keep = 1\n[policy]\nkeep_within = 0\nkeep_daily = 1\n'
        "keep_weekly = 0\nkeep_monthly = 0\nkeep_yearly = 0\n"
    )
    host = HostRepo(str(root), "web1")
    now = dt.datetime.now(dt.UTC)
    names = [make(host, now - dt.timedelta(days=i)) for i in (3, 2, 1)]
    argv = ["grabber", "--config", str(conf), "prune"]
    done = subprocess.run(
        [sys.executable, "-m", "pullsnap.grabber.cli", *argv[1:], "--dry-run", "web1"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"web1 {names[0]}  would remove  not kept by any rule" in done.stdout
    assert f"web1 {names[2]}  keep          daily 1/1; newest good; min_keep 1" in done.stdout
    assert grabber_main([*argv, "web1"]) == errors.OK
    assert [a.name for a in host.attempts()] == [names[2]]
    assert grabber_main([*argv, "web9"]) == errors.USAGE


@pytest.mark.root
def test_prune_as_the_grabber_user_leaves_root_trees_to_the_trash_and_says_so() -> None:
    """A --super snapshot holds root's directories: without the launcher's
    capabilities their files cannot be unlinked.  The snapshot still goes (to
    the trash, which a run through the launcher empties); one warning line."""
    import shutil
    import tempfile

    base = tempfile.mkdtemp(prefix="pullsnap-prune-")
    try:
        os.chmod(base, 0o755)
        nobody = (65534, 65534)
        conf = Path(base, "grabber.toml")
        conf.write_text(
            f'repository = "{base}/repo"\nmin_keep = 1\n[policy]\nkeep_within = 0\n'
            "keep_daily = 1\nkeep_weekly = 0\nkeep_monthly = 0\nkeep_yearly = 0\n"
        )
        host = HostRepo(f"{base}/repo", "web1")
        now = dt.datetime.now(dt.UTC)
        names = [make(host, now - dt.timedelta(days=i)) for i in (2, 1)]
        subprocess.run(["chown", "-R", f"{nobody[0]}:{nobody[1]}", f"{base}/repo"], check=True)
        os.makedirs(os.path.join(host.tree(names[0]), "srv", "data"))  # root's, 0755
        Path(host.tree(names[0]), "srv", "data", "f").write_text("x")
        done = subprocess.run(
            ["setpriv", f"--reuid={nobody[0]}", f"--regid={nobody[1]}", "--clear-groups",
             sys.executable, "-m", "pullsnap.grabber.cli", "--config", str(conf), "prune"],
            capture_output=True, text=True, check=False, cwd=os.getcwd(),
        )  # fmt: skip
        assert done.returncode == errors.OK, done.stderr
        assert [a.name for a in host.attempts()] == [names[1]]
        assert done.stderr == ""
        assert done.stdout.strip().splitlines()[-1] == (
            "warning: web1: the trash is not empty (Permission denied): the next backup of web1 "
            "empties it, or run grabber prune as root"
        )
    finally:
        shutil.rmtree(base)


# --- the free-space guard's order ---------------------------------------------------------------


def test_guard_takes_what_the_policy_values_least_first(tmp_path: Path) -> None:
    cfg = config(str(tmp_path), keep_daily=2, keep_weekly=2)
    one, two = HostRepo(cfg.repository, "web1"), HostRepo(cfg.repository, "web2")
    a = days(one, 30)
    b = days(two, 3)
    order = []
    skip: set[str] = set()
    while (victim := prune.guard_victim(cfg, NOW, skip)) is not None:
        decision, _ = prune.decision_for(cfg, HostRepo(cfg.repository, victim.host), NOW)
        order.append((victim.host, victim.name, decision.guard_tier(victim.name)))
        assert prune.delete_for_space(cfg, one, victim, NOW)
    tiers = [tier for _, _, tier in order]
    assert tiers == sorted(tiers), "never a more valued snapshot before a less valued one"
    assert tiers[0] == rules.GUARD_TIERS["remove"]
    # The newest good (min_keep 1) stays on each host.
    assert [x.name for x in one.attempts()] == [a[-1]]
    assert [x.name for x in two.attempts()] == [b[-1]]


def test_guard_leaves_a_host_with_a_run_in_progress_alone(tmp_path: Path) -> None:
    cfg = config(str(tmp_path), keep_daily=0, keep_weekly=0)
    mine, busy = HostRepo(cfg.repository, "web1"), HostRepo(cfg.repository, "web2")
    days(mine, 2)
    theirs = days(busy, 5)
    with busy.lock({"pid": 1, "since": "x"}):
        victim = prune.guard_victim(cfg, NOW, set())
        assert victim is not None and victim.host == "web2"  # more snapshots
        assert not prune.delete_for_space(cfg, mine, victim, NOW)
        assert prune.guard_victim(cfg, NOW, {"web2"}).host == "web1"
    assert [a.name for a in busy.attempts()] == theirs


# --- when retention runs ----------------------------------------------------------------------


class Out:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, text: str) -> None:
        self.lines.append(text)

    def progress(self, p: object) -> None:
        pass


def _finished_run(tmp_path: Path, exit_code: int, errors_seen: list[str]):
    from pullsnap.grabber.run import backup
    from pullsnap.grabber.transfer import pull

    cfg = config(str(tmp_path), keep_daily=1, keep_weekly=0)
    host = HostRepo(cfg.repository, "web1")
    history = days(host, 4)
    name = snapshot_name(NOW)
    os.makedirs(os.path.join(host.incomplete(name), "etc"))
    Path(host.incomplete(name), "etc", "f").write_text("new")
    run = backup.Run(cfg=cfg, host=host, connect=None, handoff=None, fingerprint="",
                     mode="fake-super", held=(), out=Out(), now=lambda: NOW, name=name,
                     record={"state": "running"})  # fmt: skip
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
    from pullsnap.grabber.run import backup
    from pullsnap.grabber.transfer import pull

    cfg = config(str(tmp_path))
    host = HostRepo(cfg.repository, "web1")
    make(host, T0 - dt.timedelta(days=1), stats={"files": 1000, "total_size": 10**6})
    name = snapshot_name(NOW)
    os.makedirs(host.incomplete(name))
    written: list[dict] = []
    write = host.write_record
    host.write_record = lambda n, r: (written.append(dict(r)), write(n, r))[1]  # type: ignore[method-assign]
    run = backup.Run(cfg=cfg, host=host, connect=None, handoff=None, fingerprint="",
                     mode="fake-super", held=(), out=Out(), now=lambda: NOW, name=name,
                     record={"state": "running"})  # fmt: skip
    run.result = pull.PullResult(0, stats={"files": 1, "total_size": 10})
    run.state, run.code, run.message = pull.judge(run.result)
    backup.finish(run)
    assert run.code == errors.SUSPECT
    assert all(r.get("suspect") for r in written if r["state"] in repository.GOOD_STATES)


def test_ranked_victims_lowest_tier_first_then_the_fullest_host() -> None:
    from pullsnap.grabber.retention import guard

    ranked = {"a": [(2, "n1"), (0, "n5")], "b": [(0, "n2"), (0, "n3")], "c": [(1, "n0")]}
    good = {"a": 5, "b": 9, "c": 20}
    assert guard.next_ranked_victim(ranked, good) == guard.Candidate("b", "n2")
    del ranked["b"]
    assert guard.next_ranked_victim(ranked, good) == guard.Candidate("a", "n5")
    assert guard.next_ranked_victim({"a": []}, good) is None
