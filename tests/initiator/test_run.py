"""One run (run.py): its pure parts, and _Run itself driven through
run_destination with a fake reactor that records what it spawns."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import error
from twisted.python import failure

from pullsnap import errors, handoff, report
from pullsnap.config import Destination, InitiatorConfig
from pullsnap.initiator import children, lifeline, run, wiring
from pullsnap.initiator.run import login_key_problem
from tests.initiator.test_door import FakeReactor

DENIED = "pullsnap@vault: Permission denied (publickey).\n"


def test_a_key_ssh_could_not_load_is_named() -> None:
    stderr = 'Load key "/etc/pullsnap/id_ed25519": bad permissions\n' + DENIED
    assert login_key_problem(stderr, readable=True) == "bad permissions"
    assert login_key_problem('Load key "/k": invalid format\n' + DENIED, True) == "invalid format"


def test_a_missing_key_is_named_and_a_refused_one_is_not() -> None:
    assert login_key_problem(DENIED, readable=False) == "missing, or not readable by this user"
    assert login_key_problem(DENIED, readable=True) == ""


def test_a_configured_runtime_dir_is_used_or_named_never_replaced(tmp_path) -> None:
    import pytest

    from pullsnap import errors
    from pullsnap.config import InitiatorConfig
    from pullsnap.initiator import wiring

    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    assert wiring.runtime_base(InitiatorConfig(runtime_dir=str(tmp_path)), env) == str(tmp_path)
    assert wiring.runtime_base(InitiatorConfig(), env) == str(tmp_path)
    missing = str(tmp_path / "missing")
    with pytest.raises(errors.RunFailed, match=f"runtime_dir {missing} "):
        wiring.runtime_base(InitiatorConfig(runtime_dir=missing), env)


def _ssh_with_config(tmp_path, text: str) -> str:
    """The real ssh, reading `text` as its ssh_config."""
    config = tmp_path / "ssh_config"
    config.write_text(text)
    wrapper = tmp_path / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {config} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def test_the_login_goes_through_connectfd_unless_ssh_config_routes_the_host(tmp_path) -> None:
    from pullsnap.config import Destination, InitiatorConfig
    from pullsnap.initiator import wiring

    dest = Destination(name="vault", host="vault.example", port=2222, sources=("/etc",))
    cases = [
        ("", False),
        ("Host vault.example\n    ProxyJump bastion.example\n", True),
        ("Host *\n    ProxyCommand nc %h %p\n", True),
        ("Host other.example\n    ProxyJump bastion.example\n", False),
    ]
    for text, expected in cases:
        cfg = InitiatorConfig(ssh=_ssh_with_config(tmp_path, text))
        assert wiring.own_proxy(cfg, dest) is expected, text
    argv = wiring.ssh_argv(InitiatorConfig(), dest, 30)
    proxy = next(w for w in argv if w.startswith("ProxyCommand="))
    assert proxy.endswith(" vault.example 2222 30") and "ProxyUseFdpass=yes" in argv
    assert not any("Proxy" in w for w in wiring.ssh_argv(InitiatorConfig(), dest, 30, False))


def test_when_ssh_cannot_say_the_operators_setup_is_left_alone(tmp_path) -> None:
    from pullsnap.config import Destination, InitiatorConfig
    from pullsnap.initiator import wiring

    dest = Destination(name="vault", host="vault.example", sources=("/etc",))
    broken = _ssh_with_config(tmp_path, "NoSuchOption yes\n")
    assert wiring.own_proxy(InitiatorConfig(ssh=broken), dest) is True
    assert wiring.own_proxy(InitiatorConfig(ssh=str(tmp_path / "absent")), dest) is True


# --- one run, with a fake reactor (_Run through run_destination) ----------------------------


class SpawningReactor(FakeReactor):
    """FakeReactor (a clock and a reader registry) that records each spawn and
    connects its protocol to a transport that records what it is told."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[tuple[Any, list[str], dict[str, str], Any]] = []

    def spawnProcess(self, proto, executable, args, env=None, path=None, childFDs=None):
        transport = FakeTransport(4000 + len(self.spawned))
        self.spawned.append((proto, list(args), dict(env or {}), childFDs))
        proto.makeConnection(transport)
        return transport

    def find(self, word: str) -> tuple[Any, list[str], dict[str, str], Any]:
        return next(s for s in self.spawned if any(word in arg for arg in s[1]))


class FakeTransport:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.written = b""
        self.stdin_closed = False
        self.signals: list[object] = []

    def write(self, data: bytes) -> None:
        self.written += data

    def closeStdin(self) -> None:
        self.stdin_closed = True

    def signalProcess(self, sig: object) -> None:
        self.signals.append(sig)


def _end(proto, code: int = 0) -> None:
    if code == 0:
        proto.processEnded(failure.Failure(error.ProcessDone(0)))
    else:
        proto.processEnded(failure.Failure(error.ProcessTerminated(exitCode=code)))


@pytest.fixture(scope="module")
def one_time_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    key = tmp_path_factory.mktemp("k") / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key.read_bytes(), (key.parent / "key.pub").read_text()


