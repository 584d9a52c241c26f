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
succeeded and the record says so; `recover()` finishes that rename if a
crash came in between, and marks a "running" record whose run died as
"interrupted" (its tree is reused as an extra --link-dest).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pullsnap import caps
from pullsnap.errors import Locked, PullsnapError
from pullsnap.grabber.store.atomicfile import open_regular, read_json
from pullsnap.grabber.store.removal import remove_tree

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
        """Atomically: write a temporary file, fsync, rename over."""
        record = {"format": RECORD_FORMAT, "host": self.host, "name": name, **record}
        final = self.record_path(name)
        temp = final + ".tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            if os.geteuid() == 0:
                # An operator's `grabber accept`: the grabber's runs must still read it.
                st = os.stat(self.path)
                os.fchown(f.fileno(), st.st_uid, st.st_gid)
            json.dump(record, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.rename(temp, final)

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

    def publish(self, name: str) -> None:
        """`<name>.incomplete` becomes `<name>`; `latest` follows if it is the newest."""
        os.rename(self.incomplete(name), self.tree(name))
        newest = self.newest_good()
        if newest is not None and newest.name == name:
            self.point_latest(name)

    def point_latest(self, name: str) -> None:
        link = os.path.join(self.path, LATEST)
        temp = link + ".tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        os.symlink(name, temp)
        os.rename(temp, link)

    def recover(self, running_elsewhere: bool = False) -> list[str]:
        """Finish or mark what a crashed run left; return what was done."""
        done = []
        for attempt in self.attempts():
            if attempt.has_incomplete and not attempt.has_tree and attempt.state in GOOD_STATES:
                self.publish(attempt.name)
                done.append(f"published {attempt.name}, finished before a crash")
            elif attempt.state == "running" and not running_elsewhere:
                record = dict(attempt.record)
                record["state"] = "interrupted"
                record.setdefault("message", "the run ended without a verdict")
                self.write_record(attempt.name, record)
                done.append(f"marked {attempt.name} interrupted")
        latest = self.newest_good()
        if latest is not None and _readlink(os.path.join(self.path, LATEST)) != latest.name:
            self.point_latest(latest.name)
        return done

    def reusable_trees(self) -> list[str]:
        """Trees of interrupted or failed runs, newest first: extra --link-dest."""
        return [
            self.incomplete(a.name)
            for a in reversed(self.attempts())
            if a.has_incomplete and a.state in ("interrupted", "failed")
        ]

    def discard_incomplete(self, name: str) -> None:
        self._trash(self.incomplete(name), name + INCOMPLETE)

    def delete(self, name: str, remove: bool = True) -> None:
        """Remove a snapshot this grabber made; refuse anything else.

        The trees go to `.trash` by rename (atomic, instant); `remove=False`
        leaves emptying the trash to the caller, e.g. after it released the
        host lock, so that a large deletion never holds up the next run.
        """
        record = self.read_record(name) if parse_name(name) is not None else None
        if record is None or record.get("host") != self.host:
            raise PullsnapError(f"{self.path}/{name} does not look like a pullsnap snapshot")
        newest = self.newest_good()
        if newest is not None and newest.name == name:
            raise PullsnapError(f"{name} is the newest good snapshot of {self.host}")
        for path, label in ((self.tree(name), name), (self.incomplete(name), name + INCOMPLETE)):
            if _is_real_dir(path):
                self._trash(path, label, remove)
            elif os.path.lexists(path):
                raise PullsnapError(f"{path} is not a directory: left alone")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.manifest_path(name))
        os.unlink(self.record_path(name))

    def manifest_path(self, name: str) -> str:
        return os.path.join(self.path, name + MANIFEST)

    def _trash(self, path: str, label: str, remove: bool = True) -> None:
        trash = os.path.join(self.path, TRASH)
        with contextlib.suppress(FileExistsError):
            os.mkdir(trash, 0o700)
            self._owned_by_grabber(trash)
        target = os.path.join(trash, f"{label}.{os.getpid()}")
        # Moving a directory to another parent rewrites its "..", which needs
        # write permission on it (rename(2) EACCES); a tree copied from a
        # read-only "/" (mode 0555) has none until we give it back.
        # With --super the tree's top may be root's (a source of "/"): the
        # receiver's capabilities, held by the grabber, do what ours cannot.
        with caps.effective_while(("dac_override", "fowner")):
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_IWUSR:
                with contextlib.suppress(OSError):
                    os.chmod(path, stat.S_IMODE(st.st_mode) | stat.S_IWUSR)
            os.rename(path, target)
        if remove:
            remove_tree(target)

    def empty_trash(self) -> None:
        trash = os.path.join(self.path, TRASH)
        if os.path.isdir(trash):
            for entry in os.listdir(trash):
                remove_tree(os.path.join(trash, entry))

    @contextlib.contextmanager
    def lock(self, holder: dict[str, Any]) -> Iterator[None]:
        """Hold the host's flock; refuse with Locked if a run already holds it."""
        self.ensure()
        path = os.path.join(self.path, LOCK)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                raise Locked(_lock_message(self.host, os.pread(fd, 4096, 0))) from None
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
        path = os.path.join(self.path, LOCK)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            yield False
            return
        self._owned_by_grabber(path)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                yield False
                return
            if holder is not None:
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(holder).encode(), 0)
            yield True
        finally:
            os.close(fd)

    def _owned_by_grabber(self, path: str) -> None:
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
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False


def _lock_message(host: str, content: bytes) -> str:
    try:
        holder = json.loads(content.decode())
        if "by" in holder:
            return f"{host}: locked by {holder['by']} since {holder['since']} (pid {holder['pid']})"
        return f"{host}: already running since {holder['since']} (pid {holder['pid']})"
    except (ValueError, KeyError, TypeError):
        return f"{host}: already running"


def _is_real_dir(path: str) -> bool:
    """A directory, not a symlink to one (lstat)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


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
