"""`grabber versions`, `diff` and `du` (commands/restore.py)."""

from __future__ import annotations

import json

import pytest

from pullsnap import errors
from tests.grabber.commands.conftest import N1, N2


def test_versions_lists_each_distinct_version(repo, grabber) -> None:
    code, out, _ = grabber("versions", "web1", "/etc/motd")
    assert code == errors.OK and N1 in out and N2 in out
    code, out, _ = grabber("versions", "web1", "/etc/motd", "--json")
    found = json.loads(out)
    assert code == errors.OK and [v["snapshots"] for v in found] == [[N1], [N2]]
    assert found[-1]["size"] == len(b"changed\n")


def test_diff_lists_changes_and_counts_them(repo, grabber) -> None:
    code, out, _ = grabber("diff", "web1", N1)  # B defaults to latest
    lines = out.splitlines()
    assert code == errors.OK
    assert lines[-1] == "1 added, 0 removed, 1 changed"
    assert any(line.startswith("+") and "etc/new" in line for line in lines)
    assert any(line.startswith("M") and "etc/motd" in line for line in lines)
    code, out, _ = grabber("diff", "web1", N1, N2, "--json")
    changes = [json.loads(line) for line in out.splitlines()]
    assert code == errors.OK and len(changes) == 2 and "added" not in out.splitlines()[-1]


def test_diff_of_an_unknown_snapshot_is_refused(repo, grabber) -> None:
    code, _, err = grabber("diff", "web1", "2001-01-01T000000Z")
    assert code != errors.OK and err.startswith("grabber: ") and "2001-01-01T000000Z" in err


def test_du_shows_each_snapshot_and_the_total(repo, grabber) -> None:
    code, out, _ = grabber("du", "web1")
    assert code == errors.OK and N1 in out and N2 in out
    code, out, _ = grabber("du", "web1", "--json", "--no-cache")
    assert code == errors.OK
    found = json.loads(out)
    assert [t["name"] for t in found["trees"]] == [N1, N2] and found["host"] == "web1"
    # etc/hosts is one inode in both: the total counts it once.
    assert found["total"] < sum(t["size"] for t in found["trees"])


@pytest.mark.parametrize("command", [["versions", "db1", "/etc/motd"], ["du", "db1"],
                                     ["diff", "db1", N1]])  # fmt: skip
def test_an_unknown_host_is_a_usage_error(repo, grabber, command) -> None:
    code, _, err = grabber(*command)
    assert code == errors.USAGE and "no host 'db1'" in err
