"""Walking and hashing a snapshot tree (integrity/tree.py): no link is ever
followed, nothing but a regular file is read, depth is not a limit."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from pullsnap.grabber.integrity import tree
from tests.trees import deep_tree


class Seen:
    def __init__(self) -> None:
        self.directories = 0
        self.entries: list[bytes] = []

    def directory(self, fd: int) -> None:
        assert os.path.isdir(f"/proc/self/fd/{fd}")
        self.directories += 1

    def entry(self, dir_fd: int, name: bytes, inode: int) -> None:
        assert os.lstat(name, dir_fd=dir_fd).st_ino == inode
        self.entries.append(name)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    top = tmp_path / "snap"
    (top / "etc" / "ssh").mkdir(parents=True)
    (top / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (top / "etc" / "ssh" / "sshd_config").write_text("Port 22\n")
    (top / "b").write_bytes(b"")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("not ours")
    (top / "link-to-dir").symlink_to(outside)
    (top / "link-to-file").symlink_to(outside / "secret")
    os.mkfifo(top / "fifo")
    return top


def test_the_walk_yields_each_regular_file_once_in_name_order(root: Path) -> None:
    fd = tree.open_tree(str(root))
    seen = Seen()
    try:
        found = [(path, inode) for _, _, path, inode in tree.walk_files(fd, b"", seen)]
    finally:
        os.close(fd)
    assert [path for path, _ in found] == [b"b", b"etc/hosts", b"etc/ssh/sshd_config"]
    assert all(inode == os.lstat(root / os.fsdecode(p)).st_ino for p, inode in found)
    assert seen.directories == 3  # the root, etc, etc/ssh: never the linked directory
    assert sorted(seen.entries) == [b"fifo", b"link-to-dir", b"link-to-file"]


def test_the_prefix_leads_every_path(root: Path) -> None:
    fd = tree.open_tree(str(root / "etc"))
    try:
        paths = [path for _, _, path, _ in tree.walk_files(fd, b"etc/")]
    finally:
        os.close(fd)
    assert paths == [b"etc/hosts", b"etc/ssh/sshd_config"]


def test_a_tree_deeper_than_python_recurses(tmp_path: Path) -> None:
    deep = tmp_path / "deep"
    deepest = deep_tree(deep, 1200)  # past sys.getrecursionlimit()
    fd = tree.open_tree(str(deep))
    try:
        paths = [path for _, _, path, _ in tree.walk_files(fd)]
    finally:
        os.close(fd)
        subprocess.run(["rm", "-rf", str(deep)], check=True)
    assert paths == [os.fsencode(deepest)]


def test_an_abandoned_walk_closes_what_it_opened(root: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    fd = tree.open_tree(str(root))
    walk = tree.walk_files(fd)
    next(walk)
    next(walk)  # inside etc/ now
    walk.close()
    os.close(fd)
    assert len(os.listdir("/proc/self/fd")) == before


def test_open_tree_refuses_a_symlink(root: Path) -> None:
    with pytest.raises(OSError):
        tree.open_tree(str(root / "link-to-dir"))


def test_hash_file_gives_digest_size_and_inode(root: Path) -> None:
    fd = tree.open_tree(str(root / "etc"))
    try:
        digest, size, inode = tree.hash_file(fd, b"hosts")
    finally:
        os.close(fd)
    data = (root / "etc" / "hosts").read_bytes()
    assert digest == hashlib.blake2b(data, digest_size=32).hexdigest()
    assert (size, inode) == (len(data), os.lstat(root / "etc" / "hosts").st_ino)
    assert tree.new_hash().digest_size == 32 and tree.ALGORITHM == "blake2b-256"


def test_a_file_larger_than_the_buffer_hashes_whole(tmp_path: Path) -> None:
    data = os.urandom((1 << 18) * 2 + 17)
    (tmp_path / "big").write_bytes(data)
    fd = tree.open_tree(str(tmp_path))
    try:
        digest, size, _ = tree.hash_file(fd, b"big")
    finally:
        os.close(fd)
    assert (digest, size) == (hashlib.blake2b(data, digest_size=32).hexdigest(), len(data))


@pytest.mark.parametrize("name", [b"link-to-file", b"fifo"])
def test_hash_file_reads_no_link_and_no_fifo(root: Path, name: bytes) -> None:
    fd = tree.open_tree(str(root))
    try:
        with pytest.raises(OSError):  # ELOOP for the link; "not a regular file", no hang
            tree.hash_file(fd, name)
    finally:
        os.close(fd)


def _effective() -> str:
    status = Path("/proc/self/status").read_text()
    return next(line for line in status.splitlines() if line.startswith("CapEff:"))


@pytest.mark.parametrize("mode, held", [("fake-super", ("dac_override",)), ("super", ())])
def test_reading_as_receiver_raises_nothing_it_need_not(mode: str, held) -> None:
    before = _effective()
    with tree.reading_as_receiver(mode, held):
        inside = _effective()
    assert inside == before == _effective()
