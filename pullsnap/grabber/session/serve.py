"""One backup, as the login shell of the grabber user runs it.

sshd ── grabber -c "pullsnap-grabber host=web1" ── SSH_ORIGINAL_COMMAND=pullsnap
  1 binding from the forced command; peer from SSH_CONNECTION
  2 one of web1's session places (sessions.py)     all held: refused, nothing started
  3 handoff from stdin (size limit, deadline)      nothing touched yet
  4 one-time key -> private ssh-agent               refused key: stop here
  5 lock <repo>/web1, then backup.run_backup: admit, a pull slot, prepare,
    pull, finish (a probe: the same lock and a slot, then a handshake)
  6 last stdout line: pullsnap-result {...}; exit status = the verdict
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import stat
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

from pullsnap import errors, report, versions
from pullsnap.childenv import child_env
from pullsnap.config import DEFAULT_GRABBER_CONFIG, GrabberConfig, load_grabber
from pullsnap.grabber.confine import receiver
from pullsnap.grabber.session import binding, intake, sessions
from pullsnap.grabber.session.early import Early, sweep
from pullsnap.grabber.store.space import is_no_space
from pullsnap.handoff import Handoff

if TYPE_CHECKING:
    from pullsnap.grabber.store.repository import HostRepo
    from pullsnap.grabber.transfer.pull import ConnectBack

# What a pull needs beyond this (rsync's driver, Landlock, the repository)
# is imported in pull_once, after Early (early.py) has started ssh-agent and
# the rsync version probe: they come up while Python loads it.


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


def check_repository(cfg: GrabberConfig) -> None:
    """What `grabber check` says of the repository, as a refusal with its fix."""
    repo = cfg.repository
    user, group = _whoami()
    try:
        st = os.stat(repo)
    except FileNotFoundError:
        raise errors.RunFailed(
            f"repository {repo} does not exist -- fix: install -d -o {user} -g {group} "
            f"-m 0700 {repo}"
        ) from None
    if st.st_uid != os.geteuid() or not os.access(repo, os.W_OK | os.X_OK):
        raise errors.RunFailed(
            f"repository {repo} is not owned and writable by {user} -- fix: "
            f"chown {user}:{group} {repo} && chmod 0700 {repo}"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        # What `grabber check` calls a problem stops runs too: other users
        # could read every host's files (README step 2: 0700).
        raise errors.Refused(
            f"repository {cfg.repository} is mode {mode:04o}, open to other users: runs are "
            f"refused until it is 0700 -- fix: chmod 0700 {cfg.repository}"
        )


def _whoami() -> tuple[str, str]:
    """This process's user and group names, as the fixes name them."""
    import grp
    import pwd

    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        user = str(os.geteuid())
    try:
        group = grp.getgrgid(os.getegid()).gr_name
    except KeyError:
        group = str(os.getegid())
    return user, group


def allow_rsync(cfg: GrabberConfig, version: tuple[int, ...] | None) -> str:
    """The receiving rsync's version (probed by Early) as text; refuse one
    older than 3.4.0 unless allowed."""
    risk = versions.rsync_risk(version)
    if risk is not None and not cfg.allow_unsafe_rsync:
        raise errors.Refused(
            f"the backup host's rsync ({cfg.rsync}) {risk}: upgrade it, or set "
            f"allow_unsafe_rsync = true in {cfg.path or 'its grabber configuration'}"
        )
    return versions.dotted(version)


