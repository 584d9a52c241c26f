"""The initiator's children (initiator/children.py) on a fake reactor: what
each child is started with, how its output and end are collected, and the
deadline that kills it."""

from __future__ import annotations

import signal

import pytest
from twisted.internet import defer, error
from twisted.python.failure import Failure

from pullsnap.errors import Timeout
from pullsnap.initiator import children
from tests.initiator.test_run import _spawning_reactor


def test_every_child_dies_with_the_initiator_and_inherits_no_capability() -> None:
    assert children.with_pdeathsig(["ssh", "-V"]) == [
        "/usr/bin/setpriv", "--pdeathsig", "KILL", "--inh-caps=-all", "--", "ssh", "-V"
    ]  # fmt: skip
    kept = children.with_pdeathsig(["sshd", "-i"], "/bin/setpriv", keep_capabilities=True)
    assert kept == ["/bin/setpriv", "--pdeathsig", "KILL", "--", "sshd", "-i"]


def test_finished_tells_success_and_the_last_stderr_line() -> None:
    done = children.Finished(("x",), 0, None, b"", b"")
    assert done.ok() and done.stderr_tail() == ""
    failed = children.Finished(("x",), 255, None, b"",
                               b"Warning: added key\nreal problem\r\ndebug1: noise\n")  # fmt: skip
    assert not failed.ok()
    assert failed.stderr_tail() == "debug1: noise"
    assert failed.stderr_tail(skip=("debug1:",)) == "real problem"
    assert failed.stderr_tail(limit=7, skip=("debug1:",)) == "problem"
    assert not children.Finished(("x",), None, 9, b"", b"").ok()


def _ended(proto: children.CollectingProtocol) -> list:
    got: list = []
    proto.ended.addBoth(got.append)
    return got


def test_a_short_child_gets_its_input_and_ends_with_its_output() -> None:
    reactor = _spawning_reactor()
    d = children.run(reactor, ["ssh-keygen", "-lf", "-"], 10, "ssh-keygen", stdin=b"key\n")
    got: list = []
    d.addBoth(got.append)
    [child] = reactor.spawned
    assert child.args[:3] == ["/usr/bin/setpriv", "--pdeathsig", "KILL"]
    assert child.program == "ssh-keygen"
    assert child.env == children.child_env() and child.path is None and child.child_fds is None
    assert child.stdin == b"key\n" and child.stdin_closed
    child.proto.errReceived(b"warn\n")
    child.end(0, stdout=b"256 SHA256:x\n")
    [finished] = got
    assert isinstance(finished, children.Finished) and finished.ok()
    assert finished.stdout == b"256 SHA256:x\n" and finished.stderr == b"warn\n"
    assert finished.argv == ("ssh-keygen", "-lf", "-")
    assert reactor.getDelayedCalls() == []  # the deadline is gone with the child


def test_a_child_past_its_deadline_is_killed_and_the_run_times_out() -> None:
    reactor = _spawning_reactor()
    got: list = []
    children.run(reactor, ["sleep", "9"], 5, "the probe").addBoth(got.append)
    [child] = reactor.spawned
    reactor.advance(4.9)
    assert got == [] and child.signals == []
    reactor.advance(0.2)
    assert child.signals == [signal.SIGKILL]
    [failure] = got
    assert isinstance(failure, Failure) and isinstance(failure.value, Timeout)
    assert str(failure.value) == "the probe took longer than 5 s"
    child.end(None, signal=signal.SIGKILL)  # the kill lands later: no second result
    assert len(got) == 1


def test_a_failure_before_the_deadline_passes_through() -> None:
    reactor = _spawning_reactor()
    source: defer.Deferred = defer.Deferred()
    got: list = []
    children.deadline(reactor, source, 30, "x").addBoth(got.append)
    source.errback(Failure(RuntimeError("boom")))
    assert isinstance(got[0].value, RuntimeError) and reactor.getDelayedCalls() == []


def test_lines_are_split_across_chunks_and_the_last_one_comes_at_the_end() -> None:
    out: list[str] = []
    err: list[str] = []
    proto = children.CollectingProtocol(["x"], on_stdout_line=out.append,
                                        on_stderr_line=err.append)  # fmt: skip
    got = _ended(proto)
    proto.outReceived(b"fir")
    proto.outReceived(b"st\r\nsecond\nthi")
    proto.errReceived(b"e1\n\xffe2")
    assert out == ["first", "second"] and err == ["e1"]
    proto.processEnded(Failure(error.ProcessTerminated(exitCode=3)))
    assert out == ["first", "second", "thi"] and err == ["e1", "\ufffde2"]
    [finished] = got
    assert (finished.code, finished.signal) == (3, None)
    assert finished.stdout == b"first\r\nsecond\nthi"


def test_held_input_waits_for_send_stdin() -> None:
    reactor = _spawning_reactor()
    proto = children.CollectingProtocol(["ssh"], hold_stdin=True)
    children.spawn(reactor, proto, ["ssh"], {"PATH": "/bin"}, path="/tmp", child_fds={0: "w"})
    [child] = reactor.spawned
    assert not child.stdin_closed and (child.env, child.path, child.child_fds) == (
        {"PATH": "/bin"}, "/tmp", {0: "w"}
    )  # fmt: skip
    assert children.pid_of(proto) == child.pid
    proto.send_stdin(b"handoff")
    assert child.stdin == b"handoff" and child.stdin_closed


def test_after_the_end_nothing_more_is_written_or_signalled() -> None:
    reactor = _spawning_reactor()
    proto = children.CollectingProtocol(["ssh"], hold_stdin=True)
    children.spawn(reactor, proto, ["ssh"], {})
    [child] = reactor.spawned
    child.end(None, signal=signal.SIGTERM)
    proto.send_stdin(b"late")  # ignored: would fail on a closed transport
    assert child.stdin == b""
    finished = _ended(proto)[0]
    assert (finished.code, finished.signal) == (None, signal.SIGTERM)


def test_kill_without_a_transport_does_nothing() -> None:
    proto = children.CollectingProtocol(["x"])
    proto.kill()
    assert children.pid_of(proto) is None


@pytest.mark.parametrize(
    "reason, status",
    [(error.ProcessDone(0), (0, None)), (error.ProcessTerminated(exitCode=2), (2, None)),
     (error.ProcessTerminated(signal=15), (None, 15)), (RuntimeError("odd"), (None, None))],
)  # fmt: skip
def test_how_a_child_ended(reason, status) -> None:
    assert children._status(Failure(reason)) == status
