"""Concurrency: the same destination twice at once, eight hosts against one
grabber with a cap on concurrent pulls, and a queue that gives up."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import re
import threading
import time

import pytest

from pullsnap import errors
from pullsnap.grabber.session import slots
from pullsnap.grabber.session.binding import authorized_keys_line
from pullsnap.grabber.store.repository import HostRepo
from tests.faults.conftest import (
    MIB,
    attempts,
    fabricate,
    grabber_side,
    new_login_key,
    public_key,
    record,
    wait_until,
    write_random,
)
from tests.faults.test_diskfull import same_content
from tests.labfixtures import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.faults]

HELD = re.compile(r"already running since (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) \(pid (\d+)\)")


def test_a_second_run_of_the_same_destination_says_who_runs(site: Site) -> None:
    os.makedirs(site.src)
    write_random(os.path.join(site.src, "big"), 8 * MIB)
    # The first run holds the host's lock while it waits for the one pull
    # slot, which the test holds: it is still running when the second comes.
    site.regrab(max_concurrent_pulls=1, queue_timeout=120)
    site.configure()
    busy = _hold_slot(site.repo)
    try:
        first = site.lab.initiator_background("-c", site.initiator_config, "--now")
        host = HostRepo(site.repo, "web1")
        assert wait_until(host.is_locked, 60)
        [grabber] = [p for p in grabber_side(site.lab).values() if "pullsnap-grabber" in p.cmdline]
        # The cron entry fires while --now runs: quiet mode, one line, its own code.
        second = site.lab.initiator("-c", site.initiator_config)
    finally:
        os.close(busy)
    _, err = first.communicate(timeout=300)
    assert first.returncode == errors.OK, err
    assert second.returncode == errors.LOCKED, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "locked" in lines[0] and "web1: already running" in lines[0]
    since, pid = HELD.search(lines[0]).groups()
    assert int(pid) == grabber.pid
    [made] = attempts(site)
    assert since <= record(site, made.name)["begin"]  # the lock was taken first
    assert made.good and not host.is_locked()
    assert site.run().returncode == errors.OK  # nothing broke


def _hold_slot(repo: str, index: int = 0) -> int:
    """Stand in for a pull in progress: lock a slot as a run would."""
    os.makedirs(os.path.join(repo, slots.SLOTS), exist_ok=True)
    path = os.path.join(repo, slots.SLOTS, str(index))
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    st = os.stat(repo)
    for owned in (os.path.dirname(path), path):
        os.chown(owned, st.st_uid, st.st_gid)
    return fd


def test_a_queued_run_keeps_its_door_open_then_gives_up_at_its_deadline(site: Site) -> None:
    os.makedirs(site.src)
    with open(os.path.join(site.src, "f"), "w") as f:
        f.write("x")
    site.regrab(max_concurrent_pulls=1, queue_timeout=20)
    site.configure(connect_back_timeout=3)
    busy = _hold_slot(site.repo)
    timer = threading.Timer(6, os.close, (busy,))
    timer.start()
    try:
        waited = site.run("-v")
    finally:
        timer.join()
    # Queued for longer than the initiator's connect-back deadline, and served.
    assert waited.returncode == errors.OK, waited.stderr
    assert "queued: all 1 pull slots are busy, waiting up to 20.0 s" in waited.stderr
    assert "got a pull slot after " in waited.stderr

    site.regrab(max_concurrent_pulls=1, queue_timeout=2)
    busy = _hold_slot(site.repo)
    try:
        refused = site.run()
    finally:
        os.close(busy)
    assert refused.returncode == errors.TIMEOUT
    assert refused.stderr.strip().endswith(
        "no pull slot came free within 2.0 s (all 1 busy, max_concurrent_pulls): raise "
        "max_concurrent_pulls or queue_timeout, or spread the hosts' schedules"
    )
    assert len(site.snapshots()) == 1


HOSTS = [f"web{i}" for i in range(1, 9)]
CAP = 3


def _eight_hosts(site: Site) -> dict[str, str]:
    """Sources, login keys, bindings and initiator configs for web1..web8."""
    lines = []
    configs = {}
    initiator = site.lab.initiator_pw()
    for index, name in enumerate(HOSTS):
        side = os.path.join(site.root, name)
        src = os.path.join(side, "src")
        os.makedirs(os.path.join(src, "etc"))
        with open(os.path.join(src, "etc", "hostname"), "w") as f:
            f.write(f"{name}\n")
        write_random(os.path.join(src, "data.bin"), (24 + index) * MIB)
        key = new_login_key(site.lab, os.path.join(side, "key"))
        lines.append(authorized_keys_line(name, public_key(key), site.grabber_config))
        run_dir = os.path.join(side, "run")
        os.makedirs(run_dir, mode=0o700)
        os.chown(run_dir, initiator.pw_uid, initiator.pw_gid)
        configs[name] = site.lab.write_initiator_config(
            [src], name=os.path.join(side, "initiator.toml"), runtime_dir=run_dir,
            destination={"name": "vault", "identity_file": key},
        )  # fmt: skip
    site.lab.write_raw_authorized_keys("".join(lines))
    return configs


def test_eight_hosts_at_once_with_a_cap_on_concurrent_pulls(site: Site) -> None:
    policy = {"keep_within": 0, "keep_daily": 2, "keep_weekly": 0, "keep_monthly": 0,
              "keep_yearly": 0}  # fmt: skip
    site.regrab(policy=policy, min_keep=1, max_concurrent_pulls=CAP, queue_timeout=300)
    configs = _eight_hosts(site)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    history = {
        name: [fabricate(site, now - dt.timedelta(days=d), host=name) for d in range(10, 4, -1)]
        for name in HOSTS
    }
    # All slots taken until every host's run is in: all eight queue, then go.
    held = [_hold_slot(site.repo, i) for i in range(CAP)]
    procs = {name: site.lab.initiator_background("-c", conf, "--now", "-v")
             for name, conf in configs.items()}  # fmt: skip
    repos = [HostRepo(site.repo, name) for name in HOSTS]
    waiting = wait_until(lambda: all(r.is_locked() for r in repos), 120)
    for fd in held:
        os.close(fd)
    assert waiting is not None, "not every run reached the grabber"
    most_slots = most_receivers = 0
    while any(p.poll() is None for p in procs.values()):
        # The receiving rsync forks a generator: count the pulls, not the processes.
        side = grabber_side(site.lab)
        receivers = [p for p in side.values() if p.cmdline.startswith("/usr/bin/rsync -a")
                     and not side.get(p.ppid, p).cmdline.startswith("/usr/bin/rsync")]  # fmt: skip
        most_receivers = max(most_receivers, len(receivers))
        most_slots = max(most_slots, slots.busy(site.repo, CAP))
        time.sleep(0.01)
    outputs = {name: p.communicate() for name, p in procs.items()}
    for name, p in procs.items():
        assert p.returncode == errors.OK, (name, outputs[name][1])
    assert 0 < most_receivers <= CAP and 0 < most_slots <= CAP
    assert all("queued: all 3 pull slots are busy" in err for _, err in outputs.values())
    for name in HOSTS:
        src = os.path.join(site.root, name, "src")
        good = [a.name for a in HostRepo(site.repo, name).good()]
        # Its own data, complete; retention kept daily 2 of the old ones, and this run's.
        assert good[:2] == history[name][-2:] and len(good) == 3, (name, good)
        fresh = os.path.join(site.repo, name, good[-1]) + src
        assert same_content(src, fresh) == []
        with open(os.path.join(fresh, "etc", "hostname")) as f:
            assert f.read() == f"{name}\n"
        assert record(site, good[-1], host=name)["pruned_after"] == history[name][:-2]
    assert slots.busy(site.repo, CAP) == 0


def test_a_run_refused_as_too_soon_never_queues(site: Site) -> None:
    os.makedirs(site.src)
    with open(os.path.join(site.src, "f"), "w") as f:
        f.write("x")
    site.regrab(policy={"min_interval": "4h"}, max_concurrent_pulls=1, queue_timeout=60)
    assert site.run().returncode == errors.OK
    busy = _hold_slot(site.repo)
    try:
        refused = site.run("-v")
        waiting = slots.waiting(site.repo)
        # Lifted once, the run queues; giving up gives the allowance back.
        site.regrab(policy={"min_interval": "4h"}, max_concurrent_pulls=1, queue_timeout=2)
        allowed = site.lab.grabber("--config", site.grabber_config, "allow-run", "web1")
        assert allowed.returncode == 0, allowed.stderr
        gave_up = site.run("-v")
    finally:
        os.close(busy)
    assert refused.returncode == errors.TOO_SOON, refused.stderr
    assert "queued" not in refused.stderr and waiting == 0
    assert gave_up.returncode == errors.TIMEOUT, gave_up.stderr
    assert "queued: all 1 pull slots are busy" in gave_up.stderr
    assert os.path.exists(os.path.join(site.host_dir(), ".allow-run"))
    assert site.run().returncode == errors.OK  # the allowance, used now
    assert len(site.snapshots()) == 2
