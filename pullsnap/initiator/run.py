"""One backup run for one destination, orchestrated with Twisted.

initiator                                   backup host
─────────                                   ───────────
Door.listen(addr, 0) ── port ─┐
ssh-keygen host key           │
ssh-keygen ─FIFO─> client key │
ssh user@vault pullsnap ──────┴─ stdin: handoff ──> grabber
     stdout <── progress / log / result lines ────  │
                                                    │ ssh back to port
Door.accept_one() <── TCP from allowed address ─────┘
  └─> sshd -i -f run/sshd_config   (fd 0,1 = the socket)
        └─> $SHELL -c gate ──exec──> rsync --server --sender
ssh ends: its exit status is the grabber's verdict; sshd, door and the
run directory are torn down whatever happened.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer
from twisted.python import failure

from pullsnap import caps, errors, handoff, report
from pullsnap.config import Destination, InitiatorConfig
from pullsnap.initiator import advice, children, hostkeys, keys, lifeline, sshd, wiring
from pullsnap.initiator.door import Door
from pullsnap.names import normalise_address


@dataclass
class Outcome:
    """What one destination's run came to."""

    destination: str
    code: int = errors.FAILED
    message: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Hooks:
    """Where a run reports while it goes (the CLI decides how to show it)."""

    progress: Callable[[str, report.Progress], None] = lambda dest, p: None
    log: Callable[[str, str], None] = lambda dest, text: None