def _keygens_done(reactor: SpawningReactor, one_time_key: tuple[bytes, str]) -> None:
    """Be ssh-keygen for both keys: the host key's public half in its file, the
    one-time private key through the FIFO the initiator reads."""
    host, host_argv, _, _ = reactor.find("pullsnap-host")
    host_path = host_argv[host_argv.index("-f") + 1]
    with open(host_path + ".pub", "w") as f:
        f.write(one_time_key[1])
    _end(host)
    client, client_argv, _, _ = reactor.find("pullsnap-once")
    fifo = client_argv[client_argv.index("-f") + 1]
    writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    os.write(writer, one_time_key[0])
    os.close(writer)
    with open(fifo + ".pub", "w") as f:
        f.write(one_time_key[1])
    assert client.transport.written == b"y\n"  # "Overwrite (y/n)?"
    _end(client)


def _setup(tmp_path: Path) -> tuple[InitiatorConfig, Destination]:
    cfg = InitiatorConfig(runtime_dir=str(tmp_path), listen_address="127.0.0.1",
                          connect_back_timeout=30, run_timeout=600)  # fmt: skip
    dest = Destination(name="vault", host="127.0.0.1", allow_from=("127.0.0.1",),
                       sources=("/etc", "/home"), excludes=("*.tmp",))  # fmt: skip
    return cfg, dest


def test_a_run_hands_off_and_takes_the_grabbers_verdict(
    tmp_path: Path, one_time_key: tuple[bytes, str]
) -> None:
    cfg, dest = _setup(tmp_path)
    reactor = SpawningReactor()
    seen: list[tuple[str, str]] = []
    hooks = run.Hooks(progress=lambda d, p: seen.append((d, f"{p.percent}%")),
                      log=lambda d, text: seen.append((d, text)))  # fmt: skip
    done = run.run_destination(reactor, cfg, dest, hooks)
    # The call to the backup host starts before the keys are made.
    ssh, ssh_argv, ssh_env, _ = reactor.spawned[0]
    assert ssh_argv[:4] == [children.SETPRIV, "--pdeathsig", "KILL", "--inh-caps=-all"]
    assert ssh_argv[-2:] == ["127.0.0.1", wiring.LOGIN_COMMAND]
    assert set(ssh_env) == {"PATH", "LC_ALL", "HOME"}  # nothing of ours
    assert ssh.transport.written == b"" and not ssh.transport.stdin_closed
    [run_dir] = [p for p in tmp_path.iterdir() if p.name.startswith(lifeline.RUN_DIR_PREFIX)]
    assert (run_dir / lifeline.NAME).exists()

    _keygens_done(reactor, one_time_key)
    # The handoff went out on ssh's stdin: the sources, the door's port, the one-time key.
    sent = handoff.decode(ssh.transport.written)
    assert ssh.transport.stdin_closed
    assert sent.paths == dest.sources and sent.excludes == dest.excludes and not sent.probe
    assert sent.client_key.encode() == one_time_key[0] and 0 < sent.port < 65536
    assert sent.host_key == " ".join(one_time_key[1].split()[:2])
    assert (run_dir / "sshd_config").exists() and (run_dir / "authorized_keys").exists()

    ssh.outReceived(report.progress_line(report.Progress(1 << 20, 50, "1MB/s", "0:00:01")).encode()
                    + b"\n" + report.log_line("pulling /etc").encode() + b"\n")  # fmt: skip
    result = {
        "status": "complete",
        "exit": errors.OK,
        "message": "",
        "snapshot": "2026-11-25T021700Z",
    }
    ssh.outReceived(report.result_line(result).encode() + b"\n")
    _end(ssh, 255)  # sshd -i as non-root: 255 even after a good session
    outcome = done.result
    assert outcome.code == errors.OK and outcome.result["snapshot"] == "2026-11-25T021700Z"
    assert ("vault", "50%") in seen and ("vault", "grabber: pulling /etc") in seen
    assert not run_dir.exists()  # the run directory goes with the run
    assert reactor.getDelayedCalls() == []  # no deadline left behind


def test_without_a_verdict_a_refused_login_is_a_refusal(
    tmp_path: Path, one_time_key: tuple[bytes, str]
) -> None:
    cfg, dest = _setup(tmp_path)
    key = tmp_path / "id"
    key.write_bytes(one_time_key[0])
    key.chmod(0o600)
    dest = dataclasses.replace(dest, identity_file=str(key))
    reactor = SpawningReactor()
    done = run.run_destination(reactor, cfg, dest)
    _keygens_done(reactor, one_time_key)
    ssh = reactor.spawned[0][0]
    ssh.errReceived(b"pullsnap@127.0.0.1: Permission denied (publickey).\n")
    _end(ssh, 255)
    assert done.result.code == errors.REFUSED
    assert "Permission denied (publickey)" in done.result.message


def test_the_whole_run_ends_at_its_deadline_and_kills_what_it_started(
    tmp_path: Path, one_time_key: tuple[bytes, str]
) -> None:
    cfg, dest = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, run_timeout=60, connect_back_timeout=300)
    reactor = SpawningReactor()
    done = run.run_destination(reactor, cfg, dest)
    _keygens_done(reactor, one_time_key)
    ssh = reactor.spawned[0][0]
    reactor.advance(61)
    assert ssh.transport.signals  # killed
    _end(ssh, 137)
    assert done.result.code == errors.TIMEOUT
    assert "took longer than 60 s" in done.result.message
    assert not any(p.name.startswith(lifeline.RUN_DIR_PREFIX) for p in tmp_path.iterdir())
