"""Retention on disk (prune.py) on a temporary repository: dry run against a
real prune, trash-then-delete, locks."""

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
from pullsnap.grabber.retention import prune
from pullsnap.grabber.store import repository
from pullsnap.grabber.store.base import open_store
from pullsnap.grabber.store.repository import HostRepo, snapshot_name

# The fault scenarios (a deletion cut short, a run in progress, trees the
# grabber user cannot remove) carry the `faults` marker; the rules do not.

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
    assert prune.prune_host(cfg, open_store(host), NOW, False, said.append)
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
    prune.prune_host(cfg, open_store(host), NOW, True, dry.append)
    predicted = {line.split()[1] for line in dry if " would remove " in line}
    assert {a.name for a in host.attempts()} == before, "a dry run changes nothing"
    prune.prune_host(cfg, open_store(host), NOW, False, lambda line: None)
    after = {a.name for a in host.attempts()}
    assert before - after == predicted
    # Idempotent on disk too.
    again: list[str] = []
    prune.prune_host(cfg, open_store(host), NOW, False, again.append)
    assert not any(" remove " in line for line in again)


@pytest.mark.faults
def test_an_interrupted_deletion_is_finished_by_the_next_prune(tmp_path: Path) -> None:
    cfg = config(str(tmp_path))
    host = HostRepo(cfg.repository, "web1")
    days(host, 4)
    decision, _ = prune.decision_for(cfg, host, NOW)
    with host.try_lock() as locked:
        assert locked
        removed = prune.apply(open_store(host), decision, print)
    # A deletion "killed" after the rename: the trees wait in the trash.
    trash = os.path.join(host.path, repository.TRASH)
    assert sorted(os.listdir(trash)) == sorted(f"{n}.{os.getpid()}" for n in removed)
    assert {a.name for a in host.attempts()}.isdisjoint(removed)
    prune.prune_host(cfg, open_store(host), NOW, False, lambda line: None)
    assert os.listdir(trash) == []


@pytest.mark.faults
def test_a_host_with_a_run_in_progress_is_skipped(tmp_path: Path) -> None:
    cfg = config(str(tmp_path))
    host = HostRepo(cfg.repository, "web1")
    days(host, 6)
    before = host.attempts()
    said: list[str] = []
    with host.lock({"pid": 4242, "since": "2026-11-25T03:00:00Z"}):
        assert not prune.prune_host(cfg, open_store(host), NOW, False, said.append)
    assert said == ["web1: skipped, already running since 2026-11-25T03:00:00Z (pid 4242)"]
    assert host.attempts() == before


@pytest.mark.faults
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
@pytest.mark.faults
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
            f"empties it, or run as root: grabber --config {conf} prune web1"
        )
    finally:
        shutil.rmtree(base)
