"""A real systemd as PID 1, in a container the test builds and boots.

`systemd-nspawn --boot` starts the host's own /usr/lib/systemd/systemd on a
small tree of ours; Debian 12 is usr-merged, so the tree is a few files in
etc/ plus symlinks (bin, sbin, lib, lib64 -> usr/...) and the host's /usr,
bind-mounted read-only.  Nothing is downloaded or cached: a tree takes
milliseconds to write and boots in well under a second.

    root/etc/      passwd, group, shadow, os-release, machine-id, hosts,
                   nsswitch.conf; systemd/system/ with default.target ->
                   basic.target (no getty, no logind, no dbus clients)
    root/var/lib/systemd/timers/   where Persistent= timers keep stamps
    root/usr/      the host's /usr (read-only)

The container shares the host's network namespace (the lab's sshd is on
127.0.0.1) and user namespace (uids are the host's).  Where systemd is not
PID 1 on the host there is no machined to register with and no scope to
ask for, so nspawn runs `--register=no --keep-unit`, in a cgroup the box
makes in each hierarchy that tracks processes (cgroup2, and v1's named
"systemd" one): nspawn puts the container in a `payload` child of the
cgroup it starts in, and two boxes must not share one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

NSPAWN = "/usr/bin/systemd-nspawn"
# systemd's PATH for what it starts (systemd.exec(5), ENVIRONMENT).
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_USR_MERGED = ("bin", "sbin", "lib", "lib64")


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str
    shell: str = "/bin/sh"


def _passwd(accounts: Iterable[Account]) -> tuple[str, str, str]:
    """passwd, group and shadow for root, nobody and `accounts` ('*': no password login)."""
    rows = [Account("root", 0, 0, "/root"),
            Account("nobody", 65534, 65534, "/nonexistent", "/usr/sbin/nologin"),
            *accounts]  # fmt: skip
    groups = {0: "root", 65534: "nogroup"} | {a.gid: a.name for a in accounts}
    passwd = "".join(f"{a.name}:x:{a.uid}:{a.gid}::{a.home}:{a.shell}\n" for a in rows)
    group = "".join(f"{name}:x:{gid}:\n" for gid, name in groups.items())
    shadow = "".join(f"{a.name}:*:19000:0:99999:7:::\n" for a in rows)
    return passwd, group, shadow


def write_tree(root: str, machine_id: str, accounts: Sequence[Account] = ()) -> None:
    """The container's root: its own /etc and /var, the host's /usr."""
    missing = [d for d in _USR_MERGED if os.path.lexists(f"/{d}") and not os.path.islink(f"/{d}")]
    assert not missing, f"the box needs a usr-merged host; /{missing[0]} is a directory"
    for d in ("etc/systemd/system", "var/lib/systemd/timers", "usr", "root", "srv", "opt"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for d in _USR_MERGED:
        if os.path.lexists(f"/{d}"):
            os.symlink(os.readlink(f"/{d}"), os.path.join(root, d))
    passwd, group, shadow = _passwd(accounts)
    files = {
        "etc/passwd": passwd,
        "etc/group": group,
        "etc/machine-id": machine_id + "\n",
        "etc/nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files\n",
        "etc/hosts": "127.0.0.1 localhost\n::1 localhost\n",
    }
    for name, text in files.items():
        put(root, name, text)
    put(root, "etc/shadow", shadow, mode=0o640)
    # nspawn looks for os-release before it mounts /usr (systemd-nspawn(1) --boot).
    shutil.copyfile("/usr/lib/os-release", os.path.join(root, "etc/os-release"))
    os.symlink("/usr/lib/systemd/system/basic.target",
               os.path.join(root, "etc/systemd/system/default.target"))  # fmt: skip
    for account in accounts:
        home = os.path.join(root, account.home.lstrip("/"))
        os.makedirs(home, mode=0o700, exist_ok=True)
        os.chown(home, account.uid, account.gid)


def put(root: str, path: str, text: str, mode: int = 0o644,
        owner: tuple[int, int] | None = None) -> str:  # fmt: skip
    """Write `text` to `path` inside the tree (parents made)."""
    full = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(full, mode)
    if owner is not None:
        os.chown(full, *owner)
    return full


def _tracking_cgroups() -> list[str]:
    """This process's cgroup in each hierarchy that tracks processes: the
    cgroup2 one and v1's named "systemd" one (proc(5) mountinfo, cgroups(7))."""
    paths = {}
    with open("/proc/self/cgroup", encoding="ascii") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            paths[controllers] = path
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            mount_point = fields[4]
            fstype, options = fields[fields.index("-") + 1], fields[-1].split(",")
            if fstype == "cgroup2" and "" in paths:
                found.append(mount_point + paths[""])
            elif fstype == "cgroup" and "name=systemd" in options and "name=systemd" in paths:
                found.append(mount_point + paths["name=systemd"])
    return [os.path.normpath(p) for p in found]


def _cgroup_pids(path: str) -> list[int]:
    pids = []
    for dirpath, _, _ in os.walk(path):
        procs = os.path.join(dirpath, "cgroup.procs")
        with contextlib.suppress(FileNotFoundError), open(procs, encoding="ascii") as f:
            pids += [int(pid) for pid in f.read().split()]
    return pids


