"""The `grabber du` table and JSON (views/usage.py, pure)."""

from __future__ import annotations

from pullsnap.grabber.store.base import HostUsage, TreeUsage
from pullsnap.grabber.views import usage


def test_table() -> None:
    found = HostUsage(
        (TreeUsage("2026-11-01T000000Z", "complete", 3 << 20, 1 << 20),
         TreeUsage("2026-11-02T000000Z.incomplete", "interrupted", 3 << 20, 4096)),
        4 << 20, unreadable=2,
    )  # fmt: skip
    text = usage.render("web1", found)
    lines = text.splitlines()
    assert lines[0].split() == ["SNAPSHOT", "STATE", "SIZE", "UNIQUE"]
    assert lines[1].split() == ["2026-11-01T000000Z", "complete", "3.0", "MiB", "1.0", "MiB"]
    assert "web1: 4.0 MiB on disk in 2 trees" in text
    assert "2 directories could not be read" in text and "run as root" in text


def test_json_names_every_tree() -> None:
    found = HostUsage((TreeUsage("2026-11-01T000000Z", "complete", 30, 10, 2),), 30, 1, 5)
    assert usage.as_json("web1", found) == {
        "host": "web1", "total": 30, "inodes": 5, "unreadable": 1,
        "trees": [{"name": "2026-11-01T000000Z", "state": "complete", "size": 30, "unique": 10,
                   "unique_inodes": 2}],
    }  # fmt: skip