@dataclass
class _Run:
    reactor: Any
    cfg: InitiatorConfig
    dest: Destination
    hooks: Hooks
    probe: bool
    confine_root: Callable[[], bool]  # the --confine-root probe, answered when asked
    outcome: Outcome
    run_dir: str = ""
    door: Door | None = None
    sshd_proto: children.CollectingProtocol | None = None
    ssh_proto: children.CollectingProtocol | None = None
    door_error: Exception | None = None
    lifeline_fd: int = -1
    queued: bool = False
    # Set by cleanup: the deadline or a stop decided the outcome, and a child
    # that ends later (the killed ssh) must not rewrite it.
    closed: bool = False

    def log(self, text: str) -> None:
        self.outcome.log.append(text)
        self.hooks.log(self.dest.name, text)

    @defer.inlineCallbacks
    def go(self):
        cfg, dest = self.cfg, self.dest
        allow = wiring.resolve_allowed(dest)
        base = wiring.runtime_base(cfg)
        for left in lifeline.sweep(base):
            self.log(f"removed {left}, left behind by a run that was killed")
        self.run_dir = tempfile.mkdtemp(prefix=lifeline.RUN_DIR_PREFIX, dir=base)
        os.chmod(self.run_dir, 0o700)
        self.lifeline_fd = lifeline.hold(self.run_dir)
        turned_away = "refused a connection from {} (not allowed)"
        try:
            self.door = Door(
                self.reactor,
                cfg.listen_address,
                cfg.listen_port,
                allow,
                on_stranger=lambda peer: self.log(turned_away.format(peer)),
            )
        except OSError as e:
            where = f"{cfg.listen_address or 'every address'} port {cfg.listen_port}"
            raise errors.RunFailed(
                f"cannot listen on {where} (listen_address, listen_port): {e.strerror or e}"
            ) from None
        # The call to the backup host starts now: its TCP and SSH handshake
        # overlap the key generation; the handoff follows on its stdin.
        ended = self._call_backup_host()
        made = yield defer.gatherResults(
            [
                keys.make_host_key(self.reactor, cfg.ssh_keygen, self.run_dir, cfg.keygen_timeout),
                keys.make_client_key(
                    self.reactor, cfg.ssh_keygen, self.run_dir, cfg.keygen_timeout
                ),
            ],
            consumeErrors=True,
        ).addErrback(lambda f: f.value.subFailure if isinstance(f.value, defer.FirstError) else f)
        host_public, client = made
        self._write_sshd_files(client.public, allow)
        message = handoff.encode(
            handoff.Handoff(
                client_key=client.private.decode("ascii"),
                host_key=host_public,
                port=self.door.port,
                user=wiring.login_name(),
                paths=dest.sources,
                excludes=dest.excludes,
                probe=self.probe,
            )
        )
        accepted = self.door.accept_one(self.cfg.connect_back_timeout)
        accepted.addCallback(self._start_sshd)
        accepted.addErrback(self._door_failed)
        assert self.ssh_proto is not None
        self.ssh_proto.send_stdin(message)
        finished = yield ended
        if self.closed:
            return
        if self.door_error is not None and not self.outcome.result:
            raise self.door_error
        yield self._finish_sshd()
        self._judge(finished)

    def _door_failed(self, reason: failure.Failure) -> None:
        # Nobody came back in time: end the call so the run fails promptly.
        self.door_error = reason.value
        self.log(str(reason.value))
        if self.ssh_proto is not None:
            self.ssh_proto.kill()

    def _write_sshd_files(self, client_public: str, allow: tuple[str, ...]) -> None:
        gate = sshd.GateCommand(
            python=sys.executable,
            roots=self.dest.sources,
            rsync=self.cfg.rsync,
            nice=self.cfg.nice,
            ionice=self.cfg.ionice,
            log=os.path.join(self.run_dir, "gate.log"),
            confine_root=self.confine_root(),
            lifeline=os.path.join(self.run_dir, lifeline.NAME),
            once=os.path.join(self.run_dir, "gate.once"),
        )
        authorized = os.path.join(self.run_dir, "authorized_keys")
        config = sshd.DoorConfig(
            user=wiring.login_name(),
            host_key=os.path.join(self.run_dir, "host_key"),
            authorized_keys=authorized,
            gate=gate,
        )
        wiring.write_private(
            authorized, sshd.authorized_keys_line(client_public, allow, gate.shell_line())
        )
        wiring.write_private(os.path.join(self.run_dir, "sshd_config"), sshd.sshd_config(config))

    def _start_sshd(self, conn: socket.socket) -> None:
        self.log(f"connect-back from {normalise_address(conn.getpeername()[0])}")
        argv = wiring.sshd_argv(self.cfg, os.path.join(self.run_dir, "sshd_config"))
        self.sshd_proto = children.CollectingProtocol(argv, on_stderr_line=self._sshd_line)
        fd = conn.fileno()
        # The sender rsync needs CAP_DAC_READ_SEARCH; raise it ambient only
        # for this fork so no other child inherits it.
        with caps.ambient(caps.INITIATOR_CAPS if caps.have(caps.INITIATOR_CAPS) else ()):
            children.spawn(
                self.reactor,
                self.sshd_proto,
                children.with_pdeathsig(argv, keep_capabilities=True),
                children.child_env(),
                path="/",
                child_fds={0: fd, 1: fd, 2: "r"},
            )
        conn.close()

    def _sshd_line(self, line: str) -> None:
        if line.strip():
            self.log(f"sshd: {line.strip()}")

    def _call_backup_host(self) -> defer.Deferred:
        nodelay = not wiring.own_proxy(self.cfg, self.dest)
        argv = wiring.ssh_argv(self.cfg, self.dest, self.cfg.connect_back_timeout, nodelay)
        self.ssh_proto = children.CollectingProtocol(
            argv, on_stdout_line=self._grabber_line, on_stderr_line=self._ssh_err, hold_stdin=True
        )
        children.spawn(
            self.reactor,
            self.ssh_proto,
            children.with_pdeathsig(argv),
            children.child_env(HOME=os.environ.get("HOME", "/")),
            path="/",
        )
        return self.ssh_proto.ended

    def _grabber_line(self, line: str) -> None:
        kind, value = report.parse_line(line)
        if kind == report.PROGRESS:
            self.hooks.progress(self.dest.name, value)
        elif kind == report.RESULT and not self.closed:
            self.outcome.result = value
        elif kind == report.QUEUED:
            # The grabber waits for a pull slot (max_concurrent_pulls): the
            # connect-back deadline starts again with each of its reports.
            if not self.queued:
                self.log(f"grabber: {value}")
                self.queued = True
            if self.door is not None:
                self.door.postpone(self.cfg.connect_back_timeout)
        elif value.strip():
            self.log(f"grabber: {value}")

    def _ssh_err(self, line: str) -> None:
        if line.strip():
            self.log(f"ssh: {line.strip()}")

    @defer.inlineCallbacks
    def _finish_sshd(self):
        if self.door is not None:
            self.door.close()
        proto = self.sshd_proto
        if proto is None:
            return
        if not proto.ended.called:
            proto.kill(15)
            yield children.deadline(
                self.reactor, proto.ended, 5, "sshd exit", proto.kill
            ).addErrback(lambda f: None)

    def _judge(self, finished: children.Finished) -> None:
        result = self.outcome.result
        if result:
            code = result.get("exit")
            self.outcome.code = code if code in errors.EXIT_NAMES else errors.FAILED
            self.outcome.message = str(result.get("message", ""))
            return
        # When connectfd.py could not connect, it said why; ssh then adds these.
        tail = finished.stderr_tail(skip=("mm_receive_fd: ", "proxy dialer did not"))
        key_problem = login_key_problem(
            finished.stderr.decode("utf-8", "replace"), os.access(self.dest.identity_file, os.R_OK)
        )
        if finished.code == 255 and "Permission denied (publickey" in tail and key_problem:
            # Ours, not the backup host's: ssh never offered the key.
            self.outcome.code = errors.FAILED
            self.outcome.message = (
                f"this host's login key {self.dest.identity_file}: {key_problem} "
                f"(`{advice.initiator(self.cfg, 'check')}` says how to fix it)"
            )
        elif finished.code == 255 and "Permission denied (publickey" in tail:
            # ssh(1) exits 255 for its own errors; this one is the backup host
            # not knowing our login key, a refusal with a known fix.
            self.outcome.code = errors.REFUSED
            setup = advice.initiator(self.cfg, "setup")
            self.outcome.message = (
                f"{tail} (the backup host does not accept this host's login key: its "
                f"operator runs the `grabber authorize` line `{setup}` prints)"
            )
        elif finished.code == 255 and "Host key verification failed" in tail:
            # StrictHostKeyChecking=yes: the key is not the one pinned for it.
            self.outcome.code = errors.REFUSED
            refusal = hostkeys.parse_refusal(finished.stderr.decode("utf-8", "replace"))
            self.outcome.message = f"{tail} " + (
                f"({hostkeys.refused_message(self.dest, refusal)})" if refusal else
                f"(the backup host's key is not the one {self.dest.known_hosts} pins for it: "
                f"`{advice.initiator(self.cfg, 'check', '--probe')}` shows both)"
            )  # fmt: skip
        elif finished.code == 255:
            self.outcome.code = errors.UNREACHABLE
            self.outcome.message = tail or "ssh to the backup host failed"
        else:
            self.outcome.code = (
                finished.code if finished.code in errors.EXIT_NAMES else errors.FAILED
            )
            if self.outcome.code == errors.OK:
                self.outcome.code = errors.FAILED
            self.outcome.message = tail or f"the grabber ended with status {finished.code}"

    def kill_all(self) -> None:
        for proto in (self.ssh_proto, self.sshd_proto):
            if proto is not None and not proto.ended.called:
                proto.kill()
        if self.door is not None:
            self.door.close()

    def cleanup(self) -> None:
        self.closed = True
        self.kill_all()
        gate_log = os.path.join(self.run_dir, "gate.log") if self.run_dir else ""
        if gate_log and os.path.exists(gate_log):
            with open(gate_log, encoding="utf-8", errors="replace") as f:
                for line in f:
                    self.log(f"gate: {line.strip()}")
        if self.lifeline_fd >= 0:
            os.close(self.lifeline_fd)  # a sender still running ends now
            self.lifeline_fd = -1
        if self.run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)


