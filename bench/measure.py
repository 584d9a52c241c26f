"""Wall and CPU time of one step, and repository sizes.

CPU time is what every process of the step used, including the ones no
`wait` of ours sees: the grabber runs under the lab's sshd, the sender under
the one-shot sshd.  Every process the bench starts, and the long-running
sshds, join one cgroup; a step's CPU time is the growth of its usage counter
(cgroup v2 `cpu.stat` usage_usec, or v1 `cpuacct.usage` in ns).  Without
cgroups the CPU column falls back to the children we reap ourselves.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

CGROUP_ROOTS = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/cpuacct")


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float | None
    returncode: int
    stdout: str
    stderr: str


class StepFailed(RuntimeError):
    """A benchmark step exited non-zero."""


class CpuMeter:
    """A cgroup that every benchmarked process joins."""

    def __init__(self, name: str) -> None:
        self.path = ""
        self.kind = ""
        for root in CGROUP_ROOTS:
            v2 = os.path.exists(os.path.join(root, "cgroup.controllers"))
            v1 = os.path.exists(os.path.join(root, "cpuacct.usage"))
            if not (v1 or v2):
                continue
            path = os.path.join(root, name)
            try:
                os.makedirs(path, exist_ok=True)
            except OSError:
                continue
            self.path, self.kind = path, "v2" if v2 else "v1"
            break

    def join(self, pid: int = 0) -> None:
        """Move `pid` (0: the calling process) into the cgroup; its children follow."""
        if self.path:
            with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
                f.write(str(pid or os.getpid()))

    def usage(self) -> float | None:
        if not self.path:
            return None
        if self.kind == "v1":
            with open(os.path.join(self.path, "cpuacct.usage")) as f:
                return int(f.read()) / 1e9
        with open(os.path.join(self.path, "cpu.stat")) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) / 1e6
        return None

    def close(self) -> None:
        """Hand any process still inside back to the parent cgroup and remove ours."""
        if not self.path:
            return
        parent = os.path.dirname(self.path)
        with open(os.path.join(self.path, "cgroup.procs")) as f:
            pids = f.read().split()
        for pid in pids:
            with (
                contextlib.suppress(OSError),
                open(os.path.join(parent, "cgroup.procs"), "w") as f,
            ):
                f.write(pid)
        with contextlib.suppress(OSError):
            os.rmdir(self.path)
        self.path = ""


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(
    meter: CpuMeter,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    check: bool = True,
    stdin: int | None = subprocess.DEVNULL,
    preexec: Callable[[], None] | None = None,
) -> Sample:
    """Run one timed command; raise StepFailed on a non-zero exit when `check`.
    `preexec` runs in the child before the exec, after it joined the meter."""

    def before_exec() -> None:
        if meter.path:
            meter.join()
        if preexec is not None:
            preexec()

    before_cpu = meter.usage()
    before_children = _children_cpu()
    started = time.monotonic()
    done = subprocess.run(
        list(argv), env=dict(env) if env is not None else None, cwd=cwd, stdin=stdin,
        capture_output=True, text=True, errors="replace", check=False,
        preexec_fn=before_exec if meter.path or preexec is not None else None,
    )  # fmt: skip
    wall = time.monotonic() - started
    after = meter.usage()
    cpu = (after - before_cpu) if after is not None and before_cpu is not None else None
    if cpu is None:
        cpu = _children_cpu() - before_children
    if check and done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise StepFailed(f"{argv[0]} exited {done.returncode}: {' | '.join(tail)}")
    return Sample(wall, cpu, done.returncode, done.stdout, done.stderr)


def disk_usage(path: str) -> int:
    """Bytes of disk a tree uses, each hardlinked inode once (du(1))."""
    done = subprocess.run(
        ["du", "-s", "--block-size=1", path], capture_output=True, text=True, check=False
    )
    return int(done.stdout.split()[0]) if done.stdout else 0


class DuMeter:
    """A repository's size by du(1) across one step: "repo_bytes" after it,
    "added_bytes" by it."""

    def __init__(self, repo: str) -> None:
        self.repo = repo
        self.start = 0

    def before(self) -> None:
        self.start = disk_usage(self.repo)

    def after(self) -> dict[str, int | str]:
        now = disk_usage(self.repo)
        return {"repo_bytes": now, "added_bytes": now - self.start}


def settle(warm: Sequence[str]) -> bool:
    """Before a timed step: write back dirty pages, drop the page cache and
    read the trees in `warm` (the source, the contender's repository) back
    in, so every step starts from the same memory state and what it reads
    comes from memory.  True if the cache could be dropped (needs root).

    Without it the same plain rsync full backup took 3.7 s to 18 s: the
    receiver's CPU time in the kernel, getting memory for the pages it
    writes, depends on what earlier steps left (reclaiming their page cache,
    or memory a virtual machine's balloon had handed back to its host)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as f:
            f.write("1\n")
    except OSError:
        return False
    for tree in warm:
        read_tree(tree)
    return True


def read_tree(top: str) -> None:
    """Read every regular file under `top` once per inode (into the page cache)."""
    seen: set[tuple[int, int]] = set()
    buffer = memoryview(bytearray(1 << 20))
    stack = [top]
    while stack:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    key = (entry.stat(follow_symlinks=False).st_dev, entry.inode())
                    if key not in seen:
                        seen.add(key)
                        _read_file(entry.path, buffer)


def _read_file(path: str, buffer: memoryview) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            while os.readv(fd, (buffer,)):
                pass
        finally:
            os.close(fd)
