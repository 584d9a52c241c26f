"""How fast `grabber diff`, `du`, `versions` and `status` are on a large host.

    python -m bench.restore_tools [--files 50000] [--snapshots 10] [--work DIR]

Builds a repository the way --link-dest leaves one: a first snapshot of
`--files` small files in nested directories, then each further snapshot a
hardlinked copy (cp -al) in which 1% of the files were rewritten (a new
inode each, as rsync writes them), a few added and a few removed.  Then
times, with warm caches, the code paths the commands use.  No root needed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable

from pullsnap.config import GrabberConfig
from pullsnap.grabber.store import usage
from pullsnap.grabber.store.repository import HostRepo, snapshot_name
from pullsnap.grabber.views import fileversions, status, treediff


def _write(path: str, rng: random.Random) -> None:
    with open(path, "wb") as f:
        f.write(rng.randbytes(rng.randint(0, 2048)))


def build(root: str, files: int, snapshots: int, seed: int = 11) -> HostRepo:
    rng = random.Random(seed)
    host = HostRepo(root, "web1")
    host.ensure()
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    names = [snapshot_name(start + dt.timedelta(days=i)) for i in range(snapshots)]
    first = host.tree(names[0])
    paths = []
    for i in range(files):
        directory = os.path.join(first, "srv", f"d{i % 100:02d}", f"e{i % 7}")
        os.makedirs(directory, exist_ok=True)
        paths.append(os.path.join("srv", f"d{i % 100:02d}", f"e{i % 7}", f"f{i:06d}"))
        _write(os.path.join(first, paths[-1]), rng)
    host.write_record(names[0], {"state": "complete", "seconds": 60.0,
                                 "stats": {"files": files, "transferred_size": 1}})  # fmt: skip
    for previous, name in itertools.pairwise(names):
        tree = host.tree(name)
        subprocess.run(["cp", "-al", host.tree(previous), tree], check=True)
        for rel in rng.sample(paths, max(1, files // 100)):
            os.unlink(os.path.join(tree, rel))
            _write(os.path.join(tree, rel), rng)
        for k in range(10):
            _write(os.path.join(tree, "srv", "d00", f"new-{name}-{k}"), rng)
        host.write_record(name, {"state": "complete", "seconds": 30.0,
                                 "stats": {"files": files, "transferred_size": 1}})  # fmt: skip
    host.point_latest(names[-1])
    return host


def timed(label: str, step: Callable[[], object]) -> float:
    started = time.perf_counter()
    result = step()
    seconds = time.perf_counter() - started
    print(f"{label:<52} {seconds:8.3f} s   {result}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--snapshots", type=int, default=10)
    parser.add_argument("--work", help="where to build (default: a temporary directory)")
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="pullsnap-bench-restore-")
    root = os.path.join(work, "repo")
    shutil.rmtree(root, ignore_errors=True)
    try:
        started = time.perf_counter()
        host = build(root, args.files, args.snapshots)
        print(f"built {args.snapshots} snapshots of {args.files:,} files "
              f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
        names = [a.name for a in host.good()]
        a, b = host.tree(names[-2]), host.tree(names[-1])
        cfg = GrabberConfig(repository=root)
        for _ in range(2):  # the first round warms the page cache
            timed("diff, two neighbouring snapshots",
                  lambda: f"{sum(1 for _ in treediff.diff_trees(a, b))} changes")  # fmt: skip
        oldest = host.tree(names[0])
        timed("diff, first and last snapshot",
              lambda: f"{sum(1 for _ in treediff.diff_trees(oldest, b))} changes")  # fmt: skip
        timed("du, every snapshot walked",
              lambda: f"{usage.measure(host, use_cache=False).total >> 20} MiB")  # fmt: skip
        timed("du, from its cache", lambda: f"{usage.measure(host).total >> 20} MiB")
        timed("versions of one file", lambda: len(fileversions.group(
            fileversions.sightings(host, [b"srv", b"d00", b"e0", b"f000000"]))))  # fmt: skip
        timed("status (usage cached)", lambda: status.collect(cfg)[0].snapshots)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
