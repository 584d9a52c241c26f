"""What a btrfs snapshot takes: the blocks a run wrote, not the files it touched.

A 1 GiB file with 1 MiB rewritten in place costs the new snapshot at most
2 MiB of its own (exclusive extents, FIEMAP and `btrfs filesystem du`),
where the hardlink store stores the whole file again; a run that changed
nothing adds only metadata.  The run's "added" figure, `grabber du` and the
record say so."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pullsnap import errors
from pullsnap.grabber.cli import main
from tests.e2e.conftest import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e]

MIB = 1 << 20
GIB = 1 << 30


def _record(site: Site, name: str) -> dict:
    with open(os.path.join(site.host_dir(), name + ".json"), encoding="utf-8") as f:
        return json.load(f)


def _big_file(site: Site) -> str:
    os.makedirs(site.src, exist_ok=True)
    path = os.path.join(site.src, "disk.img")
    chunk = os.urandom(MIB)
    with open(path, "wb") as f:
        for i in range(GIB // MIB):
            f.write(chunk[i % 7 :] + chunk[: i % 7])  # no two MiB alike
    return path


def _rewrite_one_mib(path: str) -> None:
    with open(path, "r+b") as f:
        f.seek(300 * MIB)
        f.write(os.urandom(MIB))


def test_a_small_change_to_a_large_file_costs_the_change(btrfs_site: Site, capsys) -> None:
    site = btrfs_site
    # The 3 GiB test filesystem: room for 1 GiB of history, not twice its average.
    site.regrab(min_free_avg=0.1)
    path = _big_file(site)
    assert site.run().returncode == errors.OK
    _rewrite_one_mib(path)
    assert site.run().returncode == errors.OK
    assert site.run().returncode == errors.OK  # nothing changed
    first, changed, same = site.snapshots()
    added = {name: _record(site, name)["added"]["bytes"] for name in (first, changed, same)}
    assert added[first] >= GIB
    assert MIB <= added[changed] <= 2 * MIB, added
    assert added[same] == 0, added  # metadata only: no file's extents are its own
    trees = [os.path.join(site.host_dir(), n) for n in (first, changed, same)]
    done = subprocess.run(["btrfs", "filesystem", "du", "-s", "--raw", *trees, site.host_dir()],
                          capture_output=True, text=True, check=True)  # fmt: skip
    rows = [line.split(None, 3) for line in done.stdout.splitlines()[1:]]
    figures = {r[3]: (int(r[0]), int(r[1]), int(r[2])) for r in rows}
    exclusive = {os.path.basename(t): figures[t][1] for t in trees}
    assert exclusive[changed] <= 2 * MIB and exclusive[same] == 0, exclusive
    total, own, shared = figures[site.host_dir()]
    assert GIB <= own + shared <= GIB + 3 * MIB and total >= 3 * GIB
    # `grabber du` shows the same: each snapshot's unique share, the host once.
    assert main(["grabber", "--config", site.grabber_config, "du", "web1", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    print(json.dumps({"added": added, "exclusive": exclusive, "host": own + shared}))
    unique = {t["name"]: t["unique"] for t in shown["trees"]}
    assert unique[changed] <= 2 * MIB and unique[same] == 0
    assert GIB <= shown["total"] <= GIB + 3 * MIB


def test_the_hardlink_store_stores_the_whole_file_again(site: Site) -> None:
    """The comparison: the same change costs the hardlink store the whole file."""
    site.regrab(min_free_avg=0.1)
    path = _big_file(site)
    assert site.run().returncode == errors.OK
    _rewrite_one_mib(path)
    assert site.run().returncode == errors.OK
    _, changed = site.snapshots()
    added = _record(site, changed)["added"]["bytes"]
    print(json.dumps({"hardlink added": added}))
    assert added >= GIB
