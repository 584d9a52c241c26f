"""How fast can a no-change run be?  `python -m bench.nochange_floor [--reps N]`

Issue 7 asks for a nightly no-change run at 0.85x of local rsnapshot.  This
times what such a run is made of, without pullsnap's orchestration, on the
benchmark's dataset (made or reused in the work directory, as `bench` does):

    link-dest          rsync --link-dest=BASE --insecure-links (pullsnap's form)
    link-dest+landlock the same, both rsync processes under Landlock
    pre-link           cp -al BASE NEW, then rsync into NEW (rsnapshot's form)
    link-dest x2       two rsyncs at once, each on half of the tree
                       (the "several sessions over one connection" lead)

each locally and, but for Landlock, pulled over ssh from a loopback root
sshd (aes128-gcm, as pullsnap's connect-back).  Needs root: owners, the
page cache drop before every step (bench/measure.py `settle`), the sshd.
Every result is compared with the source once (content, modes, owners,
xattrs, hardlinks), so no form wins by skipping work.  Trees made here are
moved aside and deleted at the end, never right before a timed step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import prctl

from bench import dataset, measure, verify
from bench.stage import Stage
from pullsnap import landlock

RSYNC = ["rsync", "-aHAX", "--numeric-ids"]
LINK = "--insecure-links"  # what pullsnap passes when Landlock confines the receiver
CIPHER = "aes128-gcm@openssh.com"


def halves(src: str) -> list[list[str]]:
    """The source's top-level entries split in two, by the subdirectories of
    the one with the most (`small/dNN`); a file and its hard link share a
    directory in this dataset, so neither half breaks a hardlink group."""

    def subdirectories(top: str) -> list[str]:
        with os.scandir(os.path.join(src, top)) as entries:
            return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))

    tops = sorted(os.listdir(src))
    biggest = max(tops, key=lambda t: len(subdirectories(t)))
    subs = subdirectories(biggest)
    middle = len(subs) // 2
    others = [f"{biggest}/{n}" for n in sorted(os.listdir(os.path.join(src, biggest)))
              if n not in subs] + [t for t in tops if t != biggest]  # fmt: skip
    first = [f"{biggest}/{s}" for s in subs[:middle]] + others
    return [first, [f"{biggest}/{s}" for s in subs[middle:]]]


class Floor:
    def __init__(self, stage: Stage, base: str) -> None:
        self.stage = stage
        self.base = base
        self.count = 0
        self.ssh = ""  # rsync -e value, once the sshd runs

    def new_target(self) -> str:
        self.count += 1
        return self.stage.path(f"floor-{self.count:03d}")

    def source(self, over_ssh: bool, paths: Sequence[str] = ()) -> list[str]:
        """rsync's source arguments: the whole tree, or `paths` under it (--relative)."""
        host = "root@127.0.0.1:" if over_ssh else ""
        if not paths:
            return [host + self.stage.src + "/"]
        words = [f"{self.stage.src}/./{p}" for p in paths]
        return [host + words[0]] + [(":" if over_ssh else "") + w for w in words[1:]]

    def run(self, argv: Sequence[str], preexec: Callable[[], None] | None = None) -> None:
        measure.run(self.stage.meter, argv, preexec=preexec)  # raises StepFailed if it fails

    def rsync(self, over_ssh: bool, *words: str) -> list[str]:
        return [*RSYNC, *(["-e", self.ssh] if over_ssh else []), *words]

    def step(self, name: str, target: str, over_ssh: bool) -> Callable[[], None]:
        if name == "link-dest+landlock":
            return self.confined(target)
        make = {"link-dest": self.link_dest, "pre-link": self.pre_link,
                "link-dest x2": self.two_at_once}[name]  # fmt: skip
        return make(target, over_ssh)

    def link_dest(self, target: str, over_ssh: bool) -> Callable[[], None]:
        argv = self.rsync(over_ssh, LINK, f"--link-dest={self.base}",
                          *self.source(over_ssh), target + "/")  # fmt: skip
        return lambda: self.run(argv)

    def confined(self, target: str) -> Callable[[], None]:
        rules = landlock.Confinement(
            read_only=(*landlock.RUNTIME_READ_ONLY, self.stage.src),
            read_write=("/dev/null", self.stage.work),  # base and target, which links join
            executable=("/usr/bin/rsync", *landlock.ELF_INTERPRETERS),
        )
        argv = self.rsync(False, LINK, f"--link-dest={self.base}", *self.source(False),
                          target + "/")  # fmt: skip

        def confine() -> None:
            prctl.set_no_new_privs(1)
            landlock.restrict_self(rules)

        return lambda: self.run(argv, confine)

    def pre_link(self, target: str, over_ssh: bool) -> Callable[[], None]:
        argv = self.rsync(over_ssh, *self.source(over_ssh), target + "/")

        def both() -> None:
            self.run(["cp", "-al", self.base, target])
            self.run(argv)

        return both

    def two_at_once(self, target: str, over_ssh: bool) -> Callable[[], None]:
        argvs = [self.rsync(over_ssh, "--relative", LINK, f"--link-dest={self.base}",
                            *self.source(over_ssh, half), target + "/")
                 for half in halves(self.stage.src)]  # fmt: skip

        def both() -> None:
            os.mkdir(target)
            children = [subprocess.Popen(a, stdout=subprocess.DEVNULL) for a in argvs]
            codes = [c.wait() for c in children]
            if any(codes):
                raise measure.StepFailed(f"rsync exited {codes}")

        return both


FORMS: list[tuple[str, bool]] = [
    ("link-dest", False), ("link-dest+landlock", False), ("pre-link", False),
    ("link-dest x2", False), ("link-dest", True), ("pre-link", True), ("link-dest x2", True),
]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.nochange_floor",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--work", default="/var/lib/pullsnap-bench")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("nochange_floor: needs root (owners, dropping the page cache, an sshd)",
              file=sys.stderr)  # fmt: skip
        return 2
    meter = measure.CpuMeter(f"pullsnap-floor-{os.getpid()}")
    stage = Stage(os.path.abspath(args.work), meter)
    stage.make_source(dataset.DEFAULT, lambda text: print(text, file=sys.stderr))
    source = verify.describe(stage.src)
    base = stage.path("floor-base")
    floor = Floor(stage, base)
    times: dict[str, list[float]] = {}
    try:
        stage.trash(base)
        floor.run([*RSYNC, stage.src + "/", base + "/"])
        stage.start_host_sshd()
        floor.ssh = " ".join([*stage.host_ssh(), "-o", f"Ciphers={CIPHER}"])
        for rep in range(args.reps):
            for name, over_ssh in FORMS:
                label = f"{name}{' over ssh' if over_ssh else ''}"
                target = floor.new_target()
                step = floor.step(name, target, over_ssh)
                measure.settle([stage.src, base])
                started = time.monotonic()
                step()
                times.setdefault(label, []).append(time.monotonic() - started)
                if rep == 0:
                    problems = verify.differences(source, verify.describe(target))
                    if problems:
                        raise measure.StepFailed(f"{label}: {'; '.join(problems)}")
                stage.trash(target)
    finally:
        stage.close()
        meter.close()
        stage.trash(base)
        stage.empty_trash()
    print(f"no-change run of {source.files:,} files, seconds: median (min-max) of {args.reps}")
    for label, values in times.items():
        print(f"  {label:30s} {statistics.median(values):5.2f} "
              f"({min(values):.2f}-{max(values):.2f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
