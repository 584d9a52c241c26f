"""The receiver's own root: what its mount namespace shows, planned in the parent.

The receiving rsync and its ssh see a root of their own (mountns.py builds
it between fork and exec): an empty tmpfs holding bind mounts of exactly
the paths their Landlock rules name (receiverpolicy.py: the programs, the
libraries, the run's private directory, /dev/null), the run's own /etc
(etcview.py) and the host's directory, and the symlinks that lead to them
(`/bin -> usr/bin`, `/usr/bin/sh -> dash`) so the names in those rules
still resolve.  Nothing else of the backup host is in the view: not its
/etc, not other hosts' snapshots, not /home.

The host's directory is the one writable mount, and it is mounted
`nosymfollow` (mount(8), Linux 5.10): the kernel follows no symlink that
lies in it.  A backed-up host plants symlinks in its snapshots at will
(`evil -> /usr/lib`); the next run's --link-dest lookup of `evil/x` would
follow it out of the repository and copy what it finds (rsync copies a
--link-dest file it cannot hardlink, generator.c try_dests_reg).  With
nosymfollow that lookup fails (ELOOP) and rsync takes the file from the
sender.  rsync itself never needs to follow a symlink inside the
destination: it handles them with lstat, readlink and l*-calls.

`plan` is pure: `inspect` tells it what a path on the backup host is.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

# What `inspect` answers: a directory, anything else that can be bound
# (a file, a device node), a symlink (with its target), or nothing.
DIR, FILE, SYMLINK, MISSING = "dir", "file", "symlink", "missing"
MAX_LINKS = 40  # the kernel's own limit on symlinks in one lookup (path_resolution(7))

ROOT = "root"  # the new root's mount point, in the private directory


@dataclass(frozen=True)
class Bind:
    source: str  # the path on the backup host
    directory: bool
    recursive: bool = True


@dataclass(frozen=True)
class View:
    """How to build the root: make `dirs`, `links` (path, target) and the
    mount points of `binds` in an empty tmpfs at `root`, bind each
    `binds[path]` there, /etc from `etc`, then `writable` (binds too) last."""

    root: str
    dirs: tuple[str, ...]
    links: tuple[tuple[str, str], ...]
    binds: tuple[tuple[str, Bind], ...]  # (path in the new root, what)
    writable: tuple[str, ...]  # bound over themselves, writable, nosymfollow
    etc: str


class _Plan:
    def __init__(self, inspect: Callable[[str], tuple[str, str]]) -> None:
        self.inspect = inspect
        self.dirs: dict[str, None] = {}
        self.links: dict[str, str] = {}
        self.binds: dict[str, Bind] = {}

    def bound(self, path: str) -> bool:
        """Whether `path` is already in view, inside or at a bound path."""
        return any(path == b or path.startswith(b.rstrip("/") + "/") for b in self.binds)

    def resolve(self, path: str) -> tuple[str, str] | None:
        """Add the dirs and links on the way to `path`; its real path and
        kind, or None when it does not exist (or loops)."""
        for _ in range(MAX_LINKS):
            parts = [p for p in path.split("/") if p]
            here = "/"
            for i, name in enumerate(parts):
                here = posixpath.join(here, name)
                kind, target = self.inspect(here)
                if kind == SYMLINK:
                    if not self.bound(here):
                        self.links[here] = target
                    rest = "/".join(parts[i + 1 :])
                    path = posixpath.normpath(posixpath.join(posixpath.dirname(here), target, rest))
                    break
                if kind == MISSING:
                    return None
                if i == len(parts) - 1:
                    return here, kind
                if kind != DIR:
                    return None
                if not self.bound(here):
                    self.dirs[here] = None
            else:
                return "/", DIR
        return None

    def show(self, path: str, recursive: bool = True) -> None:
        found = self.resolve(path)
        if found is None:
            return
        real, kind = found
        if not self.bound(real):
            self.binds[real] = Bind(real, kind == DIR, recursive)


def plan(
    shown: Iterable[str],
    writable: Sequence[str],
    etc: str,
    private_dir: str,
    inspect: Callable[[str], tuple[str, str]],
) -> View:
    """The view of the backup host that shows `shown` read-only (paths that
    do not exist are left out, as Landlock skips them) and `writable`
    writable; `etc` appears as /etc.  Shorter paths go first, so a
    directory bound whole is not also built entry by entry."""
    p = _Plan(inspect)
    p.dirs["/etc"] = None
    # The new root's mount point lies in the private directory: binding
    # that recursively would copy the new root into itself.
    p.show(private_dir, recursive=False)
    for path in sorted(set(shown) - {private_dir}, key=lambda s: (s.count("/"), s)):
        p.show(path)
    real_writable = []
    for path in writable:
        found = p.resolve(path)
        if found is None or found[1] != DIR:
            raise ValueError(f"{path!r} is not a directory")
        real_writable.append(found[0])
    return View(
        root=posixpath.join(private_dir, ROOT),
        dirs=tuple(d for d in p.dirs if not p.bound(d)),
        links=tuple((path, target) for path, target in p.links.items()),
        binds=tuple(p.binds.items()),
        writable=tuple(real_writable),
        etc=etc,
    )


def inspect_host(path: str) -> tuple[str, str]:
    """What `path` is on this host (lstat, readlink): for `plan`."""
    try:
        st = os.lstat(path)
    except OSError:
        return MISSING, ""
    if stat.S_ISLNK(st.st_mode):
        return SYMLINK, os.readlink(path)
    return (DIR if stat.S_ISDIR(st.st_mode) else FILE), ""
