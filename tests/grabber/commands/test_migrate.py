"""`grabber migrate HOST` (commands/migrate.py): what it says and returns
for a host it cannot move, and, on the loop-mounted btrfs, the host's newest
snapshot moved into a subvolume while the older one stays a tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.grabber.store import btrfsioctl
from pullsnap.grabber.store.repository import HostRepo
from tests.grabber.commands.conftest import N1, N2, snapshot


def test_off_btrfs_it_fails_with_one_line_and_the_fix(repo, grabber) -> None:
    code, out, err = grabber("migrate", "web1")
    assert code == errors.FAILED and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "web1: the repository is not on btrfs" in err
    assert "move it to a btrfs filesystem first" in err
    assert os.path.isdir(repo.tree(N2))


def test_an_unknown_host_is_named(repo, grabber) -> None:
    code, _, err = grabber("migrate", "db9")
    assert code == errors.USAGE and "no host 'db9'" in err


@pytest.mark.parametrize("name", ["../web1", "-web1", "web1/x"])
def test_a_host_name_that_is_not_one_is_refused_before_anything(
    repo, grabber, capsys, name
) -> None:
    with pytest.raises(SystemExit) as e:  # argparse's usage error
        grabber("migrate", name)
    assert e.value.code == errors.USAGE
    assert "grabber migrate: error: " in capsys.readouterr().err
    assert os.path.isdir(repo.tree(N2))


@pytest.mark.root
def test_the_newest_snapshot_moves_into_a_subvolume(btrfs_dir: str, grabber, tmp_path) -> None:
    root = os.path.join(btrfs_dir, "repo")
    os.mkdir(root, 0o700)
    host = HostRepo(root, "web1")
    host.ensure()
    snapshot(host, N1, {"etc/hosts": b"127.0.0.1 localhost\n"})
    snapshot(host, N2, {"etc/hosts": b"127.0.0.1 localhost\n", "etc/new": b"new\n"}, base=N1)
    host.point_latest(N2)
    (tmp_path / "grabber.toml").write_text(f'repository = "{root}"\n')
    code, out, err = grabber("migrate", "web1")
    assert code == errors.OK, err
    assert out.splitlines() == [
        f"web1: copying {N2} into a subvolume with reflinks",
        f"web1: {N2} is a subvolume now; the next run builds on it",
    ]
    for name, subvolume in ((N1, False), (N2, True)):
        fd = btrfsioctl.open_dir(host.tree(name))
        try:
            assert btrfsioctl.is_subvolume(fd) is subvolume
        finally:
            os.close(fd)
    assert Path(host.tree(N2), "etc", "new").read_bytes() == b"new\n"
    code, out, _ = grabber("migrate", "web1")
    assert code == errors.OK and "is a subvolume already: nothing to do" in out
