"""run_piped: output relayed whole, lines kept whole, the deadline enforced."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest

from pullsnap import errors
from pullsnap.grabber.transfer import piperun

ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}


def _run(script: str, deadline: float = 30) -> tuple[piperun.Ended, str, list[str]]:
    out: list[str] = []
    err: list[str] = []
    ended = piperun.run_piped(["sh", "-c", script], ENV, out.append, err.append, None, deadline)
    return ended, "".join(out), err


def test_stdout_and_stderr_arrive_complete() -> None:
    ended, out, err = _run("seq 1 20000; printf 'a\\nb' >&2; printf 'no newline'; exit 3")
    assert (ended.code, ended.signal, ended.timed_out) == (3, None, False)
    assert out.splitlines()[:2] == ["1", "2"] and out.endswith("20000\nno newline")
    assert err == ["a", "b"]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    ended, out, err = _run("printf 'caf\\351\\n'; printf 'x\\377y\\n' >&2")
    assert ended.code == 0
    assert out == "caf\ufffd\n" and err == ["x\ufffdy"]


def test_deadline_sends_sigterm() -> None:
    ended, _, _ = _run("exec sleep 30", deadline=0.3)
    assert ended.timed_out
    assert ended.signal == signal.SIGTERM and ended.code is None


def test_a_watch_stops_the_child_and_says_why() -> None:
    asked = []

    def watch() -> str:
        asked.append(1)
        return "too big" if len(asked) >= 3 else ""

    ended = piperun.run_piped(["sleep", "30"], ENV, lambda s: None, lambda s: None, None, 30,
                              watch=watch, watch_every=0.01)  # fmt: skip
    assert (ended.stopped, ended.signal, ended.timed_out) == ("too big", signal.SIGTERM, False)
    assert len(asked) == 3  # not asked again once it said stop


def test_a_watch_that_never_objects_changes_nothing() -> None:
    ended = piperun.run_piped(["sh", "-c", "sleep 0.2; exit 4"], ENV, lambda s: None,
                              lambda s: None, None, 30, watch=lambda: "")  # fmt: skip
    assert (ended.code, ended.stopped, ended.timed_out) == (4, "", False)


def test_preexec_runs_in_the_child(tmp_path) -> None:
    marker = tmp_path / "ran"

    def preexec() -> None:
        marker.write_text("child")

    out: list[str] = []
    ended = piperun.run_piped(["true"], ENV, out.append, out.append, preexec, 10)
    assert ended.code == 0 and marker.read_text() == "child"


def test_a_failing_preexec_is_reported_with_what_it_wrote() -> None:
    def preexec() -> None:
        os.write(2, b"mount namespace: bind /etc: Operation not permitted\n")
        raise RuntimeError("in the child")

    with pytest.raises(errors.RunFailed) as caught:
        piperun.run_piped(["true"], ENV, print, print, preexec, 10)
    assert (
        str(caught.value)
        == "cannot start true: mount namespace: bind /etc: Operation not permitted"
    )


def test_a_stream_of_single_lines_is_read_in_batches() -> None:
    # rsync writes each itemized name on its own; reading each write as it
    # comes cost the grabber a wakeup per line (bench/ANALYSIS.md).
    script = (
        "import os, time\n"
        "for i in range(2000):\n"
        "    os.write(1, b'%d\\n' % i)\n"
        "    time.sleep(0.0005)\n"
    )
    chunks: list[str] = []
    ended = piperun.run_piped(
        ["python3", "-c", script], ENV, chunks.append, lambda line: None, None, 60
    )
    assert ended.code == 0
    assert "".join(chunks).splitlines() == [str(i) for i in range(2000)]
    assert len(chunks) < 2000 / 4, f"{len(chunks)} reads for 2000 lines"


def test_a_child_that_cannot_be_confined_is_a_failed_run_not_a_traceback() -> None:
    def refuse() -> None:
        raise OSError("landlock_restrict_self: Operation not permitted")

    with pytest.raises(errors.RunFailed, match="cannot start true"):
        piperun.run_piped(["true"], ENV, print, print, refuse, 10)


def test_a_missing_program_is_an_oserror_with_its_name() -> None:
    with pytest.raises(FileNotFoundError) as missing:
        piperun.run_piped(["/nonexistent/rsync"], ENV, print, print, None, 10)
    assert missing.value.filename == "/nonexistent/rsync"


def test_no_descriptor_is_left_open() -> None:
    def refuse() -> None:
        raise OSError("refused")

    before = set(os.listdir("/proc/self/fd"))
    piperun.run_piped(["true"], ENV, print, print, None, 10)
    with contextlib.suppress(errors.RunFailed):
        piperun.run_piped(["true"], ENV, print, print, refuse, 10)
    with contextlib.suppress(OSError):
        piperun.run_piped(["/nonexistent/rsync"], ENV, print, print, None, 10)
    assert set(os.listdir("/proc/self/fd")) == before


def test_a_child_that_goes_quiet_is_stopped_as_timed_out() -> None:
    out: list[str] = []
    # Talks for a while (each line restarts the clock), then says nothing.
    script = "for i in 1 2 3 4 5; do echo $i; sleep 0.1; done; exec sleep 30"
    ended = piperun.run_piped(["sh", "-c", script], ENV, out.append, print, None, 60, idle=2)
    assert ended.timed_out and ended.idle
    assert ended.signal == signal.SIGTERM and ended.code is None
    assert "".join(out).split() == ["1", "2", "3", "4", "5"]


def test_a_child_that_keeps_talking_is_not_idle() -> None:
    script = "for i in $(seq 1 8); do echo $i; sleep 0.1; done"
    ended = piperun.run_piped(["sh", "-c", script], ENV, print, print, None, 60, idle=5)
    assert (ended.code, ended.timed_out, ended.idle) == (0, False, False)
