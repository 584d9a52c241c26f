"""The snapshot repository on the backup host.

    <repository>/                       0700, the grabber user's
      <host>/                           0700
        2026-11-25T141500Z/             a good snapshot: a plain tree
        2026-11-25T141500Z.json         its status record
        2026-11-26T020000Z.incomplete/  in progress, or left by an interrupted run
        2026-11-26T020000Z.json         state "running" / "interrupted" / "failed"
        latest -> 2026-11-25T141500Z    moves only on success
        .lock                           flock(2): a killed run leaves no stale lock
        .trash/                         snapshots being deleted

A tree is renamed from `<name>.incomplete` to `<name>` only after rsync
succeeded and the record says so; `base.recover` finishes that rename if a
crash came in between, and marks a "running" record whose run died as
"interrupted" (its tree is reused as an extra --link-dest).  The trees
themselves are the store's (base.py, hardlink.py); this module keeps what
every store shares: names, records, attempts, `latest` and the host lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pullsnap import errors
from pullsnap.flock import try_flock
from pullsnap.grabber.store import atomicfile
from pullsnap.grabber.store.atomicfile import open_regular, read_json
from pullsnap.grabber.store.space import is_no_space

RECORD_FORMAT = 1
INCOMPLETE = ".incomplete"
RECORD = ".json"
MANIFEST = ".manifest"
LATEST = "latest"
LOCK = ".lock"
TRASH = ".trash"
NAME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2})(\d{2})(\d{2})Z\Z", re.ASCII)
GOOD_STATES = ("complete", "partial")


# --- pure naming ----------------------------------------------------------------


def snapshot_name(when: dt.datetime) -> str:
    """UTC, second resolution, sortable, no colons (rsync reads `a:b` as remote)."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")


def parse_name(name: str) -> dt.datetime | None:
    match = NAME_RE.match(name)
    if match is None:
        return None
    try:
        return dt.datetime(*(int(g) for g in match.groups()), tzinfo=dt.UTC)
    except ValueError:
        return None


def iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Attempt:
    """One run as the repository remembers it."""

    name: str
    state: str  # complete, partial, failed, running, interrupted, unknown
    has_tree: bool  # <name>/ exists
    has_incomplete: bool  # <name>.incomplete/ exists
    record: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def when(self) -> dt.datetime:
        parsed = parse_name(self.name)
        assert parsed is not None
        return parsed

    @property
    def good(self) -> bool:
        return self.has_tree and self.state in GOOD_STATES and not self.record.get("suspect")

    @property
    def unpublished(self) -> bool:
        """Finished (its record says so), but a crash came before the rename."""
        return self.has_incomplete and not self.has_tree and self.state in GOOD_STATES


def classify(name: str, record: dict[str, Any] | None, tree: bool, incomplete: bool) -> Attempt:
    """What an attempt is, from its record and which trees exist (pure)."""
    state = "unknown" if record is None else str(record.get("state", "unknown"))
    return Attempt(name, state, tree, incomplete, record or {})


# --- the disk -------------------------------------------------------------------


