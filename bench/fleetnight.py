"""One night of the fleet: every host's initiator started within a second,
each in its own namespace, against one vault; what each host saw, what the
vault spent, and whether every host got exactly its own snapshot."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.fleetmeter import CpuGroup, VaultMeter, machine_busy
from bench.fleetsite import Fleet, Host
from pullsnap.grabber.store.repository import HostRepo


@dataclass
class HostRun:
    host: str
    exit: int
    started: float  # seconds after the night began
    ended: float
    queue_wait: float  # the grabber's record: waiting for a pull slot
    ticket: int  # its place in the queue; -1: no queue
    arrived: float  # when it took its ticket (seconds after the night began)
    state: str
    files: int
    transferred: int
    good: bool  # its own snapshot, complete and nothing else
    problem: str = ""

    @property
    def run(self) -> float:
        """Wall time of the initiator, less the wait for a slot."""
        return self.ended - self.started - self.queue_wait


@dataclass
class Night:
    scenario: str
    cap: int
    mode: str
    hosts: list[HostRun]
    makespan: float
    start_spread: float  # seconds between the first and the last start
    peak_rss: int
    peak_processes: int
    vault_cpu: float
    machine_cpu: float
    rsync_timeout: float
    stalled: str = ""
    stalled_held: float = 0.0  # seconds from the stop to the stalled run's end
    finished_meanwhile: int = 0  # other hosts done while the stalled one held its slot
    order_violations: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def all_good(self) -> bool:
        return all(h.good for h in self.hosts if h.host != self.stalled)

    @property
    def files(self) -> int:
        return sum(h.files for h in self.hosts)

    @property
    def transferred(self) -> int:
        return sum(h.transferred for h in self.hosts)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for h, d in zip(self.hosts, data["hosts"], strict=True):
            d["run"] = round(h.run, 3)
        data.update(all_good=self.all_good, files=self.files, transferred=self.transferred,
                    files_per_s=self.files / self.makespan,
                    mib_per_s=self.transferred / self.makespan / 2**20)  # fmt: skip
        return data


def _processes_of(uid: int, needle: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if needle.encode() in f.read():
                    found.append(int(pid))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


class Staller:
    """SIGSTOP a host's sending rsync once it is moving data."""

    def __init__(self, uid: int, after: float = 0.5) -> None:
        self.uid, self.after = uid, after
        self.stopped_at: float | None = None
        self.pids: list[int] = []
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._done = threading.Event()

    def start(self) -> Staller:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._done.is_set():
            pids = _processes_of(self.uid, "--sender")
            if pids:
                time.sleep(self.after)
                pids = _processes_of(self.uid, "--sender")
                for pid in pids:
                    os.kill(pid, signal.SIGSTOP)
                self.pids, self.stopped_at = pids, time.monotonic()
                return
            time.sleep(0.02)

    def release(self) -> None:
        self._done.set()
        self._thread.join()
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def own_snapshot_problem(fleet: Fleet, host: Host) -> str:
    """Empty when the host's newest good snapshot is exactly its own tree."""
    repo = HostRepo(fleet.repo, host.name)
    good = repo.good()
    if not good:
        return "no good snapshot"
    top = os.path.join(fleet.repo, host.name, good[-1].name)
    # Only this host's source path, level by level: no other host's tree.
    here = top
    for part in host.src.strip("/").split("/"):
        entries = os.listdir(here)
        if entries != [part]:
            return f"{here} holds {sorted(entries)[:4]}, not only {part}"
        here = os.path.join(here, part)
    want, got = _listing(host.src), _listing(here)
    if want != got:
        missing = sorted(set(want) - set(got))[:3]
        extra = sorted(set(got) - set(want))[:3]
        return f"differs from its source: missing {missing}, extra {extra}"
    with open(os.path.join(here, "etc", "hostname")) as f:
        if f.read() != f"{host.name}\n":
            return "etc/hostname is another host's"
    return ""


def _listing(root: str) -> dict[str, tuple[int, int]]:
    found = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            found[rel] = (st.st_size, int(st.st_mtime))
    return found


def order_violations(runs: list[HostRun], slack: float = 0.5) -> int:
    """Pairs served out of ticket order (a later ticket served more than
    `slack` seconds before an earlier one); runs without a ticket don't count."""
    queued = [r for r in runs if r.ticket >= 0 and r.exit == 0]
    served = {r.host: r.arrived + r.queue_wait for r in queued}
    return sum(
        1 for a in queued for b in queued
        if a.arrived < b.arrived and a.ticket < b.ticket and served[b.host] < served[a.host] - slack
    )  # fmt: skip


def _count_waiting(gate_path: str, wanted: int, patience: float = 60) -> int:
    """Wait until `wanted` processes wait for the gate's lock (/proc/locks)."""
    inode = os.stat(gate_path).st_ino
    deadline = time.monotonic() + patience
    count = 0
    while time.monotonic() < deadline:
        with open("/proc/locks") as f:
            # "1: FLOCK  ADVISORY  WRITE 123 00:2e:456 0 EOF", waiters with "->"
            count = sum(1 for line in f if "->" in line and f":{inode} " in line)
        if count >= wanted:
            break
        time.sleep(0.05)
    return count


