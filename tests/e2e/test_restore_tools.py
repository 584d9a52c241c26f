"""The restore helpers on a repository made by real runs (--fake-super):
`grabber versions`, `grabber diff` and `grabber du`, checked against what
the runs changed, against GNU du, and by restoring an old version."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest

from pullsnap import errors
from pullsnap.grabber.store.repository import HostRepo
from tests.btrfsview import btrfs_du
from tests.e2e import history
from tests.trees import OTHER_GID, OTHER_UID

pytestmark = [pytest.mark.root, pytest.mark.e2e]


@pytest.fixture(scope="module")
def past_hardlink(lab) -> Iterator[history.History]:
    h = history.build(lab, "restore-history")
    yield h
    history.remove(h)


@pytest.fixture(scope="module")
def past_btrfs(lab, btrfs: str) -> Iterator[history.History]:
    h = history.build(lab, "restore-history-btrfs", repo_parent=btrfs)
    yield h
    history.remove(h)


@pytest.fixture(params=["hardlink", "btrfs"])
def past(request: pytest.FixtureRequest) -> history.History:
    """The same history in either store: diff and versions tell the same story."""
    return request.getfixturevalue(f"past_{request.param}")


def _diff(h: history.History, a: str, b: str) -> set[tuple[str, str, frozenset[str]]]:
    done = h.grabber("diff", "web1", a, b, "--json")
    assert done.returncode == errors.OK, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    return {(c["change"], c["path"], frozenset(c["what"])) for c in lines}


def test_diff_lists_exactly_what_the_run_changed(past: history.History) -> None:
    first, second, third = past.runs
    src = past.web1.src
    expected = {("M", f"{src}/{rel}", frozenset(why)) for rel, why in history.CHANGES.items()}
    expected |= {("+", f"{src}/{rel}", frozenset()) for rel in history.ADDED}
    expected |= {("-", f"{src}/{rel}", frozenset()) for rel in history.REMOVED}
    assert _diff(past, first, second) == expected
    assert _diff(past, second, third) == {("M", f"{src}/etc/hosts", frozenset({"size", "mtime"}))}
    # Backwards, what was added is removed and the other way round.
    back = _diff(past, second, first)
    assert {p for s, p, _ in back if s == "-"} == {f"{src}/{rel}" for rel in history.ADDED}


def test_diff_text_ends_with_a_summary(past: history.History) -> None:
    first, _, third = past.runs
    done = past.grabber("diff", "web1", first)  # B defaults to latest
    assert done.returncode == errors.OK, done.stderr
    assert done.stdout.splitlines()[-1] == f"{len(history.ADDED)} added, 1 removed, 4 changed"
    assert f"M {past.web1.src}/etc/hosts  size, mtime" in done.stdout
    assert past.grabber("diff", "web1", first, third).stdout == done.stdout
    unknown = past.grabber("diff", "web1", "2001-01-01T000000Z")
    assert unknown.returncode == errors.USAGE
    assert f"grabber --config {past.web1.grabber_config} list web1" in unknown.stderr


def test_versions_by_inode_and_restoring_an_old_one(past: history.History, tmp_path) -> None:
    path = f"{past.web1.src}/etc/hosts"
    done = past.grabber("versions", "web1", path, "--json")
    assert done.returncode == errors.OK, done.stderr
    versions = json.loads(done.stdout)
    first, second, third = past.runs
    # The suspect snapshot still holds the third version: one inode, two snapshots.
    assert [v["snapshots"] for v in versions] == [[first], [second], [third, past.suspect]]
    for v in versions:
        name = v["snapshots"][0]
        assert v["size"] == len(past.hosts_content[name])
        assert v["mtime_ns"] == past.hosts_stat[name][3]
        with open(v["copy_from"], "rb") as f:
            assert f.read() == past.hosts_content[name]
    # Restore the first version as README "The repository and restoring"
    # says for a --fake-super snapshot: owner, mode and time come back.
    target = tmp_path / "hosts"
    subprocess.run(["rsync", "-aHAX", "--numeric-ids", "--modify-window=-1", "--fake-super",
                    "-M--super", versions[0]["copy_from"], str(target)], check=True)  # fmt: skip
    st = os.lstat(target)
    assert (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns) == past.hosts_stat[first]
    assert target.read_bytes() == past.hosts_content[first]


def test_versions_reads_owners_from_fake_super(past: history.History) -> None:
    done = past.grabber("versions", "web1", f"{past.web1.src}/home/alice/notes.txt")
    assert done.returncode == errors.OK, done.stderr
    assert done.stdout.splitlines()[0].endswith("2 versions in 4 snapshots")
    assert f"owner {OTHER_UID}:{OTHER_GID}" in done.stdout
    assert f"owner {OTHER_UID + 1}:{OTHER_GID}" in done.stdout


@pytest.mark.security
def test_versions_does_not_follow_the_snapshots_symlinks(past: history.History) -> None:
    # rel-link -> etc/hosts inside the snapshot: a path through it is refused,
    # and abs-link-out -> /etc/shadow is shown as the link it is.
    through = past.grabber("versions", "web1", f"{past.web1.src}/rel-link/x")
    assert through.returncode == errors.USAGE and "is in no snapshot" in through.stderr
    link = past.grabber("versions", "web1", f"{past.web1.src}/abs-link-out", "--json")
    assert link.returncode == errors.OK, link.stderr
    kinds = {v["kind"] for v in json.loads(link.stdout) if v["present"]}
    assert kinds == {"link"}


def _gnu_du(paths: list[str]) -> int:
    """GNU du's total for these trees; it counts a hardlinked file once."""
    done = subprocess.run(["du", "-s", "-c", "-B1", *paths], capture_output=True, text=True,
                          check=True)  # fmt: skip
    return int(done.stdout.splitlines()[-1].split()[0])


