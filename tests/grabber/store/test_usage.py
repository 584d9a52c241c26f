"""What hardlinked snapshots take (store/usage.py): against a set-based model, and on real trees
against GNU du (which counts a hardlinked file once per invocation)."""

from __future__ import annotations

import os
import subprocess

from hypothesis import given
from hypothesis import strategies as st

from pullsnap.grabber.store import usage
from pullsnap.grabber.store.repository import HostRepo


def _model(trees: list[list[int]], size: dict[int, int]) -> tuple[list[int], list[int], int]:
    sets = [set(t) for t in trees]
    everything = set().union(*sets) if sets else set()
    sizes = [sum(size[i] for i in s) for s in sets]
    uniques = [
        sum(size[i] for i in s if not any(i in o for j, o in enumerate(sets) if j != k))
        for k, s in enumerate(sets)
    ]
    return sizes, uniques, sum(size[i] for i in everything)


@given(
    st.lists(st.lists(st.integers(0, 30), max_size=25), max_size=6),
    st.dictionaries(st.integers(0, 30), st.integers(0, 10**6), min_size=31, max_size=31),
)
def test_accounting_matches_a_set_model(trees: list[list[int]], size: dict[int, int]) -> None:
    acc = usage.Accounting()
    for tree in trees:
        acc.start(f"t{len(acc.names)}")
        for inode in tree:
            if acc.seen(inode):
                acc.again(inode)
            else:
                acc.add(inode, size[inode], nlink=2)
    assert acc.result() == _model(trees, size)


def test_single_link_entries_are_unique() -> None:
    acc = usage.Accounting()
    acc.start("a")
    acc.add(1, 4096, nlink=1)
    acc.add(2, 8192, nlink=3)
    acc.start("b")
    acc.again(2)
    assert acc.result() == ([12288, 8192], [4096, 0], 12288)


def _gnu_du(paths: list[str]) -> int:
    done = subprocess.run(["du", "-s", "-c", "-B1", *paths], capture_output=True, text=True,
                          check=True)  # fmt: skip
    return int(done.stdout.splitlines()[-1].split()[0])


def _write(path: str, size: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(os.urandom(size))


def test_real_trees_agree_with_gnu_du(tmp_path) -> None:
    host = HostRepo(str(tmp_path), "web1")
    host.ensure()
    a, b, c = (host.tree(n) for n in ("2026-11-01T000000Z", "2026-11-02T000000Z",
                                      "2026-11-03T000000Z"))  # fmt: skip
    _write(f"{a}/etc/hosts", 100)
    _write(f"{a}/data/big", 300_000)
    _write(f"{a}/data/gone", 50_000)
    os.link(f"{a}/data/big", f"{a}/data/big-again")  # a hardlink inside one tree
    for src, dst in ((a, b), (b, c)):
        subprocess.run(["cp", "-al", src, dst], check=True)
    os.unlink(f"{b}/data/gone")
    os.unlink(f"{c}/data/gone")
    os.unlink(f"{c}/etc/hosts")
    _write(f"{c}/etc/hosts", 200_000)
    for name in ("2026-11-01T000000Z", "2026-11-02T000000Z", "2026-11-03T000000Z"):
        host.write_record(name, {"state": "complete"})
    found = usage.measure(host, use_cache=False)
    trees = [a, b, c]
    assert [t.name for t in found.trees] == [os.path.basename(t) for t in trees]
    assert found.total == _gnu_du(trees)
    for tree, u in zip(trees, found.trees, strict=True):
        assert u.size == _gnu_du([tree])
        assert u.unique == found.total - _gnu_du([t for t in trees if t != tree])
    assert found.trees[0].unique >= 50_000  # `gone` lives only in the first
    assert found.trees[2].unique >= 200_000  # the new hosts file only in the last
    # Cached under the trees it measured; a new tree is measured again.
    assert usage.measure(host) == found
    assert os.stat(os.path.join(host.path, usage.CACHE)).st_mode & 0o777 == 0o600
    subprocess.run(["cp", "-al", c, host.tree("2026-11-04T000000Z")], check=True)
    host.write_record("2026-11-04T000000Z", {"state": "complete"})
    assert len(usage.measure(host).trees) == 4
