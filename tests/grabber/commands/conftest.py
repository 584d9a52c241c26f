"""A repository and configuration of the tests' own, and `grabber` run on
them in this process (cli.main): what each command prints and returns."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pullsnap.grabber import cli
from pullsnap.grabber.store.repository import HostRepo, snapshot_name

N1 = snapshot_name(dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2))
N2 = snapshot_name(dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1))


def snapshot(host: HostRepo, name: str, files: dict[str, bytes], base: str = "",
             **record) -> None:  # fmt: skip
    """A good snapshot; a file unchanged since `base` is hard-linked, as
    rsync --link-dest leaves it."""
    top = Path(host.tree(name))
    for rel, data in files.items():
        (top / rel).parent.mkdir(parents=True, exist_ok=True)
        old = Path(host.tree(base), rel) if base else None
        if old is not None and old.exists() and old.read_bytes() == data:
            os.link(old, top / rel)
        else:
            (top / rel).write_bytes(data)
    stats = {"files": len(files)}
    host.write_record(name, {"state": "complete", "host": host.host, "started": name,
                             "finished": name, "stats": stats, **record})  # fmt: skip


@pytest.fixture
def repo(tmp_path: Path) -> HostRepo:
    """web1 with two good snapshots: etc/motd changed, etc/new added."""
    root = tmp_path / "repo"
    root.mkdir(mode=0o700)
    host = HostRepo(str(root), "web1")
    host.ensure()
    snapshot(host, N1, {"etc/hosts": b"127.0.0.1 localhost\n", "etc/motd": b"hello\n"})
    snapshot(host, N2, {"etc/hosts": b"127.0.0.1 localhost\n", "etc/motd": b"changed\n",
                        "etc/new": b"new\n"}, base=N1)  # fmt: skip
    host.point_latest(N2)
    return host


@pytest.fixture
def grabber(tmp_path: Path, capsys: pytest.CaptureFixture) -> Callable[..., tuple[int, str, str]]:
    """Run `grabber --config <tmp>/grabber.toml ARGS...`: (status, stdout, stderr)."""
    config = tmp_path / "grabber.toml"
    config.write_text(f'repository = "{tmp_path / "repo"}"\n[policy]\nmax_age = "36h"\n')

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main(["grabber", "--config", str(config), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run