def test_du_agrees_with_gnu_du(past_hardlink: history.History) -> None:
    past = past_hardlink
    done = past.grabber("du", "web1", "--json", "--no-cache")
    assert done.returncode == errors.OK, done.stderr
    body = json.loads(done.stdout)
    trees = {t["name"]: t for t in body["trees"]}
    host = HostRepo(past.repo, "web1")
    paths = {name: host.tree(name) for name in trees}
    assert set(trees) == {*past.runs, past.suspect}
    assert body["total"] == _gnu_du(list(paths.values()))
    for name, tree in trees.items():
        assert tree["size"] == _gnu_du([paths[name]])
        others = [p for n, p in paths.items() if n != name]
        assert tree["unique"] == body["total"] - _gnu_du(others), name
    # grown.bin came in run 2 and stayed in run 3: shared, unique to neither;
    # the first snapshot alone holds a.conf and the first hosts file.
    first, second, _ = past.runs
    assert trees[second]["unique"] < history.GROWN <= trees[second]["size"]
    assert trees[first]["unique"] > 0
    cached = past.grabber("du", "web1", "--json")
    assert json.loads(cached.stdout) == body
    assert os.path.exists(os.path.join(host.path, ".usage.json"))


def test_du_agrees_with_btrfs_filesystem_du(past_btrfs: history.History) -> None:
    """Each snapshot's extents and those it alone holds, the host's once."""
    past = past_btrfs
    done = past.grabber("du", "web1", "--json", "--no-cache")
    assert done.returncode == errors.OK, done.stderr
    body = json.loads(done.stdout)
    trees = {t["name"]: t for t in body["trees"]}
    assert set(trees) == {*past.runs, past.suspect}
    host = HostRepo(past.repo, "web1")
    figures = btrfs_du([host.tree(name) for name in trees])
    for name, tree in trees.items():
        total, exclusive, _ = figures[host.tree(name)]
        assert (tree["size"], tree["unique"]) == (total, exclusive), name
    assert body["total"] == history.btrfs_trees_once(past, "web1")
    # grown.bin came in run 2 and stayed in run 3: shared, unique to neither.
    second = past.runs[1]
    assert trees[second]["unique"] < history.GROWN <= trees[second]["size"]
