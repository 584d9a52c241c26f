"""What manifests cost: `python -m bench.manifest_cost [FILES] [MIB]`.

Builds a source tree, makes a first snapshot with the grabber's own rsync
options (local, no ssh), then a no-change snapshot with --link-dest, and
times rsync and the manifest step for each.  The no-change manifest reads
directories only: every file is a hard link of one already hashed.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

from pullsnap.grabber.integrity import manifest
from pullsnap.grabber.transfer import pull

RSYNC = shutil.which("rsync") or "/usr/bin/rsync"
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
CONNECT = pull.ConnectBack("u", "127.0.0.1", 1, "/x/kh", "/x/k.pub", "/x/a", 30)


def make_source(root: str, files: int, mib: int) -> None:
    size = max(1, mib * 1024 * 1024 // files)
    for i in range(files):
        directory = os.path.join(root, f"d{i % 100:02d}")
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, f"f{i:06d}"), "wb") as f:
            f.write(os.urandom(size))


def snapshot(src: str, target: str, base: str | None) -> tuple[float, float, manifest.BuildStats]:
    spec = pull.PullSpec(RSYNC, "/usr/bin/ssh", CONNECT, (src,), target, (base,) if base else ())
    argv = pull.rsync_argv(spec)
    argv = [w for w in argv[: argv.index("-e")] if w != "--fake-super"] + ["--", src, target + "/"]
    os.makedirs(target)
    started = time.monotonic()
    result = pull.run_rsync(argv, ENV, lambda p: None, lambda line: None, None, 3600)
    rsync_seconds = time.monotonic() - started
    bases = [b for b in [manifest.read(base + ".manifest")] if b] if base else []
    started = time.monotonic()
    entries, stats = manifest.build(target, os.path.basename(target), result.new_files, bases)
    manifest.write(target + ".manifest", {"snapshot": os.path.basename(target)}, entries)
    return rsync_seconds, time.monotonic() - started, stats


def main(argv: list[str]) -> int:
    files = int(argv[0]) if argv else 20000
    mib = int(argv[1]) if len(argv) > 1 else 512
    with tempfile.TemporaryDirectory(prefix="pullsnap-bench-") as base:
        src = os.path.join(base, "src")
        make_source(src, files, mib)
        first = os.path.join(base, "2026-11-24T020000Z")
        second = os.path.join(base, "2026-11-25T020000Z")
        for label, target, link in (("full", first, None), ("no-change", second, first)):
            rsync_s, manifest_s, stats = snapshot(src, target, link)
            print(f"{label:9s}  rsync {rsync_s:7.2f} s  manifest {manifest_s:6.2f} s "
                  f"(+{100 * manifest_s / rsync_s:5.1f} %)  {stats.files} files, "
                  f"{stats.hashed} hashed, {stats.hashed_bytes / 2**20:,.0f} MiB read")  # fmt: skip
        print(f"manifest size: {os.path.getsize(second + '.manifest') / files:.0f} bytes a file")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