def _remove_cgroup(path: str, timeout: float = 10) -> None:
    """Kill what is still in the cgroup (all of it the box's), wait for it
    to go, then remove the cgroup and its children, deepest first."""
    deadline = time.monotonic() + timeout
    while pids := _cgroup_pids(path):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} of the box outlived SIGKILL")
        time.sleep(0.05)
    for dirpath, _, _ in sorted(os.walk(path), key=lambda w: -w[0].count("/")):
        os.rmdir(dirpath)


def properties(text: str) -> dict[str, str]:
    """`systemctl show` output: one `Key=value` per line."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@dataclass
class Box:
    """One container: `root` is its tree, `hostname` its name inside."""

    root: str
    hostname: str
    binds: list[tuple[str, str, bool]] = field(default_factory=list)
    machine: str = field(default_factory=lambda: f"pullsnap-box-{secrets.token_hex(4)}")
    leader: int = 0
    process: subprocess.Popen | None = None
    cgroups: list[str] = field(default_factory=list)

    @property
    def log(self) -> str:
        return self.root.rstrip("/") + ".log"

    def bind(self, source: str, target: str | None = None, read_only: bool = True) -> None:
        self.binds.append((source, target or source, read_only))

    def boot(self, timeout: float = 60) -> None:
        """Start the container; return once its systemd reports ready."""
        binds = [f"--bind{'-ro' if ro else ''}={src}:{dst}" for src, dst, ro in self.binds]
        argv = [NSPAWN, "--boot", f"--directory={self.root}", f"--machine={self.machine}",
                f"--hostname={self.hostname}", "--register=no", "--keep-unit",
                "--console=passive", "--resolv-conf=off", "--timezone=off",
                "--link-journal=no", "--notify-ready=yes", "--bind-ro=/usr", *binds]  # fmt: skip
        self.cgroups = [os.path.join(p, self.machine) for p in _tracking_cgroups()]
        for path in self.cgroups:
            os.mkdir(path)
        with contextlib.ExitStack() as stack:
            # A short path of its own: a socket's path has at most 107 bytes.
            notify_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="pullsnap-box-"))
            notify_path = os.path.join(notify_dir, "notify")
            notify = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
            notify.bind(notify_path)
            log = stack.enter_context(open(self.log, "ab"))
            env = {"PATH": SYSTEMD_PATH, "NOTIFY_SOCKET": notify_path}
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=log, env=env,
                                            preexec_fn=self._enter_cgroups)  # fmt: skip
            self.leader = self._await_ready(notify, timeout)

    def _enter_cgroups(self) -> None:
        for path in self.cgroups:
            with open(os.path.join(path, "cgroup.procs"), "w", encoding="ascii") as f:
                f.write("0")  # "0": the writing process (cgroups(7))

    def _await_ready(self, notify: socket.socket, timeout: float) -> int:
        """nspawn's own sd_notify(3) messages: its leader's pid, then READY=1
        once the container's systemd has reached its default target."""
        leader = 0
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"systemd-nspawn exited {self.process.returncode}:\n{self.logged()}"
                )
            notify.settimeout(max(0.1, min(1.0, deadline - time.monotonic())))
            with contextlib.suppress(TimeoutError):
                fields = properties(notify.recv(4096).decode())
                leader = int(fields.get("X_NSPAWN_LEADER_PID", leader))
                if fields.get("READY") == "1" and leader:
                    return leader
            if time.monotonic() > deadline:
                raise RuntimeError(f"the container did not report ready:\n{self.logged()}")

    def logged(self) -> str:
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()[-4000:]

    def run(
        self, *argv: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        """Run a command inside the container, in all its namespaces (nsenter(1))."""
        assert self.leader, "the box is not booted"
        done = subprocess.run(
            ["nsenter", f"--target={self.leader}", "--all", "--", *argv],
            env={"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8", "SYSTEMD_PAGER": ""},
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr}")
        return done

    def show(self, unit: str, *names: str) -> dict[str, str]:
        """Unit properties, as `systemctl show -p NAME` prints them."""
        args = [f"--property={n}" for n in names]
        return properties(self.run("systemctl", "show", *args, "--", unit).stdout)

    def wait_for(self, what: str, test: Callable[[], bool], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not test():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.2)

    def stop(self, timeout: float = 30) -> None:
        """Halt the container (SIGTERM asks nspawn to shut its systemd down
        cleanly); kill what is left of it, then remove its cgroups."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for path in self.cgroups:
            _remove_cgroup(path)
        self.cgroups = []
        # nspawn leaves this behind when /run is not a tmpfs of its own.
        shutil.rmtree(f"/run/systemd/nspawn/propagate/{self.machine}", ignore_errors=True)
        self.leader = 0

    @contextlib.contextmanager
    def booted(self, timeout: float = 60) -> Iterator[Box]:
        try:
            self.boot(timeout)
            yield self
        except BaseException:
            if self.leader:  # for the failure report: what the container logged
                print(self.run("journalctl", "--no-pager", "--lines=60", check=False).stdout)
            raise
        finally:
            self.stop()
