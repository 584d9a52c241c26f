"""What measuring "added" costs: `python -m bench.added_cost [FILES] [DIRS]`
(its tree goes to $TMPDIR).

Builds a source tree of FILES small files (1 in 100 a symlink) in DIRS
directories, makes a first snapshot with the grabber's rsync options (local,
no ssh), then a no-change snapshot with --link-dest, and times the manifest
step of the no-change run with and without the store's meter (the best of
nine of each, taken in turns, warm caches), next to rsync's own time for that run.  The
meter costs one fstat a directory and one lstat for each entry that is not
a hard link of the base's (the symlinks, here), and nothing for the files.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from bench.manifest_cost import snapshot
from pullsnap.grabber.integrity import manifest
from pullsnap.grabber.store.growth import HardlinkMeter

ROUNDS = 9


def make_source(root: str, files: int, dirs: int) -> None:
    for i in range(files):
        directory = os.path.join(root, f"d{i % dirs:04d}")
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"f{i:06d}")
        if i % 100 == 99:
            os.symlink(f"f{i - 1:06d}", path)
        else:
            with open(path, "wb") as f:
                f.write(os.urandom(64))


def best(*builds) -> list[float]:
    """The best time of each, ROUNDS rounds taken in turns (a loaded machine
    slows one round, not one of them)."""
    times: list[list[float]] = [[] for _ in builds]
    for _ in range(ROUNDS):
        for build, took in zip(builds, times, strict=True):
            started = time.monotonic()
            build()
            took.append(time.monotonic() - started)
    return [min(took) for took in times]


def main(argv: list[str]) -> int:
    files = int(argv[0]) if argv else 50_000
    dirs = int(argv[1]) if len(argv) > 1 else 500
    with tempfile.TemporaryDirectory(prefix="pullsnap-bench-added-") as base:
        src = os.path.join(base, "src")
        make_source(src, files, dirs)
        first = os.path.join(base, "2026-11-24T020000Z")
        second = os.path.join(base, "2026-11-25T020000Z")
        snapshot(src, first, None)
        rsync_s, _, stats = snapshot(src, second, first)
        assert stats.hashed == 0, "not a no-change run"  # rsync named no file: nothing new
        bases = [manifest.read(first + ".manifest") or {}]
        without, with_meter = best(
            lambda: manifest.build(second, "second", set(), bases),
            lambda: manifest.build(second, "second", set(), bases, meter=HardlinkMeter()),
        )
        meter = HardlinkMeter()
        manifest.build(second, "second", set(), bases, meter=meter)
        added = meter.result()
        extra = with_meter - without
        share = 100 * extra / (rsync_s + without)
        print(f"no-change run of {files:,} files in {dirs:,} directories: rsync {rsync_s:.2f} s")
        print(f"manifest step  without the meter {without:.3f} s, with it {with_meter:.3f} s: "
              f"+{extra * 1000:.1f} ms ({share:.1f} % of the run)")  # fmt: skip
        print(f"added: {added.bytes:,} bytes, {added.inodes:,} inodes (its directories)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
