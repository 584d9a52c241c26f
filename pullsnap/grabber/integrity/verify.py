"""`grabber verify HOST [SNAPSHOT] [--sample FRACTION]`: re-read stored files
and compare them with the snapshots' manifests (manifest.py).

A file is read once per inode: the snapshots that share it by hard link
share the verdict, and every mismatch is reported with all of them, since a
flipped byte in one is a flipped byte in each.  Files missing from a tree or
present without a manifest entry are mismatches too.  The outcome goes to
`<repository>/<host>/.verify.json` for `grabber status`:

    {"time": "<UTC ISO>", "snapshot": "<name or all>", "result": "ok"|"mismatch",
     "checked": N, "mismatches": ["<snapshot>/<path>", ...], "sample": F}

No host lock is taken (a verify may take hours and must not hold up
backups); a snapshot pruned meanwhile is skipped, not reported.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pullsnap import errors
from pullsnap.grabber import hints
from pullsnap.grabber.integrity import manifest, tree
from pullsnap.grabber.store import atomicfile
from pullsnap.grabber.store.repository import Attempt, HostRepo, iso
from pullsnap.grabber.views.treediff import show
from pullsnap.units import human_size

VERIFY_FILE = ".verify.json"


@dataclass(frozen=True)
class Mismatch:
    snapshot: str
    path: bytes
    why: str
    inode: int = 0
    # The tree's device: a btrfs snapshot is a subvolume with a device of
    # its own, and keeps the inode numbers of the one it was made from, so
    # only (device, inode) says "the same file".
    device: int = 0

    def where(self) -> str:
        return f"{self.snapshot}/{os.fsdecode(self.path)}"

    def shown(self) -> str:
        """`where()` as one printable line (the backed-up host chose the name)."""
        return f"{self.snapshot}/{show(self.path)}"


@dataclass
class Outcome:
    checked: int = 0
    checked_bytes: int = 0
    snapshots: list[str] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    without_manifest: list[str] = field(default_factory=list)


def _targets(host: HostRepo, snapshot: str | None, config: str = "") -> list[Attempt]:
    trees = [a for a in host.attempts() if a.has_tree and a.record]
    if snapshot is None:
        return trees
    chosen = [a for a in trees if a.name == snapshot]
    if not chosen:
        raise errors.NoSuchSnapshot(host.host, snapshot, hints.grabber(config, "list", host.host))
    return chosen


def verify_snapshot(
    host: HostRepo, name: str, entries: dict[bytes, manifest.Entry], keep: Callable[[], bool],
    cache: dict[tuple[int, int], tuple[str, int]], outcome: Outcome,
) -> None:  # fmt: skip
    """Walk one tree; hash each sampled file not yet hashed (by device and inode)."""
    seen: set[bytes] = set()
    root = tree.open_tree(host.tree(name))
    device = os.fstat(root).st_dev
    try:
        for dir_fd, file_name, path, inode in tree.walk_files(root):
            key = (device, inode)
            seen.add(path)
            entry = entries.get(path)
            if entry is None:
                outcome.mismatches.append(
                    Mismatch(name, path, "not in the manifest", inode, device)
                )
                continue
            if not keep():
                continue
            if key not in cache:
                try:
                    digest, size, _ = tree.hash_file(dir_fd, file_name)
                except PermissionError:
                    outcome.unreadable.append(f"{name}/{show(path)}")
                    continue
                except OSError as e:
                    outcome.mismatches.append(
                        Mismatch(name, path, f"unreadable: {e}", inode, device)
                    )
                    continue
                cache[key] = (digest, size)
                outcome.checked_bytes += size
            digest, size = cache[key]
            outcome.checked += 1
            if digest != entry.digest or size != entry.size:
                why = f"content differs from the manifest (stored by the {entry.origin} run)"
                outcome.mismatches.append(Mismatch(name, path, why, inode, device))
    finally:
        os.close(root)
    for path in sorted(set(entries) - seen):
        if _is_gone(host.tree(name), path):
            outcome.mismatches.append(Mismatch(name, path, "missing from the tree"))
        else:
            # Below a directory this user cannot list (a --super tree keeps
            # its owners' modes): not read, which is not missing.
            outcome.unreadable.append(f"{name}/{show(path)}")


def _is_gone(root: str, path: bytes) -> bool:
    """Whether the tree lacks `path`: lstat says ENOENT (or a component is no
    directory); a path this user may not look up is not gone."""
    try:
        os.lstat(os.path.join(os.fsencode(root), path))
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def sharing(host: HostRepo, trees: Sequence[Attempt], m: Mismatch) -> list[str]:
    """Every snapshot of the host that holds the mismatching file's inode."""
    if not m.inode:
        return [m.snapshot]
    found = []
    for attempt in trees:
        candidates = {m.path}
        entries = manifest.read(host.manifest_path(attempt.name)) or {}
        candidates |= {e.path for e in entries.values() if e.inode == m.inode}
        for path in candidates:
            try:
                st = os.lstat(os.path.join(os.fsencode(host.tree(attempt.name)), path))
            except OSError:
                continue
            if st.st_ino == m.inode and (not m.device or st.st_dev == m.device):
                found.append(attempt.name)
                break
    return found or [m.snapshot]


