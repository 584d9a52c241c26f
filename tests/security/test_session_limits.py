"""A host's logins and probes cannot tie up the backup host (issue 15, item 6).

One host's key may hold at most `max_sessions_per_host` sessions at once:
stalled logins (the handoff never comes) each cost a grabber, an ssh-agent
and an sshd until `handoff_timeout`; one more is refused before its grabber
starts ssh-agent or makes a file, with one result line the initiator shows
(exit 4).  Probes (`initiator --dry-run`) take the host lock and a pull slot
like runs, and give up after `probe_timeout`, not the run's deadlines.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pullsnap import errors
from pullsnap.grabber.session import slots
from pullsnap.grabber.store.repository import HostRepo
from tests.labfixtures import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.security]


def _wait_for(predicate: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _counting_agent(site: Site) -> tuple[str, str]:
    """An ssh_agent that notes each start, then is the real ssh-agent."""
    g = site.lab.grabber_pw()
    log = os.path.join(site.root, "agents")
    with open(log, "w"):
        pass
    os.chown(log, g.pw_uid, g.pw_gid)
    wrapper = os.path.join(site.root, "ssh-agent")
    with open(wrapper, "w") as f:
        f.write(f'#!/bin/sh\necho "$$" >> {log}\nexec /usr/bin/ssh-agent "$@"\n')
    os.chmod(wrapper, 0o755)
    return wrapper, log


def _started(log: str) -> int:
    with open(log) as f:
        return len(f.read().split())


def _stalled_login(site: Site) -> subprocess.Popen:
    """A login with the host's key that never sends its handoff."""
    lab = site.lab
    assert lab.sshd is not None
    argv = ["ssh", "-F", "/dev/null", "-T", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-i", lab.path("initiator", "id_ed25519"),
            "-o", f"UserKnownHostsFile={lab.path('initiator', 'known_hosts')}",
            "-o", "StrictHostKeyChecking=yes", "-p", str(lab.sshd.port),
            "-l", lab.grabber_user, "127.0.0.1", "pullsnap"]  # fmt: skip
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip


def test_one_login_more_than_the_cap_is_refused_before_anything_starts(site: Site) -> None:
    os.makedirs(site.src)
    with open(os.path.join(site.src, "f"), "w") as f:
        f.write("x")
    agent, log = _counting_agent(site)
    site.regrab(max_sessions_per_host=2, handoff_timeout="2m", ssh_agent=agent)
    stalled = [_stalled_login(site) for _ in range(2)]
    try:
        _wait_for(lambda: _started(log) == 2, "two stalled sessions to start their agents")
        before = site.repo_state()
        done = site.run()
        # One line from the grabber, shown by the initiator, and the exit code.
        assert done.returncode == errors.LOCKED, done.stderr
        assert (
            "web1 already has 2 sessions open (max_sessions_per_host = 2): this login is "
            "refused before anything starts"
        ) in done.stderr
        assert _started(log) == 2  # no agent for the refused session
        assert site.repo_state() == before
        assert all(p.poll() is None for p in stalled)  # the others go on
    finally:
        for p in stalled:
            p.kill()
            p.communicate()
    # Their places are free again once their grabbers end (the kernel drops
    # the locks of a session however it ended).
    _wait_for(lambda: site.run().returncode == errors.OK, "a run after the stalled ones")
    assert len(site.snapshots()) == 1


@contextlib.contextmanager
def _held_as_grabber(site: Site, hold: Callable[[], Any]) -> Iterator[None]:
    """Run `hold()` (a context manager) in a child as the grabber user, as a
    run of another grabber would, until the block ends."""
    g = site.lab.grabber_pw()
    ready_r, ready_w = os.pipe()
    release_r, release_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            os.close(release_w)
            os.setgroups([])
            os.setgid(g.pw_gid)
            os.setuid(g.pw_uid)
            with hold():
                os.write(ready_w, b"held")
                os.read(release_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(release_r)
    try:
        assert os.read(ready_r, 4) == b"held"
        yield
    finally:
        os.close(release_w)
        os.close(ready_r)
        os.waitpid(pid, 0)


def _probe_site(site: Site, **grabber: Any) -> None:
    os.makedirs(site.src, exist_ok=True)
    with open(os.path.join(site.src, "f"), "w") as f:
        f.write("x")
    site.regrab(**grabber)
    site.configure()


def test_a_probe_queues_behind_a_held_pull_slot(site: Site) -> None:
    _probe_site(site, max_concurrent_pulls=1)
    slot = lambda: slots.pull_slot(site.repo, 1, 60, lambda text: None)  # noqa: E731
    with _held_as_grabber(site, slot):
        probe = site.lab.initiator_background(
            "-c", site.initiator_config, "--now", "--dry-run", "-v", "--format", "text"
        )
        assert probe.stderr is not None
        seen = []
        for line in probe.stderr:
            seen.append(line)
            if "queued: all 1 pull slots are busy" in line:
                break
        assert probe.poll() is None, "".join(seen)
    out, err = probe.communicate(timeout=120)
    assert probe.returncode == errors.OK, "".join(seen) + err
    assert "handshake and gate check passed" in out
    assert "got a pull slot after " in err


def test_a_probe_gives_up_at_its_own_deadline(site: Site) -> None:
    _probe_site(site, max_concurrent_pulls=1, probe_timeout="2s")  # queue_timeout stays 2h
    slot = lambda: slots.pull_slot(site.repo, 1, 60, lambda text: None)  # noqa: E731
    with _held_as_grabber(site, slot):
        done = site.run("--dry-run")
    assert done.returncode == errors.TIMEOUT, done.stderr
    assert "no pull slot came free within 2.0 s" in done.stderr


def test_a_probe_obeys_the_host_lock(site: Site) -> None:
    _probe_site(site)
    host = HostRepo(site.repo, "web1")
    lock = lambda: host.lock({"pid": os.getpid(), "since": "2026-12-07T00:00:00Z"})  # noqa: E731
    with _held_as_grabber(site, lock):
        done = site.run("--dry-run")
    assert done.returncode == errors.LOCKED, done.stderr
    assert "web1: already running since 2026-12-07T00:00:00Z" in done.stderr
