"""The store: how snapshot trees are made, published and deleted.

A run talks to its host's trees only through a `Store`, so a second kind of
store (a copy-on-write filesystem's snapshots) plugs in beside the hardlink
one without touching the run, retention or the views:

    plan(name)      what a run named `name` builds on; changes nothing (the
                    "running" record names the bases before any tree exists)
    begin(target)   make the tree the run writes into
    publish(name)   the finished tree becomes the snapshot `name`; `latest`
                    follows if it is the newest good one
    discard(name)   an interrupted or failed run's tree goes
    delete(name)    a snapshot this grabber made goes, record and all
    empty_trash()   finish deletions that were only moved aside
    usage()         what each tree holds, and what only it holds
    added(attempt)  what a snapshot added: the free-space guard's growth

Records, names, the host lock and `latest` are the same for every store
(repository.HostRepo); `open_store` picks the store of a host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pullsnap.grabber.store.repository import Attempt, HostRepo


@dataclass(frozen=True)
class Target:
    """Where one run writes, and what it builds on."""

    name: str
    tree: str  # the directory the receiving rsync writes into
    # Trees the run builds on, in order (the hardlink store: rsync's
    # --link-dest).  The receiver may write there too, and retention never
    # deletes them while the run's record says "running".
    bases: tuple[str, ...] = ()
    reused: tuple[str, ...] = ()  # interrupted trees among `bases`: discarded after success


@dataclass(frozen=True)
class TreeUsage:
    name: str  # snapshot name, "<name>.incomplete" for a leftover tree
    state: str
    size: int  # what the tree references
    unique: int  # what deleting only this tree would free


@dataclass(frozen=True)
class HostUsage:
    trees: tuple[TreeUsage, ...]
    total: int  # what the host's trees take, shared data once
    unreadable: int = 0  # directories that could not be listed (not root?)


class Store(Protocol):
    """One host's snapshot trees (see the module docstring)."""

    host: HostRepo

    def plan(self, name: str) -> Target: ...

    def begin(self, target: Target) -> None: ...

    def publish(self, name: str) -> None: ...

    def discard(self, name: str) -> None: ...

    def delete(self, name: str, *, now: bool = True) -> None:
        """Refuse what `HostRepo.check_deletable` refuses.  `now=False`
        only moves the trees aside; `empty_trash` (after the host lock is
        released) removes them, so a large deletion never holds up a run."""
        ...

    def empty_trash(self) -> None: ...

    def usage(self, use_cache: bool = True) -> HostUsage: ...

    def added(self, attempt: Attempt) -> int: ...


def open_store(host: HostRepo) -> Store:
    """The store of `host`'s snapshots: hardlinked trees, the only kind yet."""
    from pullsnap.grabber.store.hardlink import HardlinkStore

    return HardlinkStore(host)


def recover(store: Store, running_elsewhere: bool = False) -> list[str]:
    """Finish or mark what a crashed run left (host lock held); say what was done.

    A tree whose record says it finished is published; a "running" record
    is marked "interrupted" (its tree is built on by the next run)."""
    host = store.host
    done = []
    for attempt in host.attempts():
        if attempt.unpublished:
            store.publish(attempt.name)
            done.append(f"published {attempt.name}, finished before a crash")
        elif attempt.state == "running" and not running_elsewhere:
            host.mark_interrupted(attempt)
            done.append(f"marked {attempt.name} interrupted")
    host.latest_follows()
    return done
