"""Many hosts, one vault (issue 17), small: six hosts, each in a network
namespace of its own with its own account, key and tree, call one vault at
once (bench/fleet.py is the full-size run).  Correctness only: every host
gets exactly its own snapshot, in arrival order, a key works only from its
own host's address, and a stalled host lets go of its slot at its deadline."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from bench.fleet import binding_check
from bench.fleetnight import run_night
from bench.fleetsite import Fleet, TreeSpec
from pullsnap import errors
from pullsnap.grabber.session import slots
from pullsnap.grabber.store.repository import HostRepo

pytestmark = [pytest.mark.root, pytest.mark.e2e]

HOSTS = 6


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    if os.geteuid() != 0:
        pytest.skip("needs root (runs in CI as root)")
    base = tempfile.mkdtemp(prefix="pullsnap-fleet-")
    os.chmod(base, 0o755)
    fleet = Fleet(os.path.join(base, "fleet"), HOSTS, default_tree=TreeSpec(60, 2048),
                  trees={2: TreeSpec(400, 16384)})  # fmt: skip
    try:
        fleet.setup()
        yield fleet
    finally:
        fleet.close()
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def receiver_mode(fleet: Fleet, mode: str) -> Iterator[None]:
    assert fleet.lab is not None
    fleet.empty_repo()
    if mode == "fake-super":
        yield
        return
    fleet.lab.use_launcher(True)
    try:
        with fleet.lab.nosuid_mount(fleet.repo):
            yield
    finally:
        fleet.lab.use_launcher(False)


def test_every_host_gets_exactly_its_own_snapshot_in_arrival_order(fleet: Fleet) -> None:
    assert fleet.lab is not None
    # One host's binding made the operator's way: `grabber authorize --from`.
    web0 = fleet.hosts[0]
    with open(web0.key + ".pub") as f:
        public = f.read().strip()
    fleet.configure_vault()
    done = fleet.lab.grabber("--config", fleet.grabber_config, "authorize", "--user",
                             fleet.lab.grabber_user, "--bind-config", "--from", web0.address,
                             web0.name, public)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f'from="{web0.address}"' in done.stdout

    with receiver_mode(fleet, "fake-super"):
        night = run_night(fleet, "a", cap=1, mode="fake-super", rsync_timeout=60)
        for run in night.hosts:
            assert run.exit == errors.OK and run.good, (run.host, run.problem)
        # Nothing crosses hosts: each directory holds one snapshot of its own
        # host (checked file by file by `good`), and nothing else is there.
        assert sorted(os.listdir(fleet.repo)) == sorted([h.name for h in fleet.hosts] +
                                                        [slots.SLOTS])  # fmt: skip
        for host in fleet.hosts:
            assert len(HostRepo(fleet.repo, host.name).good()) == 1
        # One slot: served strictly in the order the runs took their tickets.
        by_ticket = sorted(night.hosts, key=lambda r: r.ticket)
        served = sorted(night.hosts, key=lambda r: r.arrived + r.queue_wait)
        assert [r.host for r in by_ticket] == [r.host for r in served]
        assert len({r.ticket for r in night.hosts}) == HOSTS
        assert night.order_violations == 0
        assert slots.busy(fleet.repo, 1) == 0 and slots.waiting(fleet.repo) == 0


@pytest.mark.security
def test_a_hosts_key_is_refused_from_another_hosts_address(fleet: Fleet) -> None:
    fleet.configure_vault()
    before = {h.name: len(HostRepo(fleet.repo, h.name).attempts()) for h in fleet.hosts}
    refused = binding_check(fleet, thief=4, place=5)
    assert refused["exit"] == errors.REFUSED and refused["refused"], refused
    assert "Permission denied (publickey)" in refused["said"][0]
    after = {h.name: len(HostRepo(fleet.repo, h.name).attempts()) for h in fleet.hosts}
    assert after == before


@pytest.mark.parametrize("mode", ["super", "fake-super"])
def test_a_stalled_host_lets_go_of_its_slot_at_its_deadline(fleet: Fleet, mode: str) -> None:
    stalled = fleet.hosts[2]  # the big tree: stopped while it sends
    with receiver_mode(fleet, mode):
        night = run_night(fleet, "b", cap=2, mode=mode, rsync_timeout=5, stall=stalled,
                          stall_after=0.2)  # fmt: skip
        assert night.stalled == stalled.name, "the stalled host's sender was never seen"
        for run in night.hosts:
            if run.host != stalled.name:
                assert run.exit == errors.OK and run.good, (run.host, run.problem)
        [mine] = [r for r in night.hosts if r.host == stalled.name]
        assert mine.exit == errors.TIMEOUT and mine.state == "failed"
        record = HostRepo(fleet.repo, stalled.name).attempts()[-1].record
        assert "timeout" in record["message"], record["message"]
        # rsync_timeout ended it, not run_timeout (12 h): rsync's own --timeout
        # (exit 30), or, where that does not fire for a stopped sender (seen
        # with --super), the grabber's watch of a silent rsync.
        assert record["rsync_exit"] == 30 or (
            record["rsync_exit"] == -1 and "rsync moved nothing for 5 s" in record["message"]
        ), record
        assert slots.busy(fleet.repo, 2) == 0 and slots.waiting(fleet.repo) == 0
    # Let go, the stopped sender finds its connection gone and ends.
    assert not _live_rsyncs_of(stalled.user)


def _live_rsyncs_of(user: str, patience: float = 30) -> list[str]:
    deadline = time.monotonic() + patience
    while True:
        done = subprocess.run(["pgrep", "-u", user, "-a", "rsync"], capture_output=True,
                              text=True, check=False)  # fmt: skip
        live = [line for line in done.stdout.splitlines() if "<defunct>" not in line]
        if not live or time.monotonic() > deadline:
            return live
        time.sleep(0.2)
