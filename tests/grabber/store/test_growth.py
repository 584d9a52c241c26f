"""What a new hardlinked snapshot took on disk (store/growth.py): against a
model that lstats every inode, on trees built the way rsync --link-dest
builds them, and shown the tree by the manifest walk."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from pullsnap.grabber.integrity import manifest, tree
from pullsnap.grabber.store.growth import HardlinkMeter, Tally
from pullsnap.grabber.store.space import Space


def model(new: Path) -> Space:
    """Every inode of `new` none of whose links is outside it, directories too."""
    links: dict[int, list[os.stat_result]] = {}
    for dirpath, dirs, files in os.walk(new):
        for name in [".", *dirs, *files] if dirpath == str(new) else [*dirs, *files]:
            st = os.lstat(os.path.join(dirpath, name))
            links.setdefault(st.st_ino, []).append(st)
    found = Space()
    for seen in links.values():
        # A directory's link count is its "." and its subdirectories' "..".
        if stat.S_ISDIR(seen[0].st_mode) or len(seen) >= seen[0].st_nlink:
            found += Space(seen[0].st_blocks * 512, 1)
    return found


def snapshot_pair(root: Path) -> tuple[Path, Path]:
    """A base snapshot and a new one as rsync --link-dest leaves them: most
    files hard links of the base's, some stored anew, one linked twice."""
    base, new = root / "base", root / "new"
    for top in (base, new):
        (top / "etc" / "deep").mkdir(parents=True)
    (base / "etc" / "same").write_bytes(b"s" * 10_000)
    os.link(base / "etc" / "same", new / "etc" / "same")
    (base / "etc" / "changed").write_bytes(b"old")
    (new / "etc" / "changed").write_bytes(b"n" * 50_000)  # stored anew
    (new / "etc" / "deep" / "added").write_bytes(b"a" * 9000)
    os.link(new / "etc" / "deep" / "added", new / "etc" / "twin")  # -H inside the tree
    os.symlink("same", base / "etc" / "link")
    os.link(base / "etc" / "link", new / "etc" / "link", follow_symlinks=False)
    os.symlink("changed", new / "etc" / "newlink")
    os.link(base / "etc" / "same", new / "etc" / "renamed")  # rsync -H: a base inode elsewhere
    return base, new


def test_the_meter_counts_what_only_the_new_tree_holds(tmp_path: Path) -> None:
    base, new = snapshot_pair(tmp_path)
    bases = [manifest.build(str(base), "base", set(), [])[0]]
    meter = HardlinkMeter()
    by_path = {e.path: e for e in bases[0]}
    manifest.build(str(new), "new", {b"etc/changed", b"etc/deep/added", b"etc/twin"},
                   [by_path], meter=meter)  # fmt: skip
    found = meter.result()
    assert found == model(new)
    # The root, etc, deep; changed, added (once for its two links), newlink.
    assert found.inodes == 6
    assert found.bytes >= 50_000 + 9000


def test_a_metadata_only_copy_is_counted(tmp_path: Path) -> None:
    """rsync --super stores a file anew when only its mode changed (itemized cf)."""
    base, new = tmp_path / "base", tmp_path / "new"
    base.mkdir()
    new.mkdir()
    (base / "big").write_bytes(b"b" * 300_000)
    (new / "big").write_bytes(b"b" * 300_000)
    os.chmod(new / "big", 0o600)
    bases = [{e.path: e for e in manifest.build(str(base), "base", set(), [])[0]}]
    meter = HardlinkMeter()
    manifest.build(str(new), "new", {b"big"}, bases, meter=meter)
    assert meter.result().bytes >= 300_000 and meter.result().inodes == 2


class Counting(HardlinkMeter):
    def __init__(self) -> None:
        super().__init__()
        self.entries = 0
        self.directories = 0

    def directory(self, fd: int) -> None:
        self.directories += 1
        super().directory(fd)

    def entry(self, dir_fd: int, name: bytes, inode: int) -> None:
        self.entries += 1
        super().entry(dir_fd, name, inode)


def test_a_run_that_changed_nothing_shows_the_meter_only_its_directories(
    tmp_path: Path,
) -> None:
    base, new = tmp_path / "base", tmp_path / "new"
    for i in range(20):
        (base / f"d{i}").mkdir(parents=True)
        (new / f"d{i}").mkdir(parents=True)
        for j in range(10):
            (base / f"d{i}" / f"f{j}").write_text(f"{i} {j}")
            os.link(base / f"d{i}" / f"f{j}", new / f"d{i}" / f"f{j}")
    bases = [{e.path: e for e in manifest.build(str(base), "base", set(), [])[0]}]
    meter = Counting()
    manifest.build(str(new), "new", set(), bases, meter=meter)
    assert (meter.directories, meter.entries) == (21, 0)  # no lstat of a linked file
    assert meter.result() == model(new) and meter.result().inodes == 21


def test_without_a_base_manifest_the_links_still_tell(tmp_path: Path) -> None:
    """A base from before manifests: every entry is looked at, nothing is
    counted twice, and what the base shares is not the new tree's."""
    _, new = snapshot_pair(tmp_path)
    meter = HardlinkMeter()
    manifest.build(str(new), "new", set(), [], meter=meter)
    assert meter.result() == model(new)


def test_the_walk_shows_every_kind_of_entry(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    os.symlink("f", tmp_path / "l")
    os.mkfifo(tmp_path / "p")
    seen: list[bytes] = []

    class Shown:
        def directory(self, fd: int) -> None:
            seen.append(b"<dir>")

        def entry(self, dir_fd: int, name: bytes, inode: int) -> None:
            seen.append(name)

    root = tree.open_tree(str(tmp_path))
    try:
        files = [path for _, _, path, _ in tree.walk_files(root, shown=Shown())]
    finally:
        os.close(root)
    assert files == [b"f"]
    assert sorted(seen) == [b"<dir>", b"<dir>", b"l", b"p"]


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(1, 4), st.integers(0, 3)), max_size=30))
def test_the_tally_counts_an_inode_once_its_links_are_all_met(
    inodes: list[tuple[int, int, int]],
) -> None:
    """(inode, its links in the tree, its links elsewhere): met as often as
    it has links in the tree, it is the tree's alone when it has none elsewhere."""
    unique = {inode: (inside, outside) for inode, inside, outside in inodes}
    tally = Tally()
    for inode, (inside, outside) in unique.items():
        tally.first(inode, 4096, inside + outside)
        for _ in range(inside - 1):
            assert tally.met(inode) == (inside + outside > 1)
    alone = sum(1 for _, outside in unique.values() if outside == 0)
    assert tally.result() == Space(4096 * alone, alone)