def login_key_problem(ssh_stderr: str, readable: bool) -> str:
    """Why ssh could not offer the login key at all, or "" (pure).

    ssh(1) reports a key it cannot load as `Load key "PATH": REASON` (bad
    permissions, invalid format, permission denied) and a missing one not at
    all at LogLevel=ERROR; either way it then says "Permission denied
    (publickey)" as if the backup host had refused the key.
    """
    for line in ssh_stderr.splitlines():
        if line.startswith("Load key ") and ": " in line:
            return line.rsplit(": ", 1)[1].strip()
    return "" if readable else "missing, or not readable by this user"


@defer.inlineCallbacks
def run_destination(
    reactor: Any,
    cfg: InitiatorConfig,
    dest: Destination,
    hooks: Hooks = Hooks(),
    probe: bool = False,
    confine_root: Callable[[], bool] = lambda: True,
    stop: defer.Deferred | None = None,
):
    """Run one destination to its end; never raises, returns an Outcome.

    `stop` fires with a reason to end the run at once, as its deadline would."""
    started = time.monotonic()
    outcome = Outcome(destination=dest.name)
    run = _Run(reactor, cfg, dest, hooks, probe, confine_root, outcome)
    waited = children.deadline(
        reactor, run.go(), cfg.run_timeout, "the whole run", on_expiry=run.kill_all
    )

    def interrupt(reason: str) -> None:
        run.kill_all()
        if not waited.called:
            waited.errback(failure.Failure(errors.RunFailed(reason)))

    if stop is not None:
        stop.addCallback(interrupt)
    try:
        yield waited
    except errors.PullsnapError as e:
        outcome.code = e.exit_code
        outcome.message = str(e)
        if outcome.result:
            # The grabber already said what went wrong; keep its verdict.
            outcome.code = outcome.result.get("exit", outcome.code)
            outcome.message = str(outcome.result.get("message", outcome.message))
    except OSError as e:
        outcome.code = errors.FAILED
        outcome.message = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
    finally:
        run.cleanup()
        outcome.seconds = time.monotonic() - started
    if outcome.code != errors.OK and run.door is not None and run.door.strangers:
        # Often the cause: the backup host reaches us from another address.
        turned_away = ", ".join(dict.fromkeys(run.door.strangers))
        outcome.message += (
            f" (this host turned away a connect-back from {turned_away}: "
            f"not in allow_from of destination {dest.name})"
        )
    return outcome