def pull_once(
    cfg: GrabberConfig,
    host_name: str,
    peer: str,
    h: Handoff,
    out: Reporter,
    early: Early,
    held: tuple[str, ...] = (),
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> dict[str, Any]:
    """Everything after a valid handoff; returns the result for the initiator."""
    from pullsnap import landlock
    from pullsnap.grabber.run import backup
    from pullsnap.grabber.run.context import Run
    from pullsnap.grabber.session import slots
    from pullsnap.grabber.store.base import open_store
    from pullsnap.grabber.store.repository import HostRepo, iso
    from pullsnap.grabber.store.storekind import settle
    from pullsnap.grabber.transfer import pull

    assert early.agent is not None
    rsync_version = allow_rsync(cfg, early.rsync_version())
    mode = receiver.receiver_mode(cfg, held, out.log)
    key = early.agent.add(h.client_key, cfg.ssh_add)
    known_hosts = os.path.join(early.private, "known_hosts")
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
    host = HostRepo(cfg.repository, host_name)
    limit = cfg.max_concurrent_pulls
    if h.probe:
        # A probe transfers nothing, so min_interval does not hold it back; the
        # host lock and the slots do, and its own deadline covers both waits.
        # It needs the host's lock, not its store (it writes no tree).
        started = time.monotonic()
        patience = min(cfg.queue_timeout, cfg.probe_timeout)
        queue = slots.pull_slot(cfg.repository, limit, patience, out.queued, log=out.log,
                                who=host_name)  # fmt: skip
        with host.lock({"pid": os.getpid(), "since": iso(now()), "by": "a probe"}), queue:
            left = max(1.0, cfg.probe_timeout - (time.monotonic() - started))
            # A btrfs host's runs send --inplace, so its probe does too: a gate
            # older than the btrfs store refuses it here (transfer/oldgate.py).
            in_place = settle(host, cfg.store)[0].kind == "btrfs"
            result = _probe(cfg, connect, h, early.private, mode, held, out, left, host, in_place)
            if result["exit"] == errors.OK:
                abi = landlock.abi_version()
                result["message"] += f" (backup host: rsync {rsync_version}, {mode}, " + (
                    f"Landlock ABI {abi})" if abi else "no Landlock)"
                )
            return result
    store = open_store(host, cfg.store, strict=True)
    # Admission (backup.run_backup) comes before the queue: a refused run
    # never holds a place in it.
    queue = slots.pull_slot(cfg.repository, limit, cfg.queue_timeout, out.queued, log=out.log,
                            who=host_name)  # fmt: skip
    with host.lock({"pid": os.getpid(), "since": iso(now())}):
        return backup.run_backup(
            Run(cfg=cfg, store=store, connect=connect, handoff=h, fingerprint=key.fingerprint,
                mode=mode, held=held, out=out, now=now),
            queue,
        )  # fmt: skip


def _probe(
    cfg: GrabberConfig, connect: ConnectBack, h: Handoff, private: str, mode: str,
    held: tuple[str, ...], out: Reporter, deadline: float, host: HostRepo, in_place: bool,
) -> dict[str, Any]:  # fmt: skip
    """A handshake through the gate that transfers nothing (initiator check
    --probe), ended after `deadline` seconds; `in_place`: with the options
    of a btrfs store's run."""
    from pullsnap.grabber.transfer import oldgate, pull

    target = os.path.join(private, "probe")
    os.mkdir(target, 0o700)
    jail = receiver.confine(cfg, mode, held, target, private, h.port, out.log)
    spec = pull.PullSpec(
        rsync=cfg.rsync, ssh=cfg.ssh, connect=connect, sources=h.paths, target=target,
        excludes=("*",), mode=mode, timeout=min(cfg.rsync_timeout, deadline), dry_run=True,
        in_place=in_place,
    )  # fmt: skip
    try:
        result = pull.run_rsync(pull.rsync_argv(spec), child_env(), out.progress, out.log,
                                jail.preexec(), deadline)  # fmt: skip
    finally:
        jail.close()
    state, code, message = pull.judge(result)
    refused = in_place and oldgate.verdict(
        result.errors, host.host, lambda: host.newest_good() is not None, cfg.path
    )
    if refused:
        state, code, message = refused
    return {"status": "probe-ok" if code == errors.OK else state, "exit": code,
            "message": message or "handshake and gate check passed", "mode": mode}  # fmt: skip


def serve(
    argv: list[str],
    environ: Mapping[str, str],
    stdin_fd: int,
    stdout: TextIO,
    held: tuple[str, ...] = (),
    *,
    load: Callable[[str], GrabberConfig] = load_grabber,
    start: Callable[[GrabberConfig], Early] = Early,
    pull: Callable[..., dict[str, Any]] = pull_once,
) -> int:
    """The login-shell entry point; returns the exit status.

    `load`, `start` and `pull` are what it reads and spawns (the
    configuration, the early programs, the pull itself), for tests to replace."""
    session = [sessions.Session()]
    try:
        return _serve(argv, environ, stdin_fd, stdout, held, load, start, pull, session)
    finally:
        # Held to the very end, the trash emptied included: a place is a
        # session's whole life.
        session[0].close()


def _serve(
    argv: list[str], environ: Mapping[str, str], stdin_fd: int, stdout: TextIO,
    held: tuple[str, ...], load: Callable[[str], GrabberConfig],
    start: Callable[[GrabberConfig], Early], pull: Callable[..., dict[str, Any]],
    session: list[sessions.Session],
) -> int:  # fmt: skip
    out = Reporter(stdout)
    early: Early | None = None
    host = ""
    try:
        bound = binding.binding_from_login(argv, environ)
        host = bound.host
        cfg = load(bound.config or DEFAULT_GRABBER_CONFIG)
        peer = binding.peer_address(environ)
        check_repository(cfg)
        # Before anything of this session starts (sessions.py).
        session[0] = sessions.hold(cfg.repository, bound.host, cfg.max_sessions_per_host)
        early = start(cfg)
        h = intake.read_handoff(stdin_fd, cfg.handoff_timeout)
        result = pull(cfg, bound.host, peer, h, out, early, held)
    except OSError as e:
        # A full filesystem anywhere (a record, a lock, a directory) is the
        # no-space outcome, like the guard's refusal: exit 5, not a crash.
        # Named for the host once the binding is known, as the run's own lines are.
        error = errors.NoSpace if is_no_space(e) else errors.RunFailed
        what = f"{e.strerror or e}: {e.filename or ''}".rstrip(": ")
        return _fail(out, error(f"{host}: {what}" if host else what))
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
    sweep()  # what killed grabbers of this user left
    return int(result["exit"])


def _fail(out: Reporter, e: errors.PullsnapError) -> int:
    with contextlib.suppress(BrokenPipeError):
        print(f"grabber error: {e}", file=sys.stderr, flush=True)
    status = "refused" if e.exit_code == errors.REFUSED else "failed"
    out.emit(report.result_line({"status": status, "exit": e.exit_code, "message": str(e)}))
    return e.exit_code
