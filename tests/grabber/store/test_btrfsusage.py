"""Reading `btrfs filesystem du`, hard-link groups, sources to keep (pure)."""

from __future__ import annotations

from pullsnap.grabber.store.btrfsusage import parse_du
from pullsnap.grabber.store.linkgroups import extras
from pullsnap.grabber.store.sourcetrim import strays, trie


def test_parse_du_reads_raw_figures_and_names_with_spaces() -> None:
    text = ("     Total   Exclusive  Set shared  Filename\n"
            "  16777216        4096     8388608  /r/web1\n"
            "   8388608           0     8388608  /r/web1/2026-01-01T000000Z\n"
            "         0           0           0  /r/a name with spaces\n"
            "ERROR: cannot access 'x': Permission denied\n")  # fmt: skip
    assert parse_du(text) == {
        "/r/web1": (16777216, 4096, 8388608),
        "/r/web1/2026-01-01T000000Z": (8388608, 0, 8388608),
        "/r/a name with spaces": (0, 0, 0),
    }


def test_extras_keep_the_first_link_of_each_group() -> None:
    groups = {1: [b"b", b"a", b"etc/c"], 2: [b"alone"], 3: [b"y", b"x"]}
    assert extras(groups) == [b"b", b"etc/c", b"y"]


def test_strays_are_what_leads_to_no_source() -> None:
    node = trie(["/etc", "/home/alice", "/home/carol/"])
    assert strays(node, ["etc", "home", "var", "root"]) == ["root", "var"]
    assert strays(node["home"], ["alice", "bob", "carol"]) == ["bob"]
    assert strays(node["etc"], ["passwd", "hosts"]) == []  # a source: all of it stays
    assert strays(trie(["/"]), ["etc", "var"]) == []
