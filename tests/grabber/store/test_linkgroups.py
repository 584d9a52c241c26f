"""Hard-link groups separated before rsync --inplace: which links go (pure),
where the groups come from (the base's manifest, else a walk), and unlinking
them without following a symlink out of the tree."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pullsnap.grabber.integrity import manifest
from pullsnap.grabber.integrity.manifest import Entry
from pullsnap.grabber.store import linkgroups
from pullsnap.grabber.store.linkgroups import extra_links, extras, line_inode, unlink_all


def test_extras_leave_singletons_and_keep_the_lowest_path_in_byte_order() -> None:
    assert extras({}) == []
    assert extras({7: [b"only"]}) == []
    # Byte order, not text order: b"Z" < b"a" < b"\xff".
    groups = {1: [b"\xffx", b"a", b"Z"], 2: [b"d/2", b"d/1"]}
    assert extras(groups) == [b"a", b"d/2", b"\xffx"]  # sorted too


def _tree(tmp_path: Path) -> Path:
    """a, b and sub/c one inode; d and e another; f alone."""
    top = tmp_path / "tree"
    (top / "sub").mkdir(parents=True)
    (top / "a").write_bytes(b"group one\n")
    os.link(top / "a", top / "b")
    os.link(top / "a", top / "sub" / "c")
    (top / "d").write_bytes(b"group two\n")
    os.link(top / "d", top / "e")
    (top / "f").write_bytes(b"alone\n")
    return top


def test_without_a_manifest_the_groups_come_from_a_walk(tmp_path: Path) -> None:
    top = _tree(tmp_path)
    assert extra_links(str(top), None) == [b"b", b"e", b"sub/c"]
    # A manifest path that does not exist (an old snapshot without one): a walk too.
    assert extra_links(str(top), str(tmp_path / "missing.manifest")) == [b"b", b"e", b"sub/c"]


def test_the_base_manifest_names_the_groups_when_there_is_one(tmp_path: Path) -> None:
    """The manifest is the base's word on what was linked; the tree's own
    links are not walked (the writable snapshot has the base's inodes)."""
    top = _tree(tmp_path)
    path = str(tmp_path / "base.manifest")
    entries = [Entry(p, "0" * 64, 1, inode, "n") for p, inode in
               ((b"x", 11), (b"y", 11), (b"z", 12), (b"a", 13))]  # fmt: skip
    manifest.write(path, {"snapshot": "n"}, entries)
    assert extra_links(str(top), path) == [b"y"]


def test_unlink_all_leaves_one_link_of_each_group(tmp_path: Path) -> None:
    top = _tree(tmp_path)
    unlink_all(str(top), extra_links(str(top), None))
    assert sorted(p.name for p in top.rglob("*")) == ["a", "d", "f", "sub"]
    assert (top / "a").read_bytes() == b"group one\n"
    assert os.lstat(top / "a").st_nlink == 1 and os.lstat(top / "d").st_nlink == 1


def test_paths_the_manifest_knows_but_the_tree_lost_are_skipped(tmp_path: Path) -> None:
    top = _tree(tmp_path)
    (top / "e").unlink()
    os.symlink("sub", top / "was-a-dir")  # a symlink now where the manifest had a directory
    (top / "plain").write_bytes(b"")
    unlink_all(str(top), [b"gone", b"e", b"nodir/x", b"was-a-dir/c", b"plain/x", b"b"])
    assert not (top / "b").exists()
    assert (top / "sub" / "c").exists()  # not reached through the symlink


def test_a_symlinked_directory_is_never_followed_out_of_the_tree(tmp_path: Path) -> None:
    """A directory of the base replaced by a symlink to somewhere else: the
    file of that name there stays."""
    top = _tree(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"not ours\n")
    os.symlink(outside, top / "link")
    unlink_all(str(top), [b"link/victim"])
    assert (outside / "victim").read_bytes() == b"not ours\n"
    # The tree itself through a symlink is refused too.
    os.symlink(top, tmp_path / "tree-link")
    with pytest.raises(OSError) as e:
        unlink_all(str(tmp_path / "tree-link"), [b"a"])
    assert e.value.errno in (errno.ELOOP, errno.ENOTDIR)
    assert (top / "a").exists()


def test_an_unexpected_error_is_not_swallowed(tmp_path: Path) -> None:
    top = _tree(tmp_path)
    with pytest.raises(IsADirectoryError):
        unlink_all(str(top), [b"sub"])


def test_line_inode_reads_the_plain_shape_and_declines_the_rest() -> None:
    line = Entry(b"a,b/c", "0" * 64, 5, 1234, "2026-12-07T010203Z").line()
    assert line_inode(line) == 1234  # a comma in the path does not matter: read from the end
    assert line_inode('["a","d",5, 1234,"n"]') is None  # another writer's spacing
    assert line_inode('["a","d",5,1234,"n,o"]') is None  # a comma in the last field
    assert line_inode('["a","d",5,1234,"n\\"o"]') is None
    assert line_inode('{"format": 1}') is None
    assert line_inode("") is None


def test_manifest_groups_parse_only_what_they_must_and_miss_nothing(tmp_path: Path) -> None:
    """Plain lines are counted by their inode; lines of another shape are
    parsed whole and join the groups of the plain ones; a malformed line is
    left out, as manifest.read leaves it out."""
    path = tmp_path / "base.manifest"
    entries = [Entry(p, "0" * 64, 1, inode, "n") for p, inode in
               ((b"a", 11), (b"b", 12), (b"c", 13), (b"d", 14))]  # fmt: skip
    manifest.write(str(path), {"snapshot": "n"}, entries)
    with open(path, "a", encoding="utf-8") as f:
        f.write('["e, spaced", "%s", 1, 11, "n"]\n' % ("0" * 64))  # odd shape, shares 11
        f.write('["f","%s",1,12,"n,x"]\n' % ("0" * 64))  # odd last field, shares 12
        f.write('["g","%s",1,13,"n"\n' % ("0" * 64))  # malformed: not counted as a link of 13
    groups = linkgroups.manifest_groups(str(path))
    assert groups is not None
    assert {inode: sorted(paths) for inode, paths in groups.items()} == {
        11: [b"a", b"e, spaced"], 12: [b"b", b"f"]}  # fmt: skip
    whole = manifest.read(str(path))
    assert whole is not None and b"g" not in whole  # the same verdict on the malformed line


def test_manifest_groups_none_without_a_readable_manifest(tmp_path: Path) -> None:
    assert linkgroups.manifest_groups(str(tmp_path / "missing")) is None
    (tmp_path / "bad").write_text("not a header\n")
    assert linkgroups.manifest_groups(str(tmp_path / "bad")) is None
