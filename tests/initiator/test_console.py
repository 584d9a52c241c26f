"""What the initiator prints, by style and by situation (pure parts, and the
console writing into string buffers)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from pullsnap import errors, logfmt
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
