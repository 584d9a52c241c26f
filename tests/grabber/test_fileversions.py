"""`grabber versions`: grouping by inode (pure), safe lookup inside snapshots."""

from __future__ import annotations

import os
import subprocess

import pytest

from pullsnap import errors
from pullsnap.grabber import fileversions
from pullsnap.grabber.fileversions import Sighting, Version
from pullsnap.grabber.repository import HostRepo


def test_group_runs_of_equal_inodes() -> None:
    seen = [Sighting("a", 1), Sighting("b", 1), Sighting("c", None), Sighting("d", 2),
            Sighting("e", 2), Sighting("f", 1)]  # fmt: skip
    assert fileversions.group(seen) == [
        Version(1, ("a", "b")),
        Version(None, ("c",)),
        Version(2, ("d", "e")),
        Version(1, ("f",)),  # the same inode again later is shown where it is
    ]
    assert fileversions.group([]) == []


@pytest.mark.parametrize("path", ["", "/", "/etc/../shadow", "..", "/./."])
def test_paths_that_name_no_file_are_refused(path: str) -> None:
    with pytest.raises(errors.UsageError):
        fileversions.components(path)


def test_components() -> None:
    assert fileversions.components("/etc//ssh/./sshd_config") == [b"etc", b"ssh", b"sshd_config"]
    assert fileversions.components("etc/hosts") == [b"etc", b"hosts"]


@pytest.mark.security
def test_lookup_never_passes_through_a_symlink(tmp_path) -> None:
    outside = tmp_path / "outside"
    (outside / "secret").parent.mkdir()
    (outside / "secret").write_text("the backup host's own file")
    tree = tmp_path / "snap"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hosts").write_text("x")
    os.symlink(str(outside), tree / "escape")
    assert fileversions.lookup(str(tree), [b"escape", b"secret"]) is None
    assert fileversions.lookup(str(tree), [b"etc", b"hosts", b"more"]) is None
    hit = fileversions.lookup(str(tree), [b"escape"])
    assert hit is not None and os.path.islink(hit[0])
    assert fileversions.lookup(str(tree), [b"etc", b"missing"]) is None


def test_versions_across_linked_snapshots(tmp_path) -> None:
    host = HostRepo(str(tmp_path), "web1")
    host.ensure()
    names = ["2026-11-01T000000Z", "2026-11-02T000000Z", "2026-11-03T000000Z"]
    first = host.tree(names[0])
    os.makedirs(f"{first}/etc")
    with open(f"{first}/etc/hosts", "w") as f:
        f.write("one\n")
    subprocess.run(["cp", "-al", first, host.tree(names[1])], check=True)
    subprocess.run(["cp", "-al", first, host.tree(names[2])], check=True)
    os.unlink(f"{host.tree(names[2])}/etc/hosts")
    with open(f"{host.tree(names[2])}/etc/hosts", "w") as f:
        f.write("two, longer\n")
    for name in names:
        host.write_record(name, {"state": "complete"})
    versions = fileversions.group(fileversions.sightings(host, [b"etc", b"hosts"]))
    assert [v.snapshots for v in versions] == [tuple(names[:2]), (names[2],)]
    assert [v.meta.size for v in versions if v.meta] == [4, 12]
    text = fileversions.render(host, "/etc/hosts", versions)
    assert text.startswith("/etc/hosts on web1: 2 versions in 3 snapshots")
    assert f"{names[0]} .. {names[1]}" in text
    assert f"{host.tree(names[1])}/etc/hosts" in text  # copy from the newest holder
    inside = f"{host.tree(names[0])}/etc/hosts"
    assert fileversions.strip_snapshot_prefix(host, inside) == "/etc/hosts"