def run_night(fleet: Fleet, scenario: str, cap: int, mode: str, rsync_timeout: float,
              stall: Host | None = None, stall_after: float = 0.3,
              timeout: float = 3600) -> Night:  # fmt: skip
    assert fleet.lab is not None and fleet.lab.sshd is not None
    fleet.configure_vault(max_concurrent_pulls=cap, queue_timeout="2h", rsync_timeout=rsync_timeout,
                          super="super" if mode == "super" else "fake-super")  # fmt: skip
    grabber = fleet.lab.grabber_pw()
    group = CpuGroup(f"pullsnap-fleet-{fleet.lab.tag}")
    assert fleet.lab.sshd.process is not None
    group.adopt(fleet.lab.sshd.process.pid)
    cpu_before = group.seconds()
    busy_before, _ = machine_busy()
    meter = VaultMeter(grabber.pw_uid).start()
    staller = None
    if stall is not None:
        import pwd

        staller = Staller(pwd.getpwnam(stall.user).pw_uid, stall_after).start()
    logs = os.path.join(fleet.base, "logs", f"{scenario}-{cap}")
    os.makedirs(logs, exist_ok=True)
    # Every initiator waits on one gate (a shared flock(1) against the
    # exclusive lock held here), so all start in the same instant, however
    # long it takes to fork them here.
    gate_path = os.path.join(logs, "gate")
    gate = os.open(gate_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    fcntl.flock(gate, fcntl.LOCK_EX)
    procs: dict[str, tuple[subprocess.Popen, float]] = {}
    for host in fleet.hosts:
        out = open(os.path.join(logs, f"{host.name}.log"), "wb")  # noqa: SIM115
        argv = ["flock", "--shared", gate_path, *fleet.initiator_argv(host)]
        procs[host.name] = (
            subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL), 0.0
        )  # fmt: skip
        out.close()
    waiting_at_gate = _count_waiting(gate_path, len(procs))
    begin = time.monotonic()
    begin_wall = time.time()
    os.close(gate)
    ended: dict[str, float] = {}
    released = None  # when the stalled host's grabber let go of its host lock (and slot)
    while len(ended) < len(procs):
        for name, (proc, _) in procs.items():
            if name not in ended and proc.poll() is not None:
                ended[name] = time.monotonic() - begin
        if staller is not None and staller.stopped_at is not None and released is None:
            assert stall is not None
            if not HostRepo(fleet.repo, stall.name).is_locked():
                # The vault is done with it; the stopped sender keeps its own
                # side waiting until it runs again and finds the door gone.
                released = time.monotonic() - begin
                staller.release()
        if time.monotonic() - begin > timeout:
            for proc, _ in procs.values():
                proc.kill()
        time.sleep(0.02)
    makespan = max(ended.values())
    meter.stop()
    if staller is not None:
        staller.release()
    cpu_after = group.seconds()
    busy_after, _ = machine_busy()
    runs = [_host_run(fleet, host, procs[host.name], ended[host.name], begin_wall)
            for host in fleet.hosts]  # fmt: skip
    night = Night(
        scenario=scenario, cap=cap, mode=mode, hosts=runs, makespan=makespan,
        start_spread=max(s for _, s in procs.values()) - min(s for _, s in procs.values()),
        peak_rss=meter.peak_rss, peak_processes=meter.peak_processes,
        vault_cpu=(cpu_after - cpu_before) if cpu_after is not None and cpu_before is not None
        else meter.sampled_cpu,
        machine_cpu=busy_after - busy_before, rsync_timeout=rsync_timeout,
    )  # fmt: skip
    night.order_violations = order_violations(runs)
    night.extra["waiting_at_gate"] = waiting_at_gate
    if stall is not None and staller is not None and staller.stopped_at is not None:
        night.stalled = stall.name
        stopped = staller.stopped_at - begin
        done = released if released is not None else ended[stall.name]
        night.stalled_held = done - stopped
        night.finished_meanwhile = sum(
            1 for r in runs if r.host != stall.name and stopped < r.ended < done
        )
        night.extra["stalled_state"] = next(r.state for r in runs if r.host == stall.name)
    return night


def _host_run(fleet: Fleet, host: Host, started: tuple[subprocess.Popen, float], end: float,
              begin_wall: float) -> HostRun:  # fmt: skip
    proc, start = started
    repo = HostRepo(fleet.repo, host.name)
    attempts = repo.attempts()
    record = (repo.read_record(attempts[-1].name) or {}) if attempts else {}
    queue = record.get("queue", {})
    stats = record.get("stats", {})
    problem = own_snapshot_problem(fleet, host) if proc.returncode == 0 else "failed"
    return HostRun(
        host=host.name, exit=proc.returncode, started=round(start, 3), ended=round(end, 3),
        queue_wait=float(record.get("queue_wait", 0.0)), ticket=int(queue.get("ticket", -1)),
        arrived=round(float(queue.get("arrived", begin_wall)) - begin_wall, 3),
        state=str(record.get("state", "")), files=int(stats.get("files", 0)),
        transferred=int(stats.get("bytes_received", 0)), good=problem == "", problem=problem,
    )  # fmt: skip
