"""One backup, as the login shell of the grabber user runs it.

sshd ── grabber -c "pullsnap-grabber host=web1" ── SSH_ORIGINAL_COMMAND=pullsnap
  1 binding from the forced command; peer from SSH_CONNECTION
  2 handoff from stdin (size limit, deadline)      nothing touched yet
  3 one-time key -> private ssh-agent               refused key: stop here
  4 lock <repo>/web1, then backup.run_backup: admit, prepare, pull, finish
  5 last stdout line: pullsnap-result {...}; exit status = the verdict
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from pullsnap import errors, report, versions
from pullsnap.childenv import child_env
from pullsnap.config import DEFAULT_GRABBER_CONFIG, GrabberConfig, load_grabber
from pullsnap.grabber.confine import receiver
from pullsnap.grabber.session import agent, binding, intake
from pullsnap.handoff import Handoff

# What a pull needs beyond this (rsync's driver, Landlock, the repository)
# is imported in pull_once, after Early has started ssh-agent and the rsync
# version probe: they come up while Python loads it.


class Reporter:
    """Lines for the initiator on stdout, flushed at once."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def emit(self, line: str) -> None:
        # If the initiator went away, finish the run and its record anyway.
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            pass

    def log(self, text: str) -> None:
        self.emit(report.log_line(text))

    def progress(self, p: report.Progress) -> None:
        self.emit(report.progress_line(p))

    def queued(self, text: str) -> None:
        self.emit(report.queued_line(text))


PRIVATE_PREFIX = "pullsnap-grab-"
# A private directory this old whose agent no longer answers belongs to a
# grabber that was killed (SIGKILL leaves no chance to remove it).
STALE_AFTER = 600.0


