"""`grabber migrate` (commands/migrate.py): refused with the reason where it
cannot work; on btrfs the newest snapshot becomes a subvolume."""

from __future__ import annotations

import os
import shutil

import pytest

from pullsnap import errors
from pullsnap.grabber import cli
from pullsnap.grabber.store import btrfsioctl
from pullsnap.grabber.store.repository import HostRepo
from tests.grabber.commands.conftest import N1, N2, snapshot
from tests.labfixtures import remove_btrfs_tree


def test_a_repository_not_on_btrfs_is_refused_with_the_reason(repo, grabber) -> None:
    code, _, err = grabber("migrate", "web1")
    assert code == errors.FAILED
    assert "the repository is not on btrfs" in err and "move it to a btrfs filesystem" in err
    assert not btrfsioctl.is_subvolume(btrfsioctl.open_dir(repo.tree(N2)))
    code, _, err = grabber("migrate", "nosuchhost")
    assert code != errors.OK and "nosuchhost" in err


@pytest.mark.root
def test_on_btrfs_the_newest_snapshot_becomes_a_subvolume(btrfs: str, tmp_path, capsys) -> None:
    root = os.path.join(btrfs, "migrate-command")
    remove_btrfs_tree(root)
    os.makedirs(root, mode=0o700)
    host = HostRepo(root, "web1")
    host.ensure()
    snapshot(host, N1, {"etc/hosts": b"127.0.0.1 localhost\n"})
    snapshot(host, N2, {"etc/hosts": b"127.0.0.1 localhost\n", "etc/new": b"new\n"}, base=N1)
    config = tmp_path / "grabber.toml"
    config.write_text(f'repository = "{root}"\n')
    try:
        assert cli.main(["grabber", "--config", str(config), "migrate", "web1"]) == errors.OK
        assert "is a subvolume now" in capsys.readouterr().out
        fd = btrfsioctl.open_dir(host.tree(N2))
        assert btrfsioctl.is_subvolume(fd) and btrfsioctl.is_readonly(fd)
        os.close(fd)
        with open(os.path.join(host.tree(N2), "etc", "new"), "rb") as f:
            assert f.read() == b"new\n"
        assert cli.main(["grabber", "--config", str(config), "migrate", "web1"]) == errors.OK
        assert "a subvolume already" in capsys.readouterr().out
    finally:
        remove_btrfs_tree(root)
        shutil.rmtree(tmp_path, ignore_errors=True)
