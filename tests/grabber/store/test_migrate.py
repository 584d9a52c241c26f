"""Moving a host from the hardlink store to btrfs: the newest good snapshot
becomes a read-only subvolume whose files share the old ones' extents
(reflinks), with owners, modes and hard links kept; refused off btrfs,
without a snapshot, or while a run holds the host."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.grabber.store import btrfsioctl, migrate
from pullsnap.grabber.store.btrfsusage import exclusive_bytes
from pullsnap.grabber.store.migrate import MIGRATING, CannotMigrate
from pullsnap.grabber.store.repository import HostRepo
from tests.btrfsview import subvolume_flags
from tests.grabber.store.test_repository import HOST, N1, N2, good

NOW = "2026-11-22T02:00:00Z"
MIB = 1 << 20


def test_a_repository_off_btrfs_is_refused_with_the_fix(repo: HostRepo) -> None:
    good(repo, N1)
    said: list[str] = []
    with pytest.raises(CannotMigrate, match=r"web1: the repository is not on btrfs \(") as e:
        migrate.migrate(repo, NOW, said.append)
    assert str(e.value).endswith("move it to a btrfs filesystem first")
    assert e.value.exit_code == errors.FAILED
    assert said == [] and os.path.isdir(repo.tree(N1))


# --- on btrfs ----------------------------------------------------------------------------------


@pytest.fixture
def host(btrfs_dir: str) -> HostRepo:
    r = HostRepo(os.path.join(btrfs_dir, "repo"), HOST)
    r.ensure()
    return r


def _hardlinked(host: HostRepo) -> None:
    """N1 and N2 as the hardlink store leaves them: etc/hostname linked
    between them; in N2, a 1 MiB file, a pair linked to each other, a
    file and the top owned by someone else."""
    good(host, N1, host=HOST)
    good(host, N2, host=HOST)
    top = Path(host.tree(N2))
    os.unlink(top / "etc" / "hostname")
    os.link(Path(host.tree(N1), "etc", "hostname"), top / "etc" / "hostname")
    (top / "big").write_bytes(os.urandom(MIB))
    (top / "pair-a").write_bytes(b"pair\n")
    os.link(top / "pair-a", top / "pair-b")
    (top / "secret").write_bytes(b"root only\n")
    os.chown(top / "secret", 1234, 5678)
    os.chmod(top / "secret", 0o640)
    os.chown(top, 4321, 8765)
    host.point_latest(N2)


def _exclusive(path: str | Path) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        return exclusive_bytes(fd)
    finally:
        os.close(fd)


@pytest.mark.root
def test_the_newest_snapshot_becomes_a_read_only_subvolume_sharing_its_extents(
    host: HostRepo,
) -> None:
    _hardlinked(host)
    keep = os.path.join(os.path.dirname(host.path), "old-big")
    os.link(os.path.join(host.tree(N2), "big"), keep)  # the old inode outlives its tree
    assert _exclusive(keep) == MIB
    locked: list[bool] = []

    def say(line: str) -> None:
        locked.append(host.is_locked())
        said.append(line)

    said: list[str] = []
    assert migrate.migrate(host, NOW, say) == N2
    assert said == [f"{HOST}: copying {N2} into a subvolume with reflinks",
                    f"{HOST}: {N2} is a subvolume now; the next run builds on it"]  # fmt: skip
    assert locked == [True, True]  # a backup of the host waits meanwhile
    top = Path(host.tree(N2))
    assert subvolume_flags(str(top)) == (True, True)
    assert subvolume_flags(host.tree(N1)) == (False, False)  # older ones stay trees
    # No data was copied: the new file's extents are the old inode's.
    assert (top / "big").read_bytes() == Path(keep).read_bytes()
    assert _exclusive(top / "big") == 0 and _exclusive(keep) == 0
    # Owners, modes and the links inside the snapshot are kept.
    st = os.stat(top / "secret")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1234, 5678, 0o640)
    assert (os.stat(top).st_uid, os.stat(top).st_gid) == (4321, 8765)
    assert os.stat(top / "pair-a").st_ino == os.stat(top / "pair-b").st_ino
    assert (top / "etc" / "hostname").read_text() == N1
    # The plain tree went; nothing is left beside the snapshots.
    assert os.listdir(host.trash()) == []
    assert not os.path.lexists(host.tree(N2) + MIGRATING)
    assert [a.name for a in host.good()] == [N1, N2]

    again: list[str] = []
    assert migrate.migrate(host, NOW, again.append) == N2
    assert again == [f"{HOST}: {N2} is a subvolume already: nothing to do"]


@pytest.mark.root
def test_a_half_made_subvolume_of_an_interrupted_migration_is_replaced(host: HostRepo) -> None:
    _hardlinked(host)
    parent = btrfsioctl.open_dir(host.path)
    try:
        btrfsioctl.create_subvolume(parent, N2 + MIGRATING)
    finally:
        os.close(parent)
    Path(host.tree(N2) + MIGRATING, "big").write_bytes(b"half")
    migrate.migrate(host, NOW, lambda _: None)
    assert Path(host.tree(N2), "big").stat().st_size == MIB
    assert not os.path.lexists(host.tree(N2) + MIGRATING)


@pytest.mark.root
def test_a_failed_copy_leaves_the_snapshot_as_it_was(
    host: HostRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hardlinked(host)
    monkeypatch.setattr(migrate, "CP", "/bin/false")
    with pytest.raises(CannotMigrate) as e:
        migrate.migrate(host, NOW, lambda _: None)
    assert str(e.value) == (f"{HOST}: cp --reflink=always: failed (both trees must be on "
                            "the same btrfs filesystem)")  # fmt: skip
    assert not os.path.lexists(host.tree(N2) + MIGRATING)
    assert subvolume_flags(host.tree(N2)) == (False, False)
    assert Path(host.tree(N2), "big").stat().st_size == MIB


@pytest.mark.root
def test_nothing_to_migrate_or_a_run_holding_the_host_is_refused(host: HostRepo) -> None:
    with pytest.raises(CannotMigrate, match="no good snapshot to migrate"):
        migrate.migrate(host, NOW, lambda _: None)
    _hardlinked(host)
    with host.lock({"pid": 1, "since": NOW, "by": "a run"}), pytest.raises(errors.Locked):
        migrate.migrate(host, NOW, lambda _: None)
    assert subvolume_flags(host.tree(N2)) == (False, False)
