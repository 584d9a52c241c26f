"""A grabber waiting for a pull slot keeps the initiator's door open: each
`pullsnap-queued` line restarts the connect-back deadline."""

from __future__ import annotations

from pullsnap import report
from pullsnap.errors import Timeout
from pullsnap.initiator.door import Door
from tests.initiator.test_door import FakeReactor


def test_queued_lines_are_their_own_kind() -> None:
    line = report.queued_line("queued: all 2 pull slots are busy")
    assert report.parse_line(line) == (report.QUEUED, "queued: all 2 pull slots are busy")


def test_postpone_restarts_the_deadline() -> None:
    reactor = FakeReactor()
    door = Door(reactor, "127.0.0.1", 0, ["127.0.0.1"])
    failures: list = []
    door.accept_one(10).addErrback(failures.append)
    for _ in range(5):
        reactor.advance(9)
        door.postpone(10)
    assert failures == []
    reactor.advance(10.1)
    assert len(failures) == 1 and isinstance(failures[0].value, Timeout)
    assert str(failures[0].value) == "the backup host did not connect back within 10 s"
    door.postpone(10)  # after the end: nothing to restart
    assert reactor.getDelayedCalls() == []
