"""The peak memory of one user's processes, sampled from /proc: what the
benchmark's memory step and the tests' bound on it read.

    with PeakRss(uid) as peak:       a thread reads /proc/<pid>/status of
        run the backup               every process of `uid`, every 20 ms
    peak.summed                      the largest sum of VmRSS seen at once
    peak.by_kind                     each kind's largest sum of VmRSS at once
    peak.hwm_total                   the sum of each process's VmHWM (its own
                                     peak, whenever it was): an upper bound

A kind is what a process runs: "grabber" (the Python login shell), "hasher"
(its forked child, `prehash.TITLE` on its command line), "rsync", "ssh",
"ssh-agent", or the command's name.  A process that lives less than one
sample goes unseen, so `hwm_total` is read as well: proc(5) VmHWM is each
process's own high-water mark, kept by the kernel.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

INTERVAL = 0.02  # seconds between samples


def kind_of(pid: int) -> str:
    """What the process runs, by its command line (see the module docstring)."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        words = f.read().split(b"\0")
    text = b" ".join(words).decode(errors="replace")
    if "pullsnap-hasher" in text:
        return "hasher"
    program = os.path.basename(words[0].decode(errors="replace")) if words and words[0] else ""
    if program.startswith("python") or program.startswith("grabber"):
        return "grabber"
    return program.split(":")[0] or "?"


def status_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB, proc(5); (0, 0) for a kernel thread."""
    rss = hwm = 0
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


@dataclass
class PeakRss:
    uid: int
    summed: int = 0  # bytes: the largest sum of VmRSS over the user's processes at once
    by_kind: dict[str, int] = field(default_factory=dict)  # bytes, each kind's largest sum
    hwm: dict[int, tuple[str, int]] = field(default_factory=dict)  # pid -> (kind, VmHWM bytes)
    samples: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="peak-rss", daemon=True)

    @property
    def hwm_total(self) -> int:
        return sum(peak for _, peak in self.hwm.values())

    def own_peak(self, kind: str) -> int:
        """The largest VmHWM of one process of `kind`: the kernel's own
        high-water mark, which no sampling interval misses."""
        return max((peak for k, peak in self.hwm.values() if k == kind), default=0)

    def python_peak(self) -> int:
        """The grabber's own processes (grabber and hasher), their peak sum at once."""
        return self._python

    def __enter__(self) -> PeakRss:
        self._python = 0
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(INTERVAL)
        self.sample()

    def sample(self) -> None:
        total = 0
        kinds: dict[str, int] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            try:
                if os.stat(f"/proc/{pid}").st_uid != self.uid:
                    continue
                kind = kind_of(pid)  # again each time: sshd's child execs the grabber
                rss, hwm = status_kib(pid)
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
            if not hwm:
                continue
            self.hwm[pid] = (kind, hwm * 1024)
            total += rss * 1024
            kinds[kind] = kinds.get(kind, 0) + rss * 1024
        self.samples += 1
        self.summed = max(self.summed, total)
        for kind, value in kinds.items():
            self.by_kind[kind] = max(self.by_kind.get(kind, 0), value)
        python = kinds.get("grabber", 0) + kinds.get("hasher", 0)
        self._python = max(self._python, python)
