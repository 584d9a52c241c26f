"""Replacing a file atomically, and reading back only regular files (atomicfile.py)."""

from __future__ import annotations

import os

import pytest

from pullsnap.grabber.store import atomicfile


def test_atomic_replace(tmp_path) -> None:
    target = tmp_path / "x.prom"
    target.write_text("old")
    atomicfile.replace(str(target), b"new\n", 0o644)
    assert target.read_text() == "new\n" and target.stat().st_mode & 0o777 == 0o644
    assert os.listdir(tmp_path) == ["x.prom"]
    with pytest.raises(FileNotFoundError):
        atomicfile.replace(str(tmp_path / "missing" / "x.prom"), b"", 0o644)
    atomicfile.replace_json(str(tmp_path / "s.json"), {"a": 1})
    assert atomicfile.read_json(str(tmp_path / "s.json")) == {"a": 1}
    assert (tmp_path / "s.json").stat().st_mode & 0o777 == 0o600
    (tmp_path / "bad.json").write_text("{")
    assert atomicfile.read_json(str(tmp_path / "bad.json")) is None
    assert atomicfile.read_json(str(tmp_path / "none.json")) is None


def test_a_failed_write_leaves_the_old_content_and_no_temporary_file(tmp_path) -> None:
    target = tmp_path / "record.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomicfile.replacing(str(target), 0o600) as f:
        f.write(b"half")
        raise RuntimeError("the writer died")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["record.json"]


@pytest.mark.root
def test_root_leaves_the_file_to_its_owner(tmp_path) -> None:
    os.chown(tmp_path, 4242, 4243)
    atomicfile.replace_json(str(tmp_path / "v.json"), {"a": 1}, owner_of=str(tmp_path))
    st = (tmp_path / "v.json").stat()
    assert (st.st_uid, st.st_gid) == (4242, 4243)
    atomicfile.replace(str(tmp_path / "page.html"), b"x")
    assert (tmp_path / "page.html").stat().st_uid == 0  # no owner asked for: root's


@pytest.mark.security
def test_read_json_ignores_what_a_sender_could_plant(tmp_path) -> None:
    """Host directories are written by the receiving rsync: a FIFO or a
    symlink named like our files must neither block nor lead elsewhere."""
    os.mkfifo(tmp_path / "fifo.json")
    assert atomicfile.read_json(str(tmp_path / "fifo.json")) is None
    (tmp_path / "real.json").write_text('{"a": 1}')
    os.symlink(tmp_path / "real.json", tmp_path / "link.json")
    assert atomicfile.read_json(str(tmp_path / "link.json")) is None
    assert atomicfile.read_json(str(tmp_path / "real.json")) == {"a": 1}
