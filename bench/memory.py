"""The grabber's peak memory on a host of many files:
`python -m bench memory [--files N] [--super] [--work DIR]` (root).

Makes (or reuses) a source tree of N empty files, 1,000 to a directory,
then backs it up end to end as in production (the lab: initiator, one-shot
sshd and gate, the backup host's sshd running `grabber`) twice: a first
backup, and a second that changes nothing.  While each runs, every process
of the grabber's account is sampled from /proc (lab/rss.py) and the step
reports

    grabber      the grabber and its hasher (the Python processes): the
                 largest sum of their VmRSS seen at once
    all          every process of the grabber's account (with the receiving
                 rsync, its ssh and the ssh-agent): the largest sum at once
    by kind      each kind's largest sum; and the sum of each process's own
                 VmHWM, an upper bound that no short sample interval misses

A tree made here is kept for the next run of the same size; repositories
are moved aside and deleted at the end, never before a backup (the
filesystem is slow for minutes after a mass deletion).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

from lab import Lab, chown_tree
from lab.rss import PeakRss

WORK = "/var/lib/pullsnap-bench-memory"
PER_DIRECTORY = 1000
MIB = 1 << 20


def make_tree(root: str, files: int) -> None:
    """`files` empty files, PER_DIRECTORY to a directory; kept while the count matches."""
    stamp = root + ".made"
    if os.path.exists(stamp):
        return
    if os.path.lexists(root):
        raise SystemExit(f"bench memory: {root} is half made: remove it and run again")
    os.makedirs(root)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    for start in range(0, files, PER_DIRECTORY):
        directory = os.path.join(root, f"d{start // PER_DIRECTORY:05d}")
        os.mkdir(directory)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for i in range(start, min(start + PER_DIRECTORY, files)):
                os.close(os.open(f"f{i:07d}", flags, 0o644, dir_fd=dir_fd))
        finally:
            os.close(dir_fd)
    with open(stamp, "w", encoding="ascii") as f:
        f.write(f"{files}\n")


class Bench:
    def __init__(self, work: str, files: int, super_mode: bool) -> None:
        self.work = work
        self.files = files
        self.super_mode = super_mode
        self.src = os.path.join(work, f"src-{files}")
        self.repo = os.path.join(work, "repo")
        self.lab = Lab(base=os.path.join(work, "lab"))
        self.mounted = False
        self.initiator_config = ""

    def say(self, text: str) -> None:
        print(f"bench memory: {text}", file=sys.stderr, flush=True)

    def trash(self, path: str) -> None:
        """Aside now, deleted at the end (see the module docstring)."""
        if os.path.lexists(path):
            aside = os.path.join(self.work, "trash", f"{time.time_ns()}")
            os.makedirs(os.path.dirname(aside), exist_ok=True)
            os.rename(path, aside)

    def setup(self) -> None:
        os.makedirs(self.work, mode=0o755, exist_ok=True)
        os.chmod(self.work, 0o755)
        started = time.monotonic()
        make_tree(self.src, self.files)
        self.say(f"source tree of {self.files:,} files ready ({time.monotonic() - started:.0f} s)")
        self.trash(self.repo)
        self.lab.setup()
        if self.super_mode:
            self.lab.use_launcher(True)
        os.makedirs(self.repo, mode=0o700)
        g = self.lab.grabber_pw()
        chown_tree(self.repo, g.pw_uid, g.pw_gid)
        if self.super_mode:
            subprocess.run(["mount", "--bind", self.repo, self.repo], check=True)
            subprocess.run(["mount", "-o", "remount,bind,nosuid,nodev", self.repo], check=True)
            self.mounted = True
        runtime = self.lab.path("run")
        os.makedirs(runtime, mode=0o700, exist_ok=True)
        i = self.lab.initiator_pw()
        os.chown(runtime, i.pw_uid, i.pw_gid)
        config = self.lab.write_grabber_config(repository=self.repo)
        self.lab.authorize([("web1", config)])
        self.initiator_config = self.lab.write_initiator_config(
            [self.src], runtime_dir=runtime, connect_back_timeout=120
        )

    def backup(self, label: str) -> dict[str, Any]:
        with PeakRss(self.lab.grabber_pw().pw_uid) as peak:
            started = time.monotonic()
            done = self.lab.initiator("-c", self.initiator_config, timeout=7200)
            seconds = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(f"bench memory: the {label} backup failed "
                             f"(exit {done.returncode}): {done.stderr.strip()[-400:]}")  # fmt: skip
        row = {
            "run": label,
            "files": self.files,
            "seconds": round(seconds, 1),
            "grabber_peak": peak.python_peak(),
            "all_peak": peak.summed,
            "by_kind": dict(sorted(peak.by_kind.items())),
            "hwm_total": peak.hwm_total,
            "samples": peak.samples,
            "manifest": self.latest_record().get("manifest", {}),
        }
        self.say(f"{label}: grabber {row['grabber_peak'] / MIB:.1f} MiB, all of its account "
                 f"{row['all_peak'] / MIB:.1f} MiB, {seconds:.0f} s")  # fmt: skip
        return row

    def latest_record(self) -> dict[str, Any]:
        host = os.path.join(self.repo, "web1")
        with open(os.path.join(host, os.readlink(os.path.join(host, "latest")) + ".json"),
                  encoding="utf-8") as f:  # fmt: skip
            return json.load(f)

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", self.repo], check=False)
        self.lab.close()
        self.trash(self.repo)
        shutil.rmtree(os.path.join(self.work, "trash"), ignore_errors=True)


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table, MiB."""
    kinds = sorted({k for row in rows for k, v in row["by_kind"].items() if v >= MIB // 10})
    head = ["run", "files", "grabber+hasher (MiB)", "all of its account (MiB)",
            *[f"{k} (MiB)" for k in kinds], "sum of VmHWM (MiB)", "seconds"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["run"], f"{row['files']:,}", f"{row['grabber_peak'] / MIB:.1f}",
                 f"{row['all_peak'] / MIB:.1f}",
                 *[f"{row['by_kind'].get(k, 0) / MIB:.1f}" for k in kinds],
                 f"{row['hwm_total'] / MIB:.1f}", f"{row['seconds']:.0f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench memory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--super", action="store_true", help="the grabber through its launcher")
    parser.add_argument("--work", default=WORK, help=f"scratch directory (default {WORK})")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench memory: needs root (users, sshd); run it as root", file=sys.stderr)
        return 2
    bench = Bench(os.path.abspath(args.work), args.files, args.super)
    try:
        bench.setup()
        rows = [bench.backup("first"), bench.backup("no change")]
    finally:
        bench.close()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
