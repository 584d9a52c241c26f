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
from tests.grabber.integrity.oddnames import FILES, N1, N2, body, link_tree, ordered_repo


@pytest.fixture
def repo(tmp_path: Path) -> HostRepo:
    return ordered_repo(tmp_path)


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
    paths = [manifest.parse_line(line).path for line in body(repo.manifest_path(N1))]
    assert paths == sorted(FILES)


def test_a_no_change_run_carries_every_entry_from_the_base_read_as_a_stream(
    repo: HostRepo,
) -> None:
    manifest.make(repo, N1, set(FILES), [], {}, "fake-super", ())
    link_tree(repo, N1, N2)
    base = basemanifests.open_base(repo.manifest_path(N1))
    assert base is not None
    stats = manifest.make(repo, N2, set(), [base], {}, "fake-super", ())
    base.close()
    assert (stats.carried, stats.hashed) == (len(FILES), 0)
    assert body(repo.manifest_path(N2)) == body(repo.manifest_path(N1)), "lines as they were"


def test_a_base_out_of_the_order_it_claims_costs_hashing_never_a_wrong_entry(
    repo: HostRepo,
) -> None:
    manifest.make(repo, N1, set(FILES), [], {}, "fake-super", ())
    truth = {manifest.parse_line(x).path: x for x in body(repo.manifest_path(N1))}
    lines = list(truth.values())
    random.Random(11).shuffle(lines)
    with open(repo.manifest_path(N1), encoding="utf-8") as f:
        header = f.readline()
    with open(repo.manifest_path(N1), "w", encoding="utf-8") as f:
        f.write(header + "\n".join(lines) + "\n")
    link_tree(repo, N1, N2)
    base = basemanifests.open_base(repo.manifest_path(N1))
    assert base is not None
    stats = manifest.make(repo, N2, set(), [base], {}, "fake-super", ())
    assert stats.carried + stats.hashed == len(FILES) and stats.hashed > 0
    made = {
        manifest.parse_line(x).path: manifest.parse_line(x) for x in body(repo.manifest_path(N2))
    }
    for path, line in truth.items():
        old = manifest.parse_line(line)
        assert (made[path].digest, made[path].size) == (old.digest, old.size)


def test_a_file_rsync_named_is_hashed_even_where_the_base_has_its_inode(repo: HostRepo) -> None:
    manifest.make(repo, N1, set(FILES), [], {}, "fake-super", ())
    link_tree(repo, N1, N2)
    base = basemanifests.open_base(repo.manifest_path(N1))
    assert base is not None
    named = {b"a/b/c", b"\xff"}
    stats = manifest.make(repo, N2, named, [base], {}, "fake-super", ())
    assert (stats.hashed, stats.carried) == (len(named), len(FILES) - len(named))
