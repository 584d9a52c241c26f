"""The cap on concurrent pulls: kernel-locked slots, a queue with a deadline."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.grabber.session import slots


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_no_cap_takes_no_slot(tmp_path: Path) -> None:
    with slots.pull_slot(str(tmp_path), 0, 1, print) as slot:
        assert slot == -1
    assert os.listdir(tmp_path) == []


def test_runs_beyond_the_cap_wait_then_fail_clearly(tmp_path: Path) -> None:
    root = str(tmp_path)
    told: list[str] = []
    clock = FakeClock()
    with (
        slots.pull_slot(root, 2, 10, told.append) as first,
        slots.pull_slot(root, 2, 10, told.append) as second,
    ):
        assert {first, second} == {0, 1}
        assert slots.busy(root, 2) == 2
        with (
            pytest.raises(errors.Timeout) as refused,
            slots.pull_slot(root, 2, 12, told.append, clock, clock.sleep),
        ):
            pass
    assert refused.value.exit_code == errors.TIMEOUT
    assert str(refused.value) == (
        "no pull slot came free within 12.0 s (all 2 busy, max_concurrent_pulls): raise "
        "max_concurrent_pulls or queue_timeout, or spread the hosts' schedules"
    )
    assert clock.now >= 12
    # Told at once, then every TELL_EVERY seconds: the initiator's door stays open.
    assert told[0] == "queued: all 2 pull slots are busy, waiting up to 12.0 s"
    assert len(told) == math.ceil(12 / slots.TELL_EVERY)
    assert slots.busy(root, 2) == 0


def test_a_freed_slot_is_taken(tmp_path: Path) -> None:
    root = str(tmp_path)
    clock = FakeClock()
    told: list[str] = []
    holder = slots.pull_slot(root, 1, 10, told.append)
    holder.__enter__()

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now >= 3:
            holder.__exit__(None, None, None)

    logged: list[str] = []
    with slots.pull_slot(root, 1, 60, told.append, clock, sleep, logged.append) as slot:
        assert slot == 0
    assert logged == ["got a pull slot after 3.0 s"]
    assert told == [
        "queued: all 1 pull slots are busy, waiting up to 1m00s",
        "queued: all 1 pull slots are busy, waiting up to 58.0 s",
    ]


@pytest.mark.faults  # a holder killed: the kernel frees its slot
def test_a_killed_holder_frees_its_slot(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pullsnap.grabber.session import slots\n"
        "with slots.pull_slot(sys.argv[1], 1, 5, print):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"held\n"
        assert slots.busy(str(tmp_path), 1) == 1
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with slots.pull_slot(str(tmp_path), 1, 1, print) as slot:
        assert slot == 0
