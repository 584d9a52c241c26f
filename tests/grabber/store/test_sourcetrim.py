"""A writable snapshot trimmed to the run's sources: the trie of sources
(pure) and the trim of a real tree, which never follows a symlink out."""

from __future__ import annotations

import os
from pathlib import Path

from pullsnap.grabber.store.sourcetrim import WHOLE, strays, trie, trim


def test_trie_ignores_empty_and_dot_components() -> None:
    assert trie(["/etc", "./home//alice/", "home/alice/./"]) == {
        "etc": {WHOLE: {}},
        "home": {"alice": {WHOLE: {}}},
    }
    assert trie(["/"]) == {WHOLE: {}}
    assert trie([]) == {}


def test_a_source_below_another_changes_nothing() -> None:
    node = trie(["/home", "/home/alice"])
    assert strays(node["home"], ["alice", "bob"]) == []
    assert strays(trie([]), ["etc", "var"]) == ["etc", "var"]  # no source: nothing leads anywhere


def _tree(top: Path) -> None:
    for rel in ("etc/hosts", "etc/ssh/sshd_config", "home/alice/notes", "home/bob/notes",
                "var/log/syslog", "root/.profile"):  # fmt: skip
        (top / rel).parent.mkdir(parents=True, exist_ok=True)
        (top / rel).write_text(rel)


def _files(top: Path) -> list[str]:
    return sorted(str(p.relative_to(top)) for p in top.rglob("*") if not p.is_dir())


def test_trim_keeps_what_leads_to_a_source(tmp_path: Path) -> None:
    top = tmp_path / "snap"
    _tree(top)
    removed = trim(str(top), ["/etc", "/home/alice"])
    assert sorted(removed) == ["home/bob", "root", "var"]
    assert _files(top) == ["etc/hosts", "etc/ssh/sshd_config", "home/alice/notes"]


def test_a_file_source_keeps_only_that_file(tmp_path: Path) -> None:
    top = tmp_path / "snap"
    _tree(top)
    assert sorted(trim(str(top), ["/etc/hosts"])) == ["etc/ssh", "home", "root", "var"]
    assert _files(top) == ["etc/hosts"]


def test_root_as_a_source_keeps_everything(tmp_path: Path) -> None:
    top = tmp_path / "snap"
    _tree(top)
    before = _files(top)
    assert trim(str(top), ["/"]) == []
    assert _files(top) == before


def test_sources_missing_from_the_tree_are_not_an_error(tmp_path: Path) -> None:
    top = tmp_path / "snap"
    _tree(top)
    (top / "srv").write_text("a file where a source has a directory")
    assert sorted(trim(str(top), ["/opt/app", "/srv/www"])) == [
        "etc", "home", "root", "var"]  # fmt: skip
    assert _files(top) == ["srv"]
    assert trim(str(tmp_path / "no-such-tree"), ["/etc"]) == []


def test_a_symlink_on_a_source_path_is_left_to_rsync_and_not_followed(tmp_path: Path) -> None:
    """home is now a symlink to a directory outside: nothing below it goes
    (rsync replaces the symlink), and the outside keeps its files."""
    top = tmp_path / "snap"
    _tree(top)
    outside = tmp_path / "outside"
    (outside / "bob").mkdir(parents=True)
    (outside / "bob" / "keep").write_text("not the snapshot's")
    for p in sorted((top / "home").rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    (top / "home").rmdir()
    os.symlink(outside, top / "home")
    assert sorted(trim(str(top), ["/home/alice"])) == ["etc", "root", "var"]
    assert (top / "home").is_symlink()
    assert (outside / "bob" / "keep").read_text() == "not the snapshot's"
