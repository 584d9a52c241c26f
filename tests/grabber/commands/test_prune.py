"""`grabber prune` (commands/prune.py): a dry run says and keeps, a real
run removes what the rules let go."""

from __future__ import annotations

import datetime as dt
import os

from pullsnap import errors
from pullsnap.grabber.store.repository import snapshot_name
from tests.grabber.commands.conftest import N1, N2, snapshot


def _old(repo) -> str:
    name = snapshot_name(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    snapshot(repo, name, {"etc/hosts": b"old\n"})
    return name


def test_a_dry_run_names_what_would_go_and_removes_nothing(repo, grabber, tmp_path) -> None:
    (tmp_path / "grabber.toml").write_text(
        f'repository = "{repo.root}"\nmin_keep = 1\n[policy]\nkeep_within = 0\nkeep_daily = 1\n'
        "keep_weekly = 0\nkeep_monthly = 0\nkeep_yearly = 0\n"
    )
    old = _old(repo)
    code, out, _ = grabber("prune", "--dry-run")
    assert code == errors.OK and old in out and N2 in out
    assert os.path.isdir(repo.tree(old))
    code, out, _ = grabber("prune", "web1")
    assert code == errors.OK
    assert not os.path.exists(repo.tree(old)) and os.path.isdir(repo.tree(N2))
    assert repo.read_record(old) is None


def test_the_default_policy_keeps_recent_snapshots(repo, grabber) -> None:
    code, _, _ = grabber("prune")
    assert code == errors.OK
    assert os.path.isdir(repo.tree(N1)) and os.path.isdir(repo.tree(N2))


def test_a_missing_repository_is_a_usage_error(grabber) -> None:
    code, _, err = grabber("prune")
    assert code == errors.USAGE and "does not exist" in err
