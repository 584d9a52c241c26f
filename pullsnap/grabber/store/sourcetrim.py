"""A writable snapshot trimmed to the run's sources before rsync.

A btrfs run starts from a copy of the last snapshot, and rsync --delete
(with --relative) removes only what has gone below the paths it transfers.
A path the backed-up host no longer sends (a source dropped from its
configuration) would stay in every later snapshot; a fresh copy, which the
hardlink store makes, would not have it.  So before rsync, at each level
above a source, every entry that leads to no source goes:

    sources /etc, /home/alice     keep etc (all of it), home/alice;
                                  remove home/bob, var, ...
    source /                      keep everything
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence

from pullsnap.grabber.store.removal import remove_tree

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

# A trie of path components; an empty dict under WHOLE marks a source (keep all below).
WHOLE = ""
Trie = dict[str, "Trie"]


def trie(sources: Iterable[str]) -> Trie:
    """The sources' components as nested dicts (pure); a source ends with {WHOLE: {}}."""
    root: Trie = {}
    for source in sources:
        node = root
        for part in (p for p in source.split("/") if p not in ("", ".")):
            node = node.setdefault(part, {})
        node[WHOLE] = {}
    return root


def strays(node: Trie, names: Sequence[str]) -> list[str]:
    """The entries of a directory at `node` that lead to no source (pure)."""
    if WHOLE in node:
        return []
    return sorted(n for n in names if n not in node)


def trim(tree: str, sources: Iterable[str]) -> list[str]:
    """Remove what leads to no source below `tree`; the paths removed (relative)."""
    removed: list[str] = []
    stack: list[tuple[str, Trie]] = [("", trie(sources))]
    while stack:
        rel, node = stack.pop()
        path = os.path.join(tree, rel) if rel else tree
        try:
            names = os.listdir(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in strays(node, names):
            remove_tree(os.path.join(path, name))
            removed.append(os.path.join(rel, name))
        if WHOLE in node:
            continue
        for name, child in node.items():
            below = os.path.join(path, name)
            with contextlib.suppress(OSError):
                # Only a real directory (a symlink there is rsync's to replace).
                os.close(os.open(below, _DIRECTORY))
                stack.append((os.path.join(rel, name), child))
    return removed
