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
    usage()         what each tree holds, and what only it holds (bytes, inodes)
    meter(name)     measures what the new snapshot `name` took on disk, shown
                    its tree by the manifest walk that follows every run
    added(attempt)  what a snapshot took on disk when it was made (bytes,
                    inodes): the free-space guard's growth, the "added" figure

Records, names, the host lock and `latest` are the same for every store
(repository.HostRepo); `open_store` picks the store of a host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pullsnap import errors
from pullsnap.grabber.store import space
from pullsnap.grabber.store.repository import Attempt, HostRepo
from pullsnap.grabber.store.space import Space

if TYPE_CHECKING:
    from pullsnap.config import GrabberConfig


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
    # True: rsync hard-links unchanged files from `bases` (--link-dest), and
    # the receiver may write there.  False (btrfs): the tree already holds
    # the first base's files (a writable snapshot of it), rsync updates it
    # in place and the receiver sees nothing else.
    link: bool = True


@dataclass(frozen=True)
class TreeUsage:
    name: str  # snapshot name, "<name>.incomplete" for a leftover tree
    state: str
    size: int  # what the tree references
    unique: int  # what deleting only this tree would free
    unique_inodes: int = 0  # the inodes that deletion would free

    @property
    def alone(self) -> Space:
        """What only this tree holds: deleting it alone frees this."""
        return Space(self.unique, self.unique_inodes)


@dataclass(frozen=True)
class HostUsage:
    trees: tuple[TreeUsage, ...]
    total: int  # what the host's trees take, shared data once
    unreadable: int = 0  # directories that could not be listed (not root?)
    inodes: int = 0  # the inodes the host's trees take, each once

    @property
    def held(self) -> Space:
        return Space(self.total, self.inodes)


class Meter(Protocol):
    """Measures what a new snapshot took on disk, beyond what was there
    before it.  The manifest walk, which reads every run's new tree once
    anyway, shows it the tree: each directory (opened) and each other entry
    whose inode is not the one the base's manifest has at that path; a
    store that can tell otherwise (a filesystem's own accounting) may
    ignore them."""

    def directory(self, fd: int) -> None: ...

    def entry(self, dir_fd: int, name: bytes, inode: int) -> None: ...

    def result(self) -> Space: ...


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

    def meter(self, name: str) -> Meter: ...

    def written_after(self, name: str) -> int | None:
        """None when a file the run wrote has an inode the base's manifest
        does not have at its path (hard links); else a time (ns): a file
        whose ctime is not before it may have been written by the run."""
        ...

    def added(self, attempt: Attempt) -> Space:
        """What `attempt`'s snapshot took on disk when it was made (what its
        Meter measured, kept in its record as "added")."""
        ...


def recorded_added(record: Mapping[str, Any]) -> Space:
    """What a record says its snapshot took (pure): the run's measurement
    ("added"), else, in a record from before it was measured, rsync's
    transferred size and no inodes."""
    measured = space.from_record(record.get("added"))
    if measured is not None:
        return measured
    stats = record.get("stats")
    transferred = stats.get("transferred_size", 0) if isinstance(stats, Mapping) else 0
    return Space(transferred if type(transferred) is int and transferred > 0 else 0, 0)


def open_store(host: HostRepo, kind: str = "auto", strict: bool = False) -> Store:
    """The store of `host`'s snapshots: `kind` as configured ("auto",
    "hardlink", "btrfs"), settled by storekind.choose; `strict` for a run."""
    from pullsnap.grabber.store import storekind

    return storekind.open_kind(host, kind, strict)


def store_of(cfg: GrabberConfig, host: str) -> Store:
    """A host's store in the configured repository, as configured."""
    return open_store(HostRepo(cfg.repository, host), cfg.store)


def recover(store: Store, running_elsewhere: bool = False) -> list[str]:
    """Finish or mark what a crashed run left (host lock held); say what was done.

    A tree whose record says it finished is published; a "running" record
    is marked "interrupted" (its tree is built on by the next run).

    A record that cannot be rewritten for want of space or inodes stays
    "running" (every view reads that as interrupted while the host lock is
    free) and the next run with room marks it: recovery never needs space.
    """
    host = store.host
    done = []
    for attempt in host.attempts():
        if attempt.unpublished:
            store.publish(attempt.name)
            done.append(f"published {attempt.name}, finished before a crash")
        elif attempt.state == "running" and not running_elsewhere:
            try:
                host.mark_interrupted(attempt)
            except errors.NoSpace:
                done.append(f"{attempt.name} left unmarked (no space to rewrite its record)")
                continue
            done.append(f"marked {attempt.name} interrupted")
    try:
        host.latest_follows()
    except errors.NoSpace:
        done.append("latest left as it was (no space for the new link)")
    return done