def verify_host(host: HostRepo, snapshot: str | None, sample: float,
                rng: random.Random | None = None, config: str = "") -> Outcome:  # fmt: skip
    rng = rng or random.Random()
    keep = (lambda: True) if sample >= 1 else (lambda: rng.random() < sample)
    outcome = Outcome()
    cache: dict[tuple[int, int], tuple[str, int]] = {}
    for attempt in _targets(host, snapshot, config):
        entries = manifest.read(host.manifest_path(attempt.name))
        if entries is None:
            outcome.without_manifest.append(attempt.name)
            continue
        try:
            verify_snapshot(host, attempt.name, entries, keep, cache, outcome)
        except FileNotFoundError:
            continue  # pruned while we looked
        outcome.snapshots.append(attempt.name)
    # A snapshot pruned while we walked it is not a finding.
    outcome.mismatches = [m for m in outcome.mismatches if os.path.isdir(host.tree(m.snapshot))]
    return outcome


def report(host: HostRepo, outcome: Outcome, trees: Sequence[Attempt]) -> list[str]:
    """One line per damaged file (per inode: hard links share the damage)."""
    lines = []
    done: set[tuple[int, int, bytes]] = set()
    for m in outcome.mismatches:
        key = (m.device, m.inode, b"") if m.inode else (0, 0, m.where().encode())
        if key in done:
            continue
        done.add(key)
        shared = sharing(host, trees, m)
        lines.append(
            f"mismatch: {host.host}/{m.shown()}: {m.why}; the same file is in "
            f"snapshot{'s' if len(shared) > 1 else ''} {', '.join(shared)}"
        )
    for name in outcome.without_manifest:
        lines.append(f"note: {host.host}/{name} has no manifest (made before manifests): skipped")
    return lines


def remember(
    host: HostRepo, outcome: Outcome, snapshot: str | None, sample: float, now: dt.datetime
) -> bool:
    """Write `<host>/.verify.json` for `grabber status`; False when it is left alone.

    A verify that could not read every file (run as the grabber user on
    --super snapshots) and found nothing wrong in what it read says less than
    one that read them all: it does not replace what is there.  What it did
    find wrong is real (an unreadable file is never a mismatch) and is saved."""
    if outcome.unreadable and not outcome.mismatches:
        return False
    atomicfile.replace_json(
        os.path.join(host.path, VERIFY_FILE),
        {
            "time": iso(now),
            "snapshot": snapshot or "all",
            "result": "mismatch" if outcome.mismatches else "ok",
            "checked": outcome.checked,
            "mismatches": [m.where() for m in outcome.mismatches],
            "sample": sample,
            "unreadable": len(outcome.unreadable),
        },
        owner_of=host.path,
    )
    return True


def summary(host: HostRepo, outcome: Outcome) -> str:
    """The last line `grabber verify` prints."""
    unread = f", {len(outcome.unreadable):,} unreadable" if outcome.unreadable else ""
    return (
        f"verify {host.host}: {outcome.checked:,} files ({human_size(outcome.checked_bytes)} read)"
        f" in {len(outcome.snapshots)} snapshot(s){unread}: "
        + (f"{len(outcome.mismatches)} mismatch(es)" if outcome.mismatches else "ok")
    )


def require_all_readable(outcome: Outcome, again: str = "grabber verify") -> None:
    """Unreadable files and nothing else wrong: say to run as root (`again`:
    the command to run), and that the saved result was left as it was."""
    if outcome.unreadable and not outcome.mismatches:
        raise errors.RunFailed(
            f"{len(outcome.unreadable)} file(s) could not be read as this user (e.g. "
            f"{outcome.unreadable[0]}); nothing read differed, the last saved verify stays: "
            f"run as root: {again}"
        )
