"""One run (run.py): its pure parts, and its seams on a fake reactor."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pullsnap.initiator.run import login_key_problem

DENIED = "pullsnap@vault: Permission denied (publickey).\n"


def test_a_key_ssh_could_not_load_is_named() -> None:
    stderr = 'Load key "/etc/pullsnap/id_ed25519": bad permissions\n' + DENIED
    assert login_key_problem(stderr, readable=True) == "bad permissions"
    assert login_key_problem('Load key "/k": invalid format\n' + DENIED, True) == "invalid format"


def test_a_missing_key_is_named_and_a_refused_one_is_not() -> None:
    assert login_key_problem(DENIED, readable=False) == "missing, or not readable by this user"
    assert login_key_problem(DENIED, readable=True) == ""


# --- the run's seams, on a fake reactor ---------------------------------------------
#
# _Run drives five children and the door through the reactor it is given.
# SpawningReactor (the door tests' FakeReactor, plus spawnProcess) records
# each spawn and hands the protocol a FakeProcess; the test plays the
# children's part (ssh-keygen writes its files and the FIFO, ssh prints the
# grabber's lines) and moves task.Clock for the deadlines.


_PIDS = itertools.count(40000)


class FakeProcess:
    """The transport a spawned protocol writes to; the test ends it."""

    def __init__(self, proto, args: list[str], env: dict, path, child_fds) -> None:
        self.proto, self.args, self.env, self.path, self.child_fds = (
            proto, args, env, path, child_fds
        )  # fmt: skip
        self.pid = next(_PIDS)
        self.stdin = b""
        self.stdin_closed = False
        self.signals: list[int] = []

    @property
    def program(self) -> str:
        """The command after the `setpriv ... --` prefix."""
        return self.args[self.args.index("--") + 1]

    def write(self, data: bytes) -> None:
        assert not self.stdin_closed
        self.stdin += data

    def closeStdin(self) -> None:
        self.stdin_closed = True

    def signalProcess(self, sig: int) -> None:
        self.signals.append(sig)

    def end(self, code: int = 0, signal: int | None = None, stdout: bytes = b"") -> None:
        from twisted.internet import error
        from twisted.python.failure import Failure

        if stdout:
            self.proto.outReceived(stdout)
        reason = error.ProcessDone(0) if code == 0 and signal is None else (
            error.ProcessTerminated(exitCode=code if signal is None else None, signal=signal)
        )  # fmt: skip
        self.proto.processEnded(Failure(reason))


def _spawning_reactor():
    from tests.initiator.test_door import FakeReactor

    class SpawningReactor(FakeReactor):
        def __init__(self) -> None:
            super().__init__()
            self.spawned: list[FakeProcess] = []

        def spawnProcess(self, proto, executable, args, env=None, path=None, childFDs=None):
            assert executable == args[0]
            process = FakeProcess(proto, list(args), dict(env or {}), path, childFDs)
            self.spawned.append(process)
            proto.makeConnection(process)
            return process

    return SpawningReactor()


def _keypair(directory, name: str) -> tuple[bytes, str]:
    import subprocess

    path = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.read_bytes(), path.with_suffix(".pub").read_text()


@dataclass
class Started:
    reactor: Any
    cfg: Any
    dest: Any
    run_dir: Path
    outcomes: list
    progress: list
    ssh: FakeProcess
    client_private: bytes
    host_public: str


def _start(tmp_path: Path) -> Started:
    """A run of one destination, up to the point where both keys exist."""
    import os

    from pullsnap.config import Destination, InitiatorConfig
    from pullsnap.initiator import run

    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    dest = Destination(name="vault", host="vault.example", allow_from=("127.0.0.1",),
                       sources=("/etc", "/srv"), excludes=("*.tmp",))  # fmt: skip
    cfg = InitiatorConfig(runtime_dir=str(runtime), listen_address="127.0.0.1",
                          connect_back_timeout=120, run_timeout=3600,
                          destinations=(dest,))  # fmt: skip
    reactor = _spawning_reactor()
    progress: list = []
    hooks = run.Hooks(progress=lambda name, p: progress.append((name, p)))
    outcomes: list = []
    run.run_destination(reactor, cfg, dest, hooks).addCallback(outcomes.append)
    ssh, host_keygen, client_keygen = reactor.spawned
    [run_dir] = runtime.iterdir()
    _, host_public = _keypair(tmp_path, "host")
    client_private, client_public = _keypair(tmp_path, "client")
    # ssh-keygen's part: the host key's files, the one-time key into the FIFO.
    (run_dir / "host_key.pub").write_text(host_public)
    host_keygen.end(0)
    fifo = os.open(run_dir / "client_key", os.O_WRONLY | os.O_NONBLOCK)
    os.write(fifo, client_private)
    os.close(fifo)
    (run_dir / "client_key.pub").write_text(client_public)
    client_keygen.end(0)
    return Started(reactor, cfg, dest, run_dir, outcomes, progress, ssh, client_private,
                   host_public)  # fmt: skip


def test_the_happy_path_spawns_ssh_two_keygens_then_sshd_and_takes_the_verdict(tmp_path) -> None:
    import os
    import socket

    from pullsnap import errors, handoff, report

    run = _start(tmp_path)
    reactor, cfg, dest, ssh, run_dir = run.reactor, run.cfg, run.dest, run.ssh, str(run.run_dir)
    # The call to the backup host started first; the keygens overlap it.
    programs = [p.program for p in reactor.spawned]
    assert programs == [cfg.ssh, cfg.ssh_keygen, cfg.ssh_keygen]
    assert ssh.args[-3:] == ["--", "vault.example", "pullsnap"]
    assert ssh.env == {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C",
                       "HOME": os.environ.get("HOME", "/")}  # fmt: skip
    assert reactor.spawned[2].stdin == b"y\n"  # "Overwrite (y/n)?" of the FIFO
    # Once both keys exist, the handoff goes to ssh's stdin, whole, and stdin closes.
    assert ssh.stdin_closed
    sent = handoff.decode(ssh.stdin)
    assert (sent.paths, sent.excludes, sent.probe) == (dest.sources, dest.excludes, False)
    assert sent.client_key.encode() == run.client_private
    assert sent.host_key == " ".join(run.host_public.split()[:2])
    assert sorted(os.listdir(run_dir)) == ["authorized_keys", "lifeline", "sshd_config"]

    # The grabber connects back: sshd -i gets the socket as its stdin and stdout.
    with socket.create_connection(("127.0.0.1", sent.port), timeout=5):
        [door] = reactor.readers
        door.doRead()
    sshd = reactor.spawned[3]
    assert sshd.program == cfg.sshd and sshd.args[-4:] == [
        "-i", "-e", "-f", os.path.join(run_dir, "sshd_config")]  # fmt: skip
    assert sshd.child_fds[0] == sshd.child_fds[1] and isinstance(sshd.child_fds[0], int)
    assert reactor.readers == set()  # the door admits no one else

    # rsync is done: sshd ends, then ssh with the grabber's lines.
    sshd.end(255)  # sshd -i as non-root ends 255 even after a good session
    result = {"status": "ok", "exit": 0, "snapshot": "2026-11-25T021700Z", "host": "web1"}
    lines = report.progress_line(report.Progress(1024, 50, "1.0MB/s", "0:00:01", 3)) + "\n"
    ssh.end(0, stdout=(lines + report.result_line(result) + "\n").encode())
    [outcome] = run.outcomes
    assert (outcome.code, outcome.result) == (errors.OK, result)
    assert run.progress == [("vault", report.Progress(1024, 50, "1.0MB/s", "0:00:01", 3))]
    assert all(p.signals == [] for p in reactor.spawned), "nothing needed killing"
    assert not os.path.exists(run_dir)
    assert reactor.getDelayedCalls() == []  # every deadline was cancelled


def test_no_connect_back_ends_the_call_at_the_deadline(tmp_path) -> None:
    import signal

    from pullsnap import errors

    run = _start(tmp_path)
    reactor, cfg, ssh = run.reactor, run.cfg, run.ssh
    reactor.advance(cfg.connect_back_timeout - 1)
    assert run.outcomes == [] and ssh.signals == []
    reactor.advance(2)
    # The door gave up: ssh to the backup host is killed, and its end is the verdict.
    assert ssh.signals == [signal.SIGKILL]
    assert run.outcomes == []
    ssh.end(signal=signal.SIGKILL)
    [outcome] = run.outcomes
    assert outcome.code == errors.TIMEOUT
    assert outcome.message == "the backup host did not connect back within 120 s"
    assert [p.program for p in reactor.spawned] == [cfg.ssh, cfg.ssh_keygen, cfg.ssh_keygen]
    assert not run.run_dir.exists()
    assert reactor.readers == set() and reactor.getDelayedCalls() == []
