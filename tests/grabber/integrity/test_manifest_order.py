"""The manifest as a stream: the walk's order, the merge with a base's
manifest read beside it, and bases that are not in that order."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from pullsnap.grabber.integrity import basemanifests, manifest, tree
from pullsnap.grabber.store.repository import HostRepo

N1, N2 = "2026-11-24T020000Z", "2026-11-25T020000Z"
# Names whose order differs between str and bytes, and between "a dir's
# name" and "a dir's name + /": what a merge on byte order must get right.
FILES = [b"a/x", b"a.txt", b"a-b", b"a/b/c", b"ab", b"b", b"\xff", "é".encode(), b"Z",
         b"a.d/y", b"sp ace", b"new\nline", b"a/b.c", b"a/b/d"]  # fmt: skip


def _make_tree(root: Path) -> None:
    base = os.fsencode(root)
    for i, rel in enumerate(FILES):
        full = os.path.join(base, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(b"%d\n" % i)


@pytest.fixture
def repo(tmp_path: Path) -> HostRepo:
    host = HostRepo(str(tmp_path / "repo"), "web1")
    host.ensure()
    _make_tree(Path(host.tree(N1)))
    return host


def _link_tree(repo: HostRepo, old: str, new: str) -> None:
    """What rsync --link-dest makes of an unchanged tree: every file a hard link."""
    src, dst = os.fsencode(repo.tree(old)), os.fsencode(repo.tree(new))
    for rel in FILES:
        os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
        os.link(os.path.join(src, rel), os.path.join(dst, rel))


def _body(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()[1:]


def test_the_walk_meets_files_in_byte_order_of_their_paths(repo: HostRepo) -> None:
    root = tree.open_tree(repo.tree(N1))
    try:
        walked = [path for _, _, path, _ in tree.walk_files(root)]
    finally:
        os.close(root)
    assert walked == sorted(FILES)
    assert walked.index(b"a.txt") < walked.index(b"a/x"), "'.' sorts before '/'"


def test_a_manifest_is_written_in_path_order_and_says_so(repo: HostRepo) -> None:
    stats = manifest.make(repo, N1, set(FILES), [], {}, "fake-super", ())
    assert stats.hashed == len(FILES)
    with open(repo.manifest_path(N1), encoding="utf-8") as f:
        header = json.loads(f.readline())
    assert header["order"] == manifest.ORDER and header["format"] == manifest.FORMAT
    paths = [manifest.parse_line(line).path for line in _body(repo.manifest_path(N1))]
    assert paths == sorted(FILES)


def test_a_no_change_run_carries_every_entry_from_the_base_read_as_a_stream(
    repo: HostRepo,
) -> None:
    manifest.make(repo, N1, set(FILES), [], {}, "fake-super", ())
    _link_tree(repo, N1, N2)
    base = basemanifests.open_base(repo.manifest_path(N1))
    assert base is not None
    stats = manifest.make(repo, N2, set(), [base], {}, "fake-super", ())
    base.close()
    assert (stats.carried, stats.hashed) == (len(FILES), 0)
    assert _body(repo.manifest_path(N2)) == _body(repo.manifest_path(N1)), "lines as they were"


def test_a_base_from_before_the_order_was_kept_is_sorted_and_still_carried(
    repo: HostRepo, tmp_path: Path
) -> None:
    entries, _ = manifest.build(repo.tree(N1), N1, set(FILES), [])
    random.Random(3).shuffle(entries)  # any order, no "order" in the header
    manifest.write(repo.manifest_path(N1), {"snapshot": N1}, entries)
    _link_tree(repo, N1, N2)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    base = basemanifests.open_base(repo.manifest_path(N1), str(scratch))
    assert base is not None and list(base) == sorted(FILES)
    stats = manifest.make(repo, N2, set(), [base], {}, "fake-super", ())
    assert (stats.carried, stats.hashed) == (len(FILES), 0)
    assert os.listdir(scratch) == []


def test_a_base_out_of_the_order_it_claims_costs_hashing_never_a_wrong_entry(
    repo: HostRepo,
) -> None:
    manifest.make(repo, N1, set(FILES), [], {}, "fake-super", ())
    truth = {manifest.parse_line(x).path: x for x in _body(repo.manifest_path(N1))}
    lines = list(truth.values())
    random.Random(11).shuffle(lines)
    with open(repo.manifest_path(N1), encoding="utf-8") as f:
        header = f.readline()
    with open(repo.manifest_path(N1), "w", encoding="utf-8") as f:
        f.write(header + "\n".join(lines) + "\n")
    _link_tree(repo, N1, N2)
    base = basemanifests.open_base(repo.manifest_path(N1))
    assert base is not None
    stats = manifest.make(repo, N2, set(), [base], {}, "fake-super", ())
    assert stats.carried + stats.hashed == len(FILES) and stats.hashed > 0
    made = {
        manifest.parse_line(x).path: manifest.parse_line(x) for x in _body(repo.manifest_path(N2))
    }
    for path, line in truth.items():
        old = manifest.parse_line(line)
        assert (made[path].digest, made[path].size) == (old.digest, old.size)


def test_a_file_rsync_named_is_hashed_even_where_the_base_has_its_inode(repo: HostRepo) -> None:
    manifest.make(repo, N1, set(FILES), [], {}, "fake-super", ())
    _link_tree(repo, N1, N2)
    base = basemanifests.open_base(repo.manifest_path(N1))
    assert base is not None
    named = {b"a/b/c", b"\xff"}
    stats = manifest.make(repo, N2, named, [base], {}, "fake-super", ())
    assert (stats.hashed, stats.carried) == (len(named), len(FILES) - len(named))


def test_a_base_read_in_small_blocks_or_parsed_ahead_gives_every_entry_whole(
    repo: HostRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest.make(repo, N1, set(FILES), [], {}, "fake-super", ())
    whole = basemanifests.open_base(repo.manifest_path(N1))
    assert whole is not None
    expected = list(whole.entries())
    whole.close()
    # Blocks of 7 bytes cut "é" (two bytes) and every line somewhere.
    monkeypatch.setattr(basemanifests, "READ_SIZE", 7)
    for ahead in (0, 1, 5, 1000):
        [base] = basemanifests.open_all([repo.manifest_path(N1)], None, ahead)
        assert list(base.entries()) == expected
        base.close()
    assert sorted(e.path for e in expected) == sorted(FILES)