def _private_base() -> str:
    """Where private directories go.  Their paths go into ssh -o options
    through rsync -e, which split on whitespace: /tmp when the usual base
    has odd characters."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    if not os.path.isdir(base) or not re.match(r"^/[A-Za-z0-9._/-]*\Z", base):
        base = "/tmp"
    return base


def _private_dir() -> str:
    """A 0700 directory for the agent socket, known_hosts and public key."""
    path = tempfile.mkdtemp(prefix=PRIVATE_PREFIX, dir=_private_base())
    os.chmod(path, 0o700)
    return path


def stale_private_dirs(base: str, uid: int, now: float) -> list[str]:
    """Private directories in `base` that killed grabbers of user `uid` left:
    ours (never another user's), older than STALE_AFTER, and their agent's
    socket refuses or is gone.  A live run's agent answers; a starting
    run's directory is new."""
    found = []
    with os.scandir(base) as entries:
        for entry in entries:
            if not entry.name.startswith(PRIVATE_PREFIX):
                continue
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                ours = stat.S_ISDIR(st.st_mode) and st.st_uid == uid
                if ours and now - st.st_mtime > STALE_AFTER and not _answers(entry.path):
                    found.append(entry.path)
    return found


def _answers(private: str) -> bool:
    """Does the agent in this private directory still accept connections?"""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(os.path.join(private, "agent"))
        except (FileNotFoundError, ConnectionRefusedError):
            return False
        except OSError:
            return True  # cannot tell: leave it
    return True


def sweep_private_dirs() -> None:
    """Remove what killed grabbers of this user left (no secrets in it: an
    agent socket, a public key, known_hosts; but they pile up)."""
    with contextlib.suppress(OSError):
        for path in stale_private_dirs(_private_base(), os.geteuid(), time.time()):
            shutil.rmtree(path, ignore_errors=True)


class Early:
    """What a run needs from other programs, started before the handoff is
    read and before the modules a pull needs are loaded, so that they come
    up meanwhile: the private directory, ssh-agent in it, `rsync --version`."""

    def __init__(self, cfg: GrabberConfig) -> None:
        self.private = _private_dir()
        self.agent: Any = None
        self.rsync_version = versions.start_probe((cfg.rsync, "--version"))
        try:
            self.agent = agent.start_agent(self.private, cfg.ssh_agent)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Kill the agent if nothing took it over, reap the probe, remove the directory."""
        if self.agent is not None and self.agent.poll() is None:
            self.agent.kill()
            self.agent.wait()
        self.rsync_version()
        shutil.rmtree(self.private, ignore_errors=True)


def check_repository(cfg: GrabberConfig) -> None:
    try:
        st = os.stat(cfg.repository)
    except FileNotFoundError:
        raise errors.RunFailed(
            f"repository {cfg.repository} does not exist: create it owned by the grabber user, "
            "mode 0700"
        ) from None
    if st.st_uid != os.geteuid() or not os.access(cfg.repository, os.W_OK | os.X_OK):
        raise errors.RunFailed(f"repository {cfg.repository} is not owned and writable by us")


def allow_rsync(cfg: GrabberConfig, version: tuple[int, ...] | None) -> str:
    """The receiving rsync's version (probed by Early) as text; refuse one
    older than 3.4.0 unless allowed."""
    risk = versions.rsync_risk(version)
    if risk is not None and not cfg.allow_unsafe_rsync:
        raise errors.Refused(
            f"the backup host's rsync ({cfg.rsync}) {risk}: upgrade it, or set "
            "allow_unsafe_rsync = true in its grabber configuration"
        )
    return versions.dotted(version)


def pull_once(
    cfg: GrabberConfig,
    host_name: str,
    peer: str,
    h: Handoff,
    out: Reporter,
    held: tuple[str, ...] = (),
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    early: Early | None = None,
) -> dict[str, Any]:
    """Everything after a valid handoff; returns the result for the initiator."""
    from pullsnap import landlock
    from pullsnap.grabber.run import backup
    from pullsnap.grabber.run.context import Run
    from pullsnap.grabber.session import slots
    from pullsnap.grabber.store.base import open_store
    from pullsnap.grabber.store.repository import HostRepo, iso
    from pullsnap.grabber.transfer import pull

    own = early is None
    early = early or Early(cfg)
    try:
        rsync_version = allow_rsync(cfg, early.rsync_version())
        mode = receiver.receiver_mode(cfg, held, out.log)
        private = early.private
        with agent.one_time_agent(
            h.client_key, private, cfg.ssh_agent, cfg.ssh_add, started=early.agent
        ) as key:
            known_hosts = os.path.join(private, "known_hosts")
            with open(known_hosts, "w", encoding="ascii") as f:
                f.write(pull.known_hosts_line(h.host_key))
            connect = pull.ConnectBack(
                user=h.user,
                address=peer,
                port=h.port,
                known_hosts=known_hosts,
                public_key_file=key.public_file,
                agent_socket=key.socket,
                connect_timeout=cfg.connect_timeout,
            )
            if h.probe:
                result = _probe(cfg, connect, h, private, mode, held, out)
                if result["exit"] == errors.OK:
                    abi = landlock.abi_version()
                    result["message"] += f" (backup host: rsync {rsync_version}, {mode}, " + (
                        f"Landlock ABI {abi})" if abi else "no Landlock)"
                    )
                return result
            check_repository(cfg)
            store = open_store(HostRepo(cfg.repository, host_name))
            started = now()
            holder = {"pid": os.getpid(), "since": iso(started)}
            limit, patience = cfg.max_concurrent_pulls, cfg.queue_timeout
            queue = slots.pull_slot(cfg.repository, limit, patience, out.queued, log=out.log)
            with store.host.lock(holder), queue:
                return backup.run_backup(
                    Run(cfg=cfg, store=store, connect=connect, handoff=h,
                        fingerprint=key.fingerprint, mode=mode, held=held, out=out, now=now)
                )  # fmt: skip
    finally:
        if own:
            early.close()


def _probe(cfg, connect, h, private, mode, held, out) -> dict[str, Any]:
    from pullsnap.grabber.transfer import pull

    target = os.path.join(private, "probe")
    os.mkdir(target, 0o700)
    jail = receiver.confine(cfg, mode, held, target, private, h.port, out.log)
    spec = pull.PullSpec(
        rsync=cfg.rsync, ssh=cfg.ssh, connect=connect, sources=h.paths, target=target,
        excludes=("*",), mode=mode, timeout=cfg.rsync_timeout, dry_run=True,
    )  # fmt: skip
    try:
        result = pull.run_rsync(pull.rsync_argv(spec), child_env(), out.progress, out.log,
                                jail.preexec(), cfg.rsync_timeout * 4)  # fmt: skip
    finally:
        jail.close()
    state, code, message = pull.judge(result)
    return {"status": "probe-ok" if code == errors.OK else state, "exit": code,
            "message": message or "handshake and gate check passed", "mode": mode}  # fmt: skip


def serve(
    argv: list[str],
    environ: Mapping[str, str],
    stdin_fd: int,
    stdout: TextIO,
    held: tuple[str, ...] = (),
) -> int:
    """The login-shell entry point; returns the exit status."""
    out = Reporter(stdout)
    early: Early | None = None
    try:
        bound = binding.binding_from_login(argv, environ)
        cfg = load_grabber(bound.config or DEFAULT_GRABBER_CONFIG)
        peer = binding.peer_address(environ)
        early = Early(cfg)
        h = intake.read_handoff(stdin_fd, cfg.handoff_timeout)
        result = pull_once(cfg, bound.host, peer, h, out, held, early=early)
    except OSError as e:
        return _fail(out, errors.RunFailed(f"{e.strerror or e}: {e.filename or ''}".rstrip(": ")))
    except errors.PullsnapError as e:
        return _fail(out, e)
    finally:
        if early is not None:
            early.close()
    out.emit(report.result_line(result))
    # Snapshots retention moved to the trash go now, outside the host lock:
    # the next run of this host need not wait for a large deletion.
    from pullsnap.grabber.store.base import open_store
    from pullsnap.grabber.store.repository import HostRepo

    with contextlib.suppress(OSError):
        open_store(HostRepo(cfg.repository, bound.host)).empty_trash()
    sweep_private_dirs()
    return int(result["exit"])


def _fail(out: Reporter, e: errors.PullsnapError) -> int:
    with contextlib.suppress(BrokenPipeError):
        print(f"grabber error: {e}", file=sys.stderr, flush=True)
    status = "refused" if e.exit_code == errors.REFUSED else "failed"
    out.emit(report.result_line({"status": status, "exit": e.exit_code, "message": str(e)}))
    return e.exit_code
