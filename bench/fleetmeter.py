"""What a night costs the vault: sampled memory of the grabber account's
processes, and CPU from a cpuacct cgroup that holds the vault's sshd (so
every session it starts, and all they start, is counted), or sampled where
there is no such cgroup.

Resident memory is the sum of VmRSS of every process of the grabber's uid,
sampled every `every` seconds (shared pages are counted once per process,
as `ps` would; a short peak between two samples is missed).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field

CGROUP_CPU = "/sys/fs/cgroup/cpuacct"
TICKS = os.sysconf("SC_CLK_TCK")


def _status(pid: str) -> tuple[int, int]:
    """(uid, VmRSS in KiB) of a process; (-1, 0) if it is gone."""
    uid, rss = -1, 0
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Uid:"):
                    uid = int(line.split()[1])
                elif line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return -1, 0
    return uid, rss


def _cpu_ticks(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (proc(5), fields 14, 15)
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0


@dataclass
class VaultMeter:
    uid: int
    every: float = 0.2
    peak_rss: int = 0  # bytes
    peak_processes: int = 0
    _ticks: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> VaultMeter:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            rss = count = 0
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                uid, kib = _status(pid)
                if uid != self.uid:
                    continue
                rss += kib * 1024
                count += 1
                self._ticks[pid] = max(self._ticks.get(pid, 0), _cpu_ticks(pid))
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_processes = max(self.peak_processes, count)
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def sampled_cpu(self) -> float:
        """CPU seconds of the grabber's processes, as last sampled."""
        return sum(self._ticks.values()) / TICKS


class CpuGroup:
    """A cpuacct cgroup (v1) for the vault's sshd and everything under it."""

    def __init__(self, name: str) -> None:
        self.path = os.path.join(CGROUP_CPU, name)
        self.usable = os.path.isdir(CGROUP_CPU)
        if self.usable:
            try:
                os.makedirs(self.path, exist_ok=True)
            except OSError:
                self.usable = False

    def adopt(self, pid: int) -> None:
        if self.usable:
            with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
                f.write(str(pid))

    def seconds(self) -> float | None:
        if not self.usable:
            return None
        with open(os.path.join(self.path, "cpuacct.usage")) as f:
            return int(f.read()) / 1e9

    def close(self) -> None:
        if self.usable:
            with contextlib.suppress(OSError):
                os.rmdir(self.path)


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (/proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / TICKS, sum(values) / TICKS


def now() -> float:
    return time.monotonic()
