"""A tree whose names sort differently as text and as bytes, and as a
directory's name with and without its "/": what the manifest's order and
the merge with a base must get right (test_manifest_order, test_basemanifests)."""

from __future__ import annotations

import os
from pathlib import Path

from pullsnap.grabber.store.repository import HostRepo

N1, N2 = "2026-11-24T020000Z", "2026-11-25T020000Z"
# Names whose order differs between str and bytes, and between "a dir's
# name" and "a dir's name + /": what a merge on byte order must get right.
FILES = [b"a/x", b"a.txt", b"a-b", b"a/b/c", b"ab", b"b", b"\xff", "é".encode(), b"Z",
         b"a.d/y", b"sp ace", b"new\nline", b"a/b.c", b"a/b/d"]  # fmt: skip


def make_tree(root: Path) -> None:
    base = os.fsencode(root)
    for i, rel in enumerate(FILES):
        full = os.path.join(base, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(b"%d\n" % i)


def ordered_repo(tmp_path: Path) -> HostRepo:
    """A host whose snapshot N1 holds FILES."""
    host = HostRepo(str(tmp_path / "repo"), "web1")
    host.ensure()
    make_tree(Path(host.tree(N1)))
    return host


def link_tree(repo: HostRepo, old: str, new: str) -> None:
    """What rsync --link-dest makes of an unchanged tree: every file a hard link."""
    src, dst = os.fsencode(repo.tree(old)), os.fsencode(repo.tree(new))
    for rel in FILES:
        os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
        os.link(os.path.join(src, rel), os.path.join(dst, rel))


def body(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()[1:]
