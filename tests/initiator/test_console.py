"""What the initiator prints, by style and by situation (pure parts, and the
console writing into string buffers)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from pullsnap import errors, logfmt, report
from pullsnap.initiator import console, run

MADE = {"snapshot": "2026-11-25T021700Z", "host": "web1", "files": 48211,
        "transferred": 5 * 1024 * 1024, "added": 1024 * 1024}  # fmt: skip


def _outcome(code: int = errors.OK, message: str = "", result: dict | None = None) -> run.Outcome:
    return run.Outcome("vault", code, message, dict(MADE if result is None else result), 83.4)


def test_verdict_text_and_pairs_say_the_same() -> None:
    outcome = _outcome()
    assert console.verdict(outcome) == (
        "vault: ok, snapshot web1/2026-11-25T021700Z, 48,211 files, 5.0 MiB transferred, "
        "1.0 MiB added, 1m23s"
    )
    assert logfmt.parse(logfmt.line(console.verdict_pairs(outcome))) == {
        "dest": "vault", "result": "ok", "exit": "0", "snapshot": "web1/2026-11-25T021700Z",
        "files": "48211", "transferred": str(5 * 1024 * 1024), "added": "1048576",
        "seconds": "83.4",
    }  # fmt: skip


def test_failures_carry_no_snapshot_fields() -> None:
    pairs = dict(console.verdict_pairs(_outcome(errors.REFUSED, "gate error: x", {})))
    assert pairs == {"dest": "vault", "result": "refused", "exit": 6, "seconds": 83.4,
                     "message": "gate error: x"}  # fmt: skip
    suspect = dict(console.verdict_pairs(_outcome(errors.SUSPECT, "it shrank")))
    assert suspect["snapshot"] == "web1/2026-11-25T021700Z", "a suspect snapshot is still made"


def _console(style: str, announce: bool, journal: bool = False):
    out, err = io.StringIO(), io.StringIO()
    return console.Console(style, live=False, verbose=True, announce=announce, out=out, err=err,
                           journal=journal), out, err  # fmt: skip


@pytest.mark.parametrize("style", ["text", "logfmt"])
def test_scheduled_runs_are_silent_on_success_and_loud_on_failure(style: str) -> None:
    c, out, err = _console(style, announce=False)
    c.done(_outcome())
    assert out.getvalue() == err.getvalue() == ""
    c.done(_outcome(errors.UNREACHABLE, "Connection refused", {}))
    [line] = err.getvalue().splitlines()
    if style == "logfmt":
        assert logfmt.parse(line)["result"] == "unreachable"
    else:
        assert line == "initiator: vault: unreachable: Connection refused"


def test_journal_lines_carry_a_priority() -> None:
    c, out, err = _console("logfmt", announce=True, journal=True)
    c.done(_outcome())
    c.done(_outcome(errors.PARTIAL, "some files could not be read"))
    c.hook_failed("vault", errors.HookFailed("after", "failed with exit 1"))
    c.log("vault", "grabber: pulling")
    assert out.getvalue().startswith("<6>dest=vault result=ok ")
    lines = err.getvalue().splitlines()
    assert [line[:3] for line in lines] == ["<4>", "<3>", "<6>"]
    assert logfmt.parse(lines[1][3:])["result"] == "hook-failed"
    assert logfmt.parse(lines[2][3:]) == {"dest": "vault", "log": "grabber: pulling"}


def test_style_follows_the_terminal(tmp_path: Path) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert console.choose_style("auto", [io.StringIO(), Tty()]) == "text"
    assert console.choose_style("auto", [io.StringIO(), io.StringIO()]) == "logfmt"
    assert console.choose_style("text", [io.StringIO()]) == "text"


def test_journal_is_recognised_by_device_and_inode(tmp_path: Path) -> None:
    with open(tmp_path / "stream", "w") as stream:
        st = os.fstat(stream.fileno())
        assert console.journal_attached(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not console.journal_attached(stream, {"JOURNAL_STREAM": f"{st.st_dev}:1"})
        assert not console.journal_attached(stream, {})
    assert not console.journal_attached(io.StringIO(), {"JOURNAL_STREAM": "1:2"})


def test_a_stop_ends_the_run_in_progress_and_shutdown_waits_for_the_rest() -> None:
    stopped = console.Interruption()
    stopped.signal = "SIGTERM"
    reasons: list[str] = []
    stopped.arm().addCallback(reasons.append)
    waited = stopped.before_shutdown()
    assert reasons == ["interrupted by SIGTERM"] and stopped.reason == reasons[0]
    assert waited is not None and not waited.called
    stopped.finish()
    assert waited.called


def test_shutdown_after_the_last_destination_is_no_interruption() -> None:
    stopped = console.Interruption()
    stopped.finish()
    assert stopped.before_shutdown() is None and stopped.reason == ""


def test_what_the_backup_host_sends_reaches_a_terminal_as_text() -> None:
    """A compromised backup host must not drive the operator's terminal: its
    log lines, verdict message and progress fields have control characters
    escaped (rsync's \\#ooo) in the text style, as logfmt quotes them."""
    c, out, err = _console("text", announce=True)
    c.log("vault", "grabber: \x1b[2J\x1b]0;owned\x07done\r")
    c.done(_outcome(errors.REFUSED, "gate \x1b[31merror\x9b1A", {}))
    live = console.Console("text", live=True, verbose=False, announce=True, out=out, err=err)
    live.progress("vault", report.Progress(1, 2, "1kB/s\x1b[1A", "0:00:01\x1b[K", 3))
    text = err.getvalue()
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text
    assert "\\#033[2J" in text and "gate \\#033[31merror\\#302\\#2331A" in text
    assert text.count("\r") == 1, "only the progress line's own carriage return"
