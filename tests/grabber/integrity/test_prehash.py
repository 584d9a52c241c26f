"""prehash.py: a forked hasher digests files as rsync names them."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

from pullsnap.grabber.integrity import manifest, prehash, tree


def _tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    (tree / "etc" / "deep").mkdir(parents=True)
    (tree / "etc" / "hosts").write_bytes(b"127.0.0.1 localhost\n")
    (tree / "etc" / "deep" / "big").write_bytes(os.urandom(3 << 20))
    (tree / "etc" / "odd\nname").write_bytes(b"newline in the name\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"not in the tree\n")
    (tree / "escape").symlink_to(outside)
    return tree


def _digests(hasher: prehash.Prehasher) -> dict[bytes, tuple[str, int, int]]:
    """What the hasher's spool holds, by path."""
    return {path: manifest.decode_hashed(value) for path, value in hasher.close().items()}


def _digest(path: Path) -> tuple[str, int, int]:
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return tree.hash_file(fd, os.fsencode(path.name))
    finally:
        os.close(fd)


def test_the_hasher_digests_what_it_is_told_and_nothing_outside(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    hasher = prehash.Prehasher(str(tree), "fake-super", ())
    assert hasher.pid > 0, "forked"
    for path in (b"etc/hosts", b"etc/deep/big", b"etc/odd\nname", b"escape/secret",
                 b"../outside/secret", b"etc/missing"):  # fmt: skip
        hasher.add(path)
    found = _digests(hasher)
    assert found == {
        b"etc/hosts": _digest(tree / "etc" / "hosts"),
        b"etc/deep/big": _digest(tree / "etc" / "deep" / "big"),
        b"etc/odd\nname": _digest(tree / "etc" / "odd\nname"),
    }
    assert hasher.pid == 0  # reaped


def test_a_name_rsync_gives_before_the_file_is_in_place_is_tried_again(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    hasher = prehash.Prehasher(str(tree), "fake-super", ())
    hasher.add(b"etc/late")
    time.sleep(prehash.SEND_EVERY * 2)
    hasher.add(b"etc/hosts")  # sends both; etc/late is not there yet
    time.sleep(prehash.RETRY_AFTER * 3)
    (tree / "etc" / ".late.tmp").write_bytes(b"stored by rsync\n")
    os.rename(tree / "etc" / ".late.tmp", tree / "etc" / "late")  # as rsync puts it in place
    found = _digests(hasher)
    assert found[b"etc/late"] == _digest(tree / "etc" / "late")


def test_no_fork_while_another_thread_runs(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        hasher = prehash.Prehasher(str(tree), "fake-super", ())
        hasher.add(b"etc/hosts")
        assert hasher.pid == 0 and _digests(hasher) == {}
    finally:
        stop.set()
        other.join()


def test_build_takes_an_early_digest_only_for_the_same_inode(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    hosts = tree / "etc" / "hosts"
    real = _digest(hosts)
    planted = ("0" * 64, real[1], real[2])  # what the hasher said, this very inode
    entries, stats = manifest.build(str(tree), "n1", {b"etc/hosts"}, [], {b"etc/hosts": planted})
    by_path = {e.path: e for e in entries}
    assert by_path[b"etc/hosts"].digest == "0" * 64 and stats.prehashed == 1
    stale = ("0" * 64, real[1], real[2] + 1)  # another inode: hashed again
    entries, stats = manifest.build(str(tree), "n1", {b"etc/hosts"}, [], {b"etc/hosts": stale})
    by_path = {e.path: e for e in entries}
    assert by_path[b"etc/hosts"].digest == real[0] and stats.prehashed == 0


def test_a_file_named_twice_is_hashed_after_the_run(tmp_path: Path) -> None:
    """rsync names a file again when it writes it again (its redo phase);
    in place the inode stays, so a digest taken between the two writes
    would pass the inode check: neither is taken."""
    tree = _tree(tmp_path)
    hosts = tree / "etc" / "hosts"
    hasher = prehash.Prehasher(str(tree), "fake-super", ())
    time.sleep(prehash.SEND_EVERY * 2)
    hasher.add(b"etc/hosts")
    hasher.add(b"etc/deep/big")
    time.sleep(prehash.SEND_EVERY * 2)
    inode = hosts.stat().st_ino
    with open(hosts, "r+b") as f:  # in place, as rsync --inplace writes
        f.write(b"10.0.0.9")
    assert hosts.stat().st_ino == inode
    hasher.add(b"etc/hosts")
    spool = hasher.close()
    named = [path for path, _ in spool.items()]
    assert named.count(b"etc/hosts") == 2 and named.count(b"etc/deep/big") == 1
    entries, stats = manifest.build(str(tree), "n1", {b"etc/hosts", b"etc/deep/big"}, [], spool)
    by_path = {e.path: e for e in entries}
    assert by_path[b"etc/hosts"].digest == _digest(hosts)[0]
    assert by_path[b"etc/deep/big"].digest == _digest(tree / "etc" / "deep" / "big")[0]
    assert stats.prehashed == 1  # etc/deep/big only


def test_the_hasher_keeps_none_of_the_grabbers_descriptors(tmp_path: Path) -> None:
    """Not the host lock, not the login session: it holds the tree, the names
    pipe, the results memfd (and the Landlock ruleset until it is enforced)."""
    tree = _tree(tmp_path)
    marker = os.open(tmp_path / "lock-like", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        hasher = prehash.Prehasher(str(tree), "fake-super", ())

        def fds() -> set[str]:
            held = set()
            for n in os.listdir(f"/proc/{hasher.pid}/fd"):
                with contextlib.suppress(FileNotFoundError):  # closed since the listing
                    held.add(os.readlink(f"/proc/{hasher.pid}/fd/{n}"))
            return held

        deadline = time.monotonic() + 5
        # Read until the child is done closing (it closes one fd at a time).
        while time.monotonic() < deadline:
            held = fds()
            if str(tmp_path / "lock-like") not in held and len(held) <= 4:
                break
            time.sleep(0.01)
        held = fds()
        assert str(tmp_path / "lock-like") not in held
        assert str(tree) in held and len(held) <= 4
        assert any(link.startswith(f"/memfd:{prehash.TITLE}") for link in held)
        hasher.add(b"etc/hosts")
        assert b"etc/hosts" in hasher.close()
    finally:
        os.close(marker)


def test_many_digests_arrive_whole_through_the_results_memfd(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    names = [f"d/file-{i:05d}-{'x' * 40}".encode() for i in range(3000)]  # several flushes
    for i, name in enumerate(names):
        (tree / os.fsdecode(name)).write_bytes(b"%d\n" % i)
    hasher = prehash.Prehasher(str(tree), "fake-super", ())
    assert hasher.pid > 0
    for name in names:
        hasher.add(name)
    found = _digests(hasher)
    assert len(found) == len(names)
    assert found[names[1234]] == _digest(tree / os.fsdecode(names[1234]))


def test_results_of_a_hasher_killed_mid_write_keep_their_whole_lines() -> None:
    whole = b'["a/\\udcff",' + b'"%s",3,7,1]\n' % (b"0" * 64)
    torn = b'["b","' + b"1" * 20
    assert prehash.parse_results(whole + torn) == {b"a/\xff": ("0" * 64, 3, 7)}
    assert prehash.parse_results(b'["c","d",true,1,1]\n["x"]\n["e","f",1,2]\n') == {}
