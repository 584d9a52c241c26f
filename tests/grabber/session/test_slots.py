"""The cap on concurrent pulls: kernel-locked slots, a queue with a deadline."""

from __future__ import annotations

import math
import os
import select
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
        assert slot.index == -1
    assert os.listdir(tmp_path) == []


def test_runs_beyond_the_cap_wait_then_fail_clearly(tmp_path: Path) -> None:
    root = str(tmp_path)
    told: list[str] = []
    clock = FakeClock()
    with (
        slots.pull_slot(root, 2, 10, told.append) as first,
        slots.pull_slot(root, 2, 10, told.append) as second,
    ):
        assert {first.index, second.index} == {0, 1}
        assert second.ticket == first.ticket + 1  # numbers never repeat
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
    assert told[0] == "queued: all 2 pull slots are busy, waiting up to 12.0 s; 0 ahead of this run"
    assert len(told) == math.ceil(12 / slots.TELL_EVERY)
    assert slots.busy(root, 2) == 0
    assert slots.waiting(root) == 0  # the ticket went with the run that gave up


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
        assert slot.index == 0
    assert logged == ["got a pull slot after 3.0 s"]
    assert told == [
        "queued: all 1 pull slots are busy, waiting up to 1m00s; 0 ahead of this run",
        "queued: all 1 pull slots are busy, waiting up to 58.0 s; 0 ahead of this run",
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
        assert slot.index == 0


def test_ticket_names_and_numbers() -> None:
    assert slots.ticket_number("ticket.000000000012") == 12
    for other in ("0", "queue", "ticket.", "ticket.-1", "ticket.１", "tickets.3"):
        assert slots.ticket_number(other) is None
    assert slots.next_number([]) == 0
    assert slots.next_number(["0", "1", "queue"]) == 0
    assert slots.next_number(["ticket.000000000004", "ticket.000000000009", "3"]) == 10


WAITER = (
    "import sys, time\n"
    "from pullsnap.grabber.session import slots\n"
    "root, limit, name, log = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]\n"
    "def tell(text):\n"
    "    print(text, flush=True)\n"
    "with slots.pull_slot(root, limit, 600, tell):\n"
    "    with open(log, 'a') as f:\n"
    "        f.write(name + '\\n')\n"
    "    print('held', flush=True)\n"
    "    sys.stdin.readline()\n"
)


class Waiter:
    """A process waiting for a slot; it holds the slot until told to go."""

    def __init__(self, root: str, limit: int, name: str, log: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WAITER, root, str(limit), name, log],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
        )  # fmt: skip

    def first_line(self, patience: float = 60) -> str:
        """Its next line; a waiter that never says anything fails the test, not hangs it."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        line = b""
        while not line.endswith(b"\n"):
            readable, _, _ = select.select([fd], [], [], patience)
            assert readable, f"{self.name} said nothing more after {line!r}"
            byte = os.read(fd, 1)
            assert byte, f"{self.name} ended after {line!r}"
            line += byte
        return line.decode().strip()

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"\n")
        assert self.proc.wait(60) == 0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _in_order(log: str) -> list[str]:
    with open(log) as f:
        return f.read().split()


@pytest.mark.parametrize("limit", [1, 2])
def test_slots_go_to_waiting_runs_in_the_order_they_came(tmp_path: Path, limit: int) -> None:
    root, log = str(tmp_path), str(tmp_path / "served")
    holders: list[Waiter] = []
    waiters: list[Waiter] = []
    try:
        for i in range(limit):
            holders.append(Waiter(root, limit, f"holder{i}", log))
            assert holders[-1].first_line() == "held"
        # Each waiter has its ticket (it said it is queued) before the next starts.
        for i in range(6):
            waiters.append(Waiter(root, limit, f"w{i}", log))
            line = waiters[-1].first_line()
            assert line.startswith(f"queued: all {limit} pull slots are busy"), line
            assert line.endswith(f"; {i} ahead of this run"), line
        assert slots.waiting(root) == 6 and slots.busy(root, limit) == limit
        # One slot frees at a time; the next waiter in arrival order takes it
        # (it writes its name into the log) before the next slot frees.
        served = holders + waiters
        for i, leaving in enumerate(served):
            leaving.release()
            if i + limit < len(served):
                line = served[i + limit].first_line()
                while line.startswith("queued:"):
                    line = served[i + limit].first_line()
                assert line == "held"
    finally:
        for proc in holders + waiters:
            proc.kill()
    assert _in_order(log) == [f"holder{i}" for i in range(limit)] + [f"w{i}" for i in range(6)]
    assert slots.waiting(root) == 0 and slots.busy(root, limit) == 0
    assert [n for n in os.listdir(tmp_path / slots.SLOTS) if n.startswith("ticket")] == []


def test_a_killed_waiter_keeps_no_one_waiting(tmp_path: Path) -> None:
    root, log = str(tmp_path), str(tmp_path / "served")
    holder = Waiter(root, 1, "holder", log)
    first = second = None
    try:
        assert holder.first_line() == "held"
        first = Waiter(root, 1, "first", log)
        assert first.first_line().endswith("; 0 ahead of this run")
        second = Waiter(root, 1, "second", log)
        assert second.first_line().endswith("; 1 ahead of this run")
        first.kill()  # its ticket stays on disk, but its lock went with it
        assert slots.waiting(root) == 1
        holder.release()
        line = second.first_line()
        while line.startswith("queued:"):
            line = second.first_line()
        assert line == "held"
        second.release()
    finally:
        for proc in (holder, first, second):
            if proc is not None:
                proc.kill()
    assert _in_order(log) == ["holder", "second"]
    assert [n for n in os.listdir(tmp_path / slots.SLOTS) if n.startswith("ticket")] == []
