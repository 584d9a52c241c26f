"""`grabber versions`: grouping by inode (pure), safe lookup inside snapshots."""

from __future__ import annotations

import os
import subprocess

import pytest

from pullsnap import errors
from pullsnap.grabber.store.repository import HostRepo
from pullsnap.grabber.views import fileversions
from pullsnap.grabber.views.fileversions import Sighting, Version


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


def test_a_path_longer_than_the_system_takes_is_one_line(tmp_path, capsys) -> None:
    """rsync stores paths of up to 4096 bytes below its target, so below the
    repository one can be longer than PATH_MAX: one line, no traceback."""
    from pullsnap.grabber.cli import main

    host = HostRepo(str(tmp_path / "repo"), "web1")
    host.ensure()
    name = "2026-11-25T020000Z"
    parts = [f"x{level:02d}" + "y" * 250 for level in range(16)]
    os.makedirs(host.tree(name))
    fd = os.open(host.tree(name), os.O_RDONLY)
    try:
        for part in parts:
            os.mkdir(part, dir_fd=fd)
            sub = os.open(part, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = sub
        os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    host.write_record(name, {"state": "complete"})
    conf = tmp_path / "grabber.toml"
    conf.write_text(f'repository = "{host.root}"\n')
    path = "/" + "/".join([*parts, "f"])
    try:
        code = main(["grabber", "--config", str(conf), "versions", "web1", path])
    finally:
        subprocess.run(["rm", "-rf", host.path], check=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == errors.FAILED
    assert len(err) == 1 and err[0].endswith(": File name too long"), err
