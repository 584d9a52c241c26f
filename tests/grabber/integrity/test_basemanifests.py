"""The bases' manifests read as streams (basemanifests.py): in blocks,
parsed ahead, and sorted when they come from before the order was kept."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from pullsnap.grabber.integrity import basemanifests, manifest
from pullsnap.grabber.store.repository import HostRepo
from tests.grabber.integrity.oddnames import FILES, N1, N2, link_tree, ordered_repo


@pytest.fixture
def repo(tmp_path: Path) -> HostRepo:
    return ordered_repo(tmp_path)


def test_a_base_from_before_the_order_was_kept_is_sorted_and_still_carried(
    repo: HostRepo, tmp_path: Path
) -> None:
    entries, _ = manifest.build(repo.tree(N1), N1, set(FILES), [])
    random.Random(3).shuffle(entries)  # any order, no "order" in the header
    manifest.write(repo.manifest_path(N1), {"snapshot": N1}, entries)
    link_tree(repo, N1, N2)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    base = basemanifests.open_base(repo.manifest_path(N1), str(scratch))
    assert base is not None and list(base) == sorted(FILES)
    stats = manifest.make(repo, N2, set(), [base], {}, "fake-super", ())
    assert (stats.carried, stats.hashed) == (len(FILES), 0)
    assert os.listdir(scratch) == []


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