class HostRepo:
    """One host's directory in the repository."""

    def __init__(self, root: str, host: str) -> None:
        self.root = root
        self.host = host
        self.path = os.path.join(root, host)

    def ensure(self) -> None:
        for path in (self.root, self.path):
            with contextlib.suppress(FileExistsError):
                os.mkdir(path, 0o700)

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def tree(self, name: str) -> str:
        return os.path.join(self.path, name)

    def incomplete(self, name: str) -> str:
        return os.path.join(self.path, name + INCOMPLETE)

    def record_path(self, name: str) -> str:
        return os.path.join(self.path, name + RECORD)

    # records

    def read_record(self, name: str) -> dict[str, Any] | None:
        record = read_json(self.record_path(name))  # a regular file, never a link or FIFO
        return record if isinstance(record, dict) else None

    def write_record(self, name: str, record: dict[str, Any]) -> None:
        """Atomically (atomicfile); an operator's command run as root (`grabber
        accept`) leaves it the grabber user's, whose runs must still read it.
        A full filesystem (no block, or no inode for the temporary file) is
        NoSpace, the run's no-space outcome."""
        record = {"format": RECORD_FORMAT, "host": self.host, "name": name, **record}
        try:
            atomicfile.replace_json(self.record_path(name), record, owner_of=self.path)
        except OSError as e:
            if not is_no_space(e):
                raise
            raise errors.NoSpace(
                f"{self.host}: cannot write the record of {name}: {e.strerror}: the "
                f"repository's filesystem is out of space or inodes"
            ) from None

    # listing

    def attempts(self) -> list[Attempt]:
        try:
            entries = os.listdir(self.path)
        except FileNotFoundError:
            return []
        names: set[str] = set()
        for entry in entries:
            base = entry
            for suffix in (INCOMPLETE, RECORD):
                if entry.endswith(suffix):
                    base = entry[: -len(suffix)]
            if parse_name(base) is not None:
                names.add(base)
        found = []
        for name in sorted(names):
            tree = os.path.isdir(self.tree(name)) and not os.path.islink(self.tree(name))
            incomplete = os.path.isdir(self.incomplete(name))
            found.append(classify(name, self.read_record(name), tree, incomplete))
        return found

    def good(self) -> list[Attempt]:
        return [a for a in self.attempts() if a.good]

    def recent_good(self, count: int) -> list[Attempt]:
        """The newest `count` good snapshots, oldest first, reading only the
        records it needs (every run weighs every host's recent growth)."""
        try:
            entries = os.listdir(self.path)
        except FileNotFoundError:
            return []
        names = sorted(
            (e.removesuffix(RECORD) for e in entries if e.endswith(RECORD)), reverse=True
        )
        found: list[Attempt] = []
        for name in names:
            if len(found) == count:
                break
            if parse_name(name) is None or not os.path.isdir(self.tree(name)):
                continue
            tree = not os.path.islink(self.tree(name))
            attempt = classify(name, self.read_record(name), tree, False)
            if attempt.good:
                found.append(attempt)
        return found[::-1]

    def newest_good(self) -> Attempt | None:
        good = self.good()
        return good[-1] if good else None

    def new_name(self, now: dt.datetime) -> str:
        """A name not used by any attempt (waits out a same-second clash)."""
        name = snapshot_name(now)
        taken = {a.name for a in self.attempts()}
        while name in taken:
            now += dt.timedelta(seconds=1)
            name = snapshot_name(now)
        return name

    # state changes (call with the host lock held)

    def point_latest(self, name: str) -> None:
        link = os.path.join(self.path, LATEST)
        temp = link + ".tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        try:
            os.symlink(name, temp)
        except OSError as e:
            if not is_no_space(e):
                raise
            raise errors.NoSpace(
                f"{self.host}: cannot point latest at {name}: {e.strerror} (the next run does)"
            ) from None
        os.rename(temp, link)

    def latest_follows(self) -> None:
        """`latest` points at the newest good snapshot (if there is one)."""
        newest = self.newest_good()
        if newest is not None and _readlink(os.path.join(self.path, LATEST)) != newest.name:
            self.point_latest(newest.name)

    def mark_interrupted(self, attempt: Attempt) -> None:
        """A "running" record whose run died without a verdict."""
        record = dict(attempt.record)
        record["state"] = "interrupted"
        record.setdefault("message", "the run ended without a verdict")
        self.write_record(attempt.name, record)

    def check_deletable(self, name: str) -> None:
        """Refuse to delete what this grabber did not make, and the newest good snapshot."""
        record = self.read_record(name) if parse_name(name) is not None else None
        if record is None or record.get("host") != self.host:
            raise errors.NotOurSnapshot(self.path, name)
        newest = self.newest_good()
        if newest is not None and newest.name == name:
            raise errors.NewestGood(name, self.host)

    def forget(self, name: str) -> None:
        """Remove a deleted snapshot's manifest and record (its trees are gone)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.manifest_path(name))
        os.unlink(self.record_path(name))

    def manifest_path(self, name: str) -> str:
        return os.path.join(self.path, name + MANIFEST)

    def trash(self) -> str:
        return os.path.join(self.path, TRASH)

    # the lock

    def _lock_fd(self) -> int:
        path = os.path.join(self.path, LOCK)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)

    @contextlib.contextmanager
    def lock(self, holder: dict[str, Any]) -> Iterator[None]:
        """Hold the host's flock; refuse with Locked if a run already holds it."""
        self.ensure()
        fd = self._lock_fd()
        try:
            if not try_flock(fd):
                raise errors.Locked(_lock_message(self.host, os.pread(fd, 4096, 0)))
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def try_lock(self, holder: dict[str, Any] | None = None) -> Iterator[bool]:
        """Hold the host's flock if it is free (True), else do nothing (False).

        `holder` (with "by": what holds it) replaces the last run's entry in
        the lock file while held, so a run refused meanwhile names the right
        process."""
        try:
            fd = self._lock_fd()
        except FileNotFoundError:
            yield False
            return
        self.owned_by_grabber(os.path.join(self.path, LOCK))
        try:
            if not try_flock(fd):
                yield False
                return
            if holder is not None:
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(holder).encode(), 0)
            yield True
        finally:
            os.close(fd)

    def owned_by_grabber(self, path: str) -> None:
        """When root (an operator's `grabber prune`) made `path`, give it to the
        host directory's owner: the grabber's own runs must still use it."""
        if os.geteuid() == 0:
            st = os.stat(self.path)
            os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)

    def lock_holder(self) -> str:
        """Who holds the lock, as the refusal says it."""
        try:
            with os.fdopen(open_regular(os.path.join(self.path, LOCK)), "rb") as f:
                return _lock_message(self.host, f.read(4096))
        except OSError:
            return f"{self.host}: already running"

    def is_locked(self) -> bool:
        path = os.path.join(self.path, LOCK)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            return not try_flock(fd, shared=True)
        except OSError:
            return True  # cannot tell: as if a run held it
        finally:
            os.close(fd)


def _lock_message(host: str, content: bytes) -> str:
    try:
        holder = json.loads(content.decode())
        if "by" in holder:
            return f"{host}: locked by {holder['by']} since {holder['since']} (pid {holder['pid']})"
        return f"{host}: already running since {holder['since']} (pid {holder['pid']})"
    except (ValueError, KeyError, TypeError):
        return f"{host}: already running"


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def hosts(root: str) -> list[str]:
    """Host directories in the repository, sorted."""
    try:
        entries = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(
        e for e in entries if not e.startswith(".") and os.path.isdir(os.path.join(root, e))
    )
