"""A writable snapshot trimmed to the run's sources."""

from __future__ import annotations

from pullsnap.grabber.store.sourcetrim import strays, trie, trim


def test_strays_are_what_leads_to_no_source() -> None:
    node = trie(["/etc", "/home/alice", "/home/carol/"])
    assert strays(node, ["etc", "home", "var", "root"]) == ["root", "var"]
    assert strays(node["home"], ["alice", "bob", "carol"]) == ["bob"]
    assert strays(node["etc"], ["passwd", "hosts"]) == []  # a source: all of it stays
    assert strays(trie(["/"]), ["etc", "var"]) == []


def test_trim_removes_what_the_host_no_longer_sends(tmp_path) -> None:
    for rel in ("etc/hosts", "home/alice/notes", "home/bob/notes", "var/log/x"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    (tmp_path / "home" / "bob" / "notes").chmod(0o000)  # unreadable is removed all the same
    assert sorted(trim(str(tmp_path), ["/etc", "/home/alice"])) == ["home/bob", "var"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["etc", "home"]
    assert [p.name for p in (tmp_path / "home").iterdir()] == ["alice"]
    assert trim(str(tmp_path), ["/"]) == []
