"""What a repository on the stage's btrfs takes: the "repo" and "added" columns.

du(1) adds up st_blocks once per inode.  A btrfs snapshot is another
subvolume, its files other inodes, so du counts every extent a snapshot
shares with the one before it again: a no-change run "adds" the whole tree.
Here instead, after `btrfs filesystem sync` (a file just written has no
extents until its delayed allocation is written out):

    data      `btrfs filesystem du -s --raw REPO`: Exclusive + Set shared,
              every data extent the repository references counted once,
              whether other snapshots or hardlinks share it
              (btrfs-filesystem(8) "du"); files small enough to be stored
              inline are not data extents, they live in the metadata
    metadata  the filesystem's metadata in use, one copy of a DUP profile
              (`btrfs filesystem df --raw`, "Metadata" used=): inodes,
              directories, inline files, checksums, snapshot roots

Metadata is a figure of the whole filesystem, so only its growth across a
step is the repository's: nothing else writes to the stage's btrfs while a
contender runs (older repositories wait in <btrfs>/trash, untouched, and
emptying the trash waits until btrfs has cleaned up what it deleted).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

METHOD = (
    "data extents, each once (`btrfs filesystem du -s`: Exclusive + Set shared of the "
    "repository), plus the growth of the filesystem's metadata (`btrfs filesystem df`, "
    "one copy), after `btrfs filesystem sync`"
)
_METADATA_USED = re.compile(r"^Metadata, [^:\n]*:.*\bused=([0-9]+)", re.MULTILINE)


class SpaceError(RuntimeError):
    """btrfs printed something this module cannot read."""


@dataclass(frozen=True)
class RepoSpace:
    data: int  # bytes of data extents the repository references, each once
    metadata: int  # bytes of metadata the whole filesystem uses (one copy)


def du_data(text: str, path: str) -> int:
    """Exclusive + Set shared of `path`'s row in `btrfs filesystem du --raw`
    output (columns Total, Exclusive, Set shared, Filename; "-" for none)."""
    for line in text.splitlines():
        fields = line.split(None, 3)
        if len(fields) == 4 and fields[3] == path and fields[0].isdigit():
            counts = [f for f in fields[1:3] if f != "-"]
            if not all(f.isdigit() for f in counts):
                raise SpaceError(f"btrfs filesystem du: no byte counts in {line.strip()!r}")
            return sum(int(f) for f in counts)
    raise SpaceError(f"btrfs filesystem du printed no line for {path}: {text.strip()[:200]!r}")


def df_metadata(text: str) -> int:
    """The bytes of metadata in use from `btrfs filesystem df --raw` output
    ("Metadata, DUP: total=N, used=N"; a filesystem between two profiles
    has a line for each)."""
    found = _METADATA_USED.findall(text)
    if not found:
        raise SpaceError(f"btrfs filesystem df printed no Metadata used=: {text.strip()[:200]!r}")
    return sum(int(n) for n in found)


def fields(made: RepoSpace, before: RepoSpace, after: RepoSpace) -> dict[str, int | str]:
    """A step's row: the repository's size after it (its data, and the
    metadata grown since the repository was `made`) and what the step added."""
    data, metadata = after.data - before.data, after.metadata - before.metadata
    return {"repo_bytes": after.data + after.metadata - made.metadata,
            "added_bytes": data + metadata, "added_data_bytes": data,
            "added_metadata_bytes": metadata, "space": "btrfs"}  # fmt: skip


class RepoMeter:
    """One repository's space across the steps of a repetition.  A step
    starts from what the last one ended with: nothing writes to the
    repository between steps, and measuring three snapshots of the full
    dataset takes seconds."""

    def __init__(self, repo: str, mount: str) -> None:
        self.repo, self.mount = repo, mount
        self.made: RepoSpace | None = None  # the fresh repository
        self.last: RepoSpace | None = None

    def before(self) -> None:
        if self.last is None:
            self.made = self.last = measure(self.repo, self.mount)

    def after(self) -> dict[str, int | str]:
        assert self.made is not None and self.last is not None, "before() first"
        now = measure(self.repo, self.mount)
        row = fields(self.made, self.last, now)
        self.last = now
        return row


def measure(repo: str, mount: str) -> RepoSpace:
    """The repository's data and the filesystem's metadata, written out first."""
    subprocess.run(["btrfs", "filesystem", "sync", mount], check=True, capture_output=True)
    du = _btrfs("filesystem", "du", "-s", "--raw", repo)
    df = _btrfs("filesystem", "df", "--raw", mount)
    return RepoSpace(du_data(du, repo), df_metadata(df))


def _btrfs(*args: str) -> str:
    done = subprocess.run(["btrfs", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SpaceError(f"btrfs {' '.join(args)} exited {done.returncode}: "
                         f"{done.stderr.strip()[:200]}")  # fmt: skip
    return done.stdout
