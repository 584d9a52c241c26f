"""Hard-link groups separated before an in-place run."""

from __future__ import annotations

import os

from pullsnap.grabber.store.linkgroups import extra_links, extras, unlink_all


def test_extras_keep_the_first_link_of_each_group() -> None:
    groups = {1: [b"b", b"a", b"etc/c"], 2: [b"alone"], 3: [b"y", b"x"]}
    assert extras(groups) == [b"b", b"etc/c", b"y"]


def test_without_a_manifest_the_tree_is_walked_and_links_unlinked(tmp_path) -> None:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "a").write_bytes(b"shared\n")
    os.link(tree / "a", tree / "b")
    os.link(tree / "a", tree / "etc" / "c")
    (tree / "alone").write_bytes(b"x")
    extra = extra_links(str(tree), None)
    assert extra == [b"b", b"etc/c"]
    # A symlink on the way is not followed: nothing outside is touched.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "c").write_bytes(b"victim")
    (tree / "link").symlink_to(outside)
    unlink_all(str(tree), [*extra, b"link/c", b"gone/x"])
    assert sorted(p.name for p in tree.iterdir()) == ["a", "alone", "etc", "link"]
    assert os.listdir(tree / "etc") == [] and (outside / "c").read_bytes() == b"victim"
    assert os.lstat(tree / "a").st_nlink == 1
