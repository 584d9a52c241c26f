"""`python -m bench [--small] [--reps N] [--tools a,b] [--work DIR]`: the run.

    dataset (reused while its seed and sizes match) and its described state
    after the small change (what every restore must equal)
    physical limits, ssh setup and cipher throughput
    orchestration overhead: pullsnap and rsync-ssh on a one-file tree
    for each repetition, for each contender:
        fresh repository; full; no change; small change applied; small
        change; restore (timed) and verify (not timed); change undone
    file creation right after a mass deletion (ext4 note), then trash emptied

Before every timed step, as root: dirty pages written back, the page cache
dropped, the source and the contender's repository read back in.

Output: bench/results.json (records) and bench/RESULTS.md, details.json
(every step) in the work directory.  --small keeps all of its output in its
own work directory (results.json, details.json, RESULTS-small.md).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
from typing import Any

from bench import btrfsspace, contenders, dataset, limits, measure, report, verify
from bench.stage import Stage

HERE = os.path.dirname(os.path.abspath(__file__))
ANALYSIS = os.path.join(HERE, "ANALYSIS.md")
RESULTS_TITLE = (
    "# pullsnap benchmark\n\n"
    "Made by `./bench/run.sh`; the analysis after the tables is `bench/ANALYSIS.md`.\n\n"
)


def _version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "absent"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "?"


def machine(work: str) -> dict[str, str]:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    with open("/proc/meminfo", encoding="utf-8") as f:
        mem_kb = int(f.readline().split()[1])
    fs = _version(["findmnt", "-n", "-o", "FSTYPE,OPTIONS", "--target", work])
    return {"cpu": f"{model}, {os.cpu_count()} cores", "memory": f"{mem_kb / 1048576:.0f} GiB",
            "kernel": platform.release(), "filesystem": fs}  # fmt: skip


def versions() -> dict[str, str]:
    import pullsnap

    venv = os.path.basename(os.path.dirname(os.path.dirname(sys.executable)))
    install = "a plain install" if venv == ".venv-bench" else f"the install in {venv}"
    return {
        "pullsnap": f"{pullsnap.__version__} ({install})",
        "rsync": _version(["rsync", "--version"]).replace("rsync  version ", ""),
        "OpenSSH": _version(["ssh", "-V"]).split(",")[0],
        "rsnapshot": _version(["rsnapshot", "--version"]).replace("rsnapshot ", ""),
        "borg": _version(["borg", "--version"]),
        "restic": " ".join(_version(["restic", "version"]).split()[:2]),
        "python": platform.python_version(),
    }


# Outside the checkout: a fixed, shallow path (rsync 3.5 walks every component of
# every --link-dest path, so the depth shows in the times) on the same disk.
WORK = "/var/lib/pullsnap-bench"

# What ends one contender's run (the others go on).
FAILURES = (measure.StepFailed, btrfsspace.SpaceError, subprocess.CalledProcessError, OSError)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/run.sh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--small", action="store_true", help="CI smoke size (a few MiB, 1 repetition)")
    p.add_argument("--reps", type=int, help="repetitions (default 3; 1 with --small)")
    p.add_argument("--tools", help="comma-separated contenders (default: all)")
    p.add_argument("--work", help=f"scratch directory (default {WORK}, {WORK}-small with --small)")
    p.add_argument("--out", help="where results.json and RESULTS.md go (default bench/; with "
                                 "--small the work directory)")  # fmt: skip
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-limits", action="store_true",
                   help="skip the physical limits (a run of a few contenders)")  # fmt: skip
    p.add_argument("--from", dest="details", metavar="DETAILS.json",
                   help="measure nothing: rewrite RESULTS.md from a details.json")  # fmt: skip
    return p


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        base = dataset.SMALL if args.small else dataset.DEFAULT
        self.spec = dataset.Spec(**{**base.__dict__, "seed": args.seed})
        self.reps = args.reps or (1 if args.small else 3)
        self.meter = measure.CpuMeter(f"pullsnap-bench-{os.getpid()}")
        self.stage = Stage(os.path.abspath(args.work), self.meter)
        self.steps: list[dict[str, Any]] = []
        self.limits: list[dict[str, Any]] = []
        self.skipped: dict[str, str] = {}
        self.cache_drops = 0
        # How each repository's size is taken (du, or btrfsspace.py on btrfs).
        self.sizes: dict[str, measure.DuMeter | btrfsspace.RepoMeter] = {}
        wanted = set(args.tools.split(",")) if args.tools else None
        self.tools = [c for c in contenders.all_contenders() if wanted is None or c.name in wanted]

    def say(self, text: str) -> None:
        print(f"bench: {text}", file=sys.stderr, flush=True)

    # --- setup -----------------------------------------------------------------------

    def dataset(self) -> verify.Tree:
        self.stage.make_source(self.spec, self.say)
        change = dataset.SmallChange(self.stage.src, self.spec)
        self.stage.mark_source(None)  # while changed, the tree is not the stamped one
        change.apply()
        after = verify.describe(self.stage.src)
        change.revert()
        self.stage.mark_source(self.spec)
        return after

    def start(self) -> None:
        os.makedirs(self.stage.work, mode=0o755, exist_ok=True)
        os.chmod(self.stage.work, 0o755)
        for point in contenders.leftover_mounts(self.stage.work):
            subprocess.run(["umount", point], check=False)
        self.stage.trash(self.stage.path("repos"))
        self.stage.trash(self.stage.path("restore"))
        self.stage.trash(self.stage.path("lab"))
        # What an earlier run left waits in the trash until this one ends.
        os.makedirs(self.stage.path("repos"))
        for tool in list(self.tools):
            reason = tool.unavailable()
            if reason:
                self.skipped[tool.name] = reason
                self.say(f"skipping {tool.name}: {reason}")
                self.tools.remove(tool)
        names = {t.name for t in self.tools}
        self.stage.start_host_sshd()
        if names & {"pullsnap", "pullsnap-btrfs"}:
            self.stage.start_lab()

    # --- measuring -------------------------------------------------------------------

    def settle(self, *warm: str) -> None:
        """Before each timed step (measure.settle): dirty pages written back,
        the page cache dropped, the source (and `warm`) read back in."""
        if measure.settle([self.stage.src, *warm]):
            self.cache_drops += 1

    def limit(self, name: str, fn: Any, size: int | None = None) -> None:
        for rep in range(self.reps):
            self.settle()
            sample = fn()
            self.limits.append({"name": name, "rep": rep, "wall": sample.wall, "cpu": sample.cpu,
                                "bytes": size})  # fmt: skip

    def physical_limits(self, source: verify.Tree) -> None:
        self.say("physical limits")
        st = self.stage
        size = source.size
        self.limit("cp -a of the tree", lambda: limits.cp_a(st, st.path("cp-a")), size)
        self.limit("read walk (tar | cat)", lambda: limits.tar_walk(st), size)
        self.limit("stat walk (find)", lambda: limits.stat_walk(st))
        self.limit("sequential write (dd, fdatasync)", lambda: limits.seq_write(st, size), size)
        self.limit("ssh connection setup", lambda: limits.ssh_setup(st))
        stream = max(size, 256 << 20)
        for cipher in limits.CIPHERS:
            self.limit(f"ssh {cipher}, {stream >> 20} MiB", lambda c=cipher: limits.ssh_throughput(
                st, c, stream), stream)  # fmt: skip

    def overhead(self) -> None:
        """pullsnap and plain rsync over ssh on a one-file tree, interleaved."""
        names = {t.name for t in self.tools}
        if not {"pullsnap", "rsync-ssh"} <= names:
            return
        self.say("orchestration overhead (one-file tree)")
        self.settle()  # as before every timed step: the limits just wrote gigabytes
        tiny = self.stage.path("tiny")
        self.stage.trash(tiny)
        dataset.generate(tiny, dataset.TINY)
        ours = contenders.Pullsnap("pullsnap-tiny", sources=(tiny,))
        floor = contenders.RsyncSsh("rsync-ssh-tiny")
        ours.prepare(self.stage)
        ours.fresh(self.stage, 0)
        floor.fresh(self.stage, 0)
        # Fifteen interleaved pairs: a second of background work moves one pair
        # by 0.05 s, and the overhead is a difference of two medians.
        for _ in range(1 + max(15, self.reps)):  # the first of each warms caches, not counted
            for tool, name in ((ours, "pullsnap"), (floor, "rsync-ssh")):
                sample = self._tiny_backup(tool, tiny)
                self.steps.append({"tool": name, "scenario": "tiny", "wall": sample.wall,
                                   "cpu": sample.cpu})  # fmt: skip
        for name in ("pullsnap", "rsync-ssh"):
            first = next(i for i, s in enumerate(self.steps) if s["tool"] == name
                         and s["scenario"] == "tiny")  # fmt: skip
            del self.steps[first]
        ours.finish(self.stage)
        floor.finish(self.stage)

    def _tiny_backup(self, tool: contenders.Contender, tiny: str) -> measure.Sample:
        if isinstance(tool, contenders.Pullsnap):
            return tool.backup(self.stage)[0]
        prev = tool.latest() if tool.snapshots else None
        tool.snapshots += 1
        link = [f"--link-dest={prev}"] if prev else []
        ssh = " ".join(self.stage.host_ssh())
        argv = [*contenders.RSYNC, *link, "-e", ssh, f"root@127.0.0.1:{tiny}/", tool.latest() + "/"]
        return measure.run(self.meter, argv)

    def step(self, tool: contenders.Contender, scenario: str, rep: int) -> dict[str, Any]:
        """One timed backup; the repository's size taken before the settle
        and after the sample, outside the timed command."""
        size = self.sizes.get(tool.repo)
        if size is None:
            size = self.sizes[tool.repo] = (
                btrfsspace.RepoMeter(tool.repo, self.stage.btrfs()) if tool.on_btrfs
                else measure.DuMeter(tool.repo)
            )  # fmt: skip
        size.before()
        self.settle(tool.repo)
        sample, received = tool.backup(self.stage)
        row = {"tool": tool.name, "scenario": scenario, "rep": rep, "wall": sample.wall,
               "cpu": sample.cpu, "received": received, **size.after(),
               **tool.diagnostics()}  # fmt: skip
        self.steps.append(row)
        return row

    def repetition(self, tool: contenders.Contender, rep: int, source: verify.Tree) -> None:
        tool.fresh(self.stage, rep)
        try:
            self.step(tool, "full", rep)
            self.step(tool, "nochange", rep)
            change = dataset.SmallChange(self.stage.src, self.spec)
            self.stage.mark_source(None)
            change.apply()
            try:
                self.step(tool, "smallchange", rep)
                dest = self.stage.path("restore", f"{tool.name}-r{rep}")
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                self.settle(tool.repo)
                sample = tool.restore(self.stage, dest)
                problems = verify.differences(source, verify.describe(
                    tool.restored_tree(self.stage, dest)))  # fmt: skip
                row = {"tool": tool.name, "scenario": "restore", "rep": rep}
                self.steps.append({**row, "wall": sample.wall, "cpu": sample.cpu,
                                   "problems": problems})  # fmt: skip
                if problems:
                    self.say(f"{tool.name}: restore differs: {'; '.join(problems)}")
                self.stage.trash(dest)
            finally:
                change.revert()
                self.stage.mark_source(self.spec)
            if isinstance(tool, contenders.Pullsnap) and rep == 0:
                self.stage.notes.append(f"pullsnap's receiver ran with --{tool.mode()}")
        finally:
            tool.finish(self.stage)

    def keep_space(self, dataset_bytes: int) -> None:
        """Empty the trash early only when the next repetition might not fit."""
        st = os.statvfs(self.stage.work)
        if st.f_bavail * st.f_frsize < 3 * dataset_bytes + (1 << 30):
            self.stage.notes.append("the trash was emptied during the run to make room")
            self.stage.empty_trash()

    # --- the run ---------------------------------------------------------------------

    def go(self) -> int:
        started = dt.datetime.now(dt.UTC)
        self.start()
        for tool in self.tools:
            tool.prepare(self.stage)
        source = self.dataset()
        if not self.args.no_limits:
            self.physical_limits(source)
        self.overhead()
        failed: dict[str, str] = {}
        for rep in range(self.reps):
            for tool in self.tools:
                if tool.name in failed:
                    continue
                self.keep_space(source.size)
                self.say(f"repetition {rep + 1}/{self.reps}: {tool.name}")
                try:
                    self.repetition(tool, rep, source)
                except FAILURES as e:
                    failed[tool.name] = str(e)
                    self.say(f"{tool.name} failed: {e}")
        count, deleted = (1000, 3000) if self.args.small else (5000, 50_000)
        calm, after = limits.create_after_delete(self.stage, count, deleted)
        details = {
            "meta": {"date": started.strftime("%Y-%m-%d %H:%M UTC"),
                     "machine": machine(self.stage.work), "versions": versions(),
                     "dataset": f"{source.files:,} files, {source.size / (1 << 20):.0f} MiB "
                                f"({self.spec.describe()})",
                     "reps": self.reps, "notes": sorted(set(self.stage.notes)),
                     "cache_drops": self.cache_drops},
            "skipped": {**self.skipped, **{k: f"failed: {v}" for k, v in failed.items()}},
            "steps": self.steps, "limits": self.limits,
            "create_after_delete": {"count": count, "deleted": deleted, "calm": calm,
                                    "after": after},
        }  # fmt: skip
        self.write(details)
        return 1 if failed else 0

    def write(self, details: dict[str, Any]) -> None:
        with open(self.stage.path("details.json"), "w", encoding="utf-8") as f:
            json.dump(details, f, indent=1)  # first: every measurement, whatever fails next
        out = os.path.abspath(self.args.out)
        os.makedirs(out, exist_ok=True)
        limit_records = report.records(
            {"tool": r["name"], "scenario": "limit", "wall": r["wall"]} for r in self.limits
        )
        with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as f:
            json.dump(report.records(self.steps) + limit_records, f, indent=1)
            f.write("\n")
        text = report.markdown(details)
        print(text)
        if self.args.small:
            _write(self.stage.path("RESULTS-small.md"), text)
            return
        analysis = _read(ANALYSIS)
        _write(os.path.join(out, "RESULTS.md"), RESULTS_TITLE + text + "\n" + analysis)

    def close(self) -> None:
        self.stage.close()
        self.meter.close()
        for point in contenders.leftover_mounts(self.stage.work):
            subprocess.run(["umount", point], check=False)
        self.stage.drop_btrfs()
        self.stage.empty_trash()
        for name in ("repos", "restore", "lab", "hostsshd", "tiny"):
            shutil.rmtree(self.stage.path(name), ignore_errors=True)


def _read(path: str) -> str:
    with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8") as f:
        return f.read()
    return ""


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["memory"]:  # the grabber's peak memory on many files: bench/memory.py
        from bench import memory

        return memory.main(argv[1:])
    args = _parser().parse_args(argv)
    # A smoke run keeps to its own directories: it must not replace the full
    # run's dataset, details.json or bench/results.json.
    args.work = args.work or (WORK + "-small" if args.small else WORK)
    args.out = args.out or (args.work if args.small else HERE)
    if args.details:
        with open(args.details, encoding="utf-8") as f:
            text = report.markdown(json.load(f))
        _write(os.path.join(args.out, "RESULTS.md"), RESULTS_TITLE + text + "\n" + _read(ANALYSIS))
        return 0
    if os.geteuid() != 0:
        print("bench: needs root (users, sshd, owners); run it as root", file=sys.stderr)
        return 2
    run = Run(args)
    # SIGTERM unwinds like an error, so sshds, users and mounts are undone.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        return run.go()
    finally:
        run.close()


if __name__ == "__main__":
    sys.exit(main())
