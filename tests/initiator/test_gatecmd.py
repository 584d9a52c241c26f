"""The gate's effectful half (initiator/gatecmd.py), with its exec, its
confinement and its lifeline watch passed in: each refusal is one
`gate error:` line and exit 1, nothing reaches stdout before the exec.
(The parser's checks, the real rsync server end to end: test_gate.py.)"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.initiator import gate, gatecmd


@pytest.fixture
def root(tmp_path: Path) -> str:
    (tmp_path / "src" / "etc").mkdir(parents=True)
    return str(tmp_path / "src")


def _command(root: str) -> dict[str, str]:
    return {"SSH_ORIGINAL_COMMAND": f"rsync --server --sender -re.iLsfxCIvu . {root}/etc"}


class Gate:
    """The three effects, recorded."""

    def __init__(self) -> None:
        self.execs: list[tuple] = []
        self.confined: list[tuple[str, ...]] = []
        self.watched: list[str] = []

    def run(self, settings: gatecmd.GateSettings, environ, **effects) -> int:
        return gatecmd.run(
            settings, environ,
            execve=effects.get("execve", lambda *a: self.execs.append(a)),
            confine=effects.get("confine", lambda p: self.confined.append(p.roots)),
            watch=effects.get("watch", self.watched.append),
        )  # fmt: skip


def test_settings_from_the_command_line(root: str) -> None:
    s = gatecmd.settings_from(["--root", root, "--root", "/srv", "--nice", "5", "--ionice",
                               "idle", "--no-confine-root", "--log", "/run/x/gate.log",
                               "--lifeline", "/run/x/lock", "--once", "/run/x/once"])  # fmt: skip
    assert s.policy.roots == (root, "/srv") and not s.policy.confine_root
    assert (s.nice, s.ionice, s.log, s.lifeline, s.once, s.dry_run) == (
        5, "idle", "/run/x/gate.log", "/run/x/lock", "/run/x/once", False
    )  # fmt: skip


def test_the_order_is_watch_confine_exec(root: str, tmp_path: Path, capsys) -> None:
    g = Gate()
    lock = str(tmp_path / "lock")
    settings = gatecmd.GateSettings(gate.GatePolicy(roots=(root,)), lifeline=lock)
    g.run(settings, _command(root))
    assert g.watched == [lock] and g.confined == [(root,)]
    [(program, argv, env)] = g.execs
    assert program == argv[0] and argv[1:3] == ["--server", "--sender"]
    assert env == gatecmd.EXEC_ENV
    assert capsys.readouterr() == ("", "")


def test_only_the_first_session_of_a_door_runs(root: str, tmp_path: Path, capsys) -> None:
    g = Gate()
    once = tmp_path / "once"
    settings = gatecmd.GateSettings(gate.GatePolicy(roots=(root,)), once=str(once))
    g.run(settings, _command(root))
    assert once.exists() and len(g.execs) == 1
    assert g.run(settings, _command(root)) == 1 and len(g.execs) == 1
    assert capsys.readouterr().err == "gate error: this door has run its one session already\n"


def test_a_door_whose_run_is_over_refuses(root: str, tmp_path: Path, capsys) -> None:
    g = Gate()
    gone = tmp_path / "gone" / "once"  # the run directory is removed
    settings = gatecmd.GateSettings(gate.GatePolicy(roots=(root,)), once=str(gone))
    assert g.run(settings, _command(root)) == 1 and g.execs == []
    assert capsys.readouterr().err.startswith("gate error: the initiator's run is over (")


def test_a_refusal_is_logged_and_said_once(root: str, tmp_path: Path, capsys) -> None:
    g = Gate()
    log = tmp_path / "gate.log"
    settings = gatecmd.GateSettings(gate.GatePolicy(roots=(root,)), log=str(log))
    environ = {"SSH_ORIGINAL_COMMAND": "rsync --server -r . /etc", "SSH_AUTH_SOCK": "/x"}
    assert g.run(settings, environ) == 1 and g.execs == [] and g.confined == []
    entry = json.loads(log.read_text())
    assert entry["refused"] and entry["environment"] == ["SSH_AUTH_SOCK", "SSH_ORIGINAL_COMMAND"]
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("gate error: ")


def test_a_lifeline_already_released_stops_the_sender(root: str, capsys) -> None:
    def released(path: str) -> None:
        raise FileNotFoundError(2, "No such file or directory")

    g = Gate()
    settings = gatecmd.GateSettings(gate.GatePolicy(roots=(root,)), lifeline="/run/x/lock")
    assert g.run(settings, _command(root), watch=released) == 1
    assert g.execs == [] and g.confined == []
    assert capsys.readouterr().err == (
        "gate error: the initiator's run is over (No such file or directory)\n"
    )


def test_a_sender_that_cannot_be_confined_is_not_started(root: str, capsys) -> None:
    def refuse(policy: gate.GatePolicy) -> None:
        raise errors.CapabilityError("no CAP_DAC_READ_SEARCH")

    g = Gate()
    assert g.run(gatecmd.GateSettings(gate.GatePolicy(roots=(root,))), _command(root),
                 confine=refuse) == 1  # fmt: skip
    assert g.execs == []
    assert capsys.readouterr().err == (
        "gate error: cannot confine the sender: capabilities: no CAP_DAC_READ_SEARCH\n"
    )


def test_an_exec_that_fails_is_one_line(root: str, capsys) -> None:
    def missing(path: str, argv: list[str], env: dict[str, str]) -> None:
        raise FileNotFoundError(2, "No such file or directory")

    g = Gate()
    settings = gatecmd.GateSettings(gate.GatePolicy(roots=(root,), rsync="/nowhere/rsync"))
    assert g.run(settings, _command(root), execve=missing) == 1
    assert capsys.readouterr().err == (
        "gate error: cannot run /nowhere/rsync: No such file or directory\n"
    )


def test_ionice_on_an_unknown_machine_is_a_warning(monkeypatch, capsys) -> None:
    monkeypatch.setattr(gatecmd.platform, "machine", lambda: "mips")
    gatecmd._set_ioprio("idle")
    assert capsys.readouterr().err == "gate warning: ionice is not supported on mips, skipped\n"


@pytest.mark.parametrize("text, ok", [("0", True), ("19", True), ("20", False), ("-1", False),
                                      ("٣", False), ("x", False)])  # fmt: skip
def test_nice_levels(text: str, ok: bool) -> None:
    if ok:
        assert gatecmd._nice(text) == int(text)
    else:
        with pytest.raises(argparse.ArgumentTypeError, match="is not a nice level 0-19"):
            gatecmd._nice(text)


def test_the_log_is_appended_never_followed(tmp_path: Path) -> None:
    log = tmp_path / "gate.log"
    gatecmd._append_log(str(log), {"SSH_CONNECTION": "a b c d"}, {"argv": ["x"]})
    gatecmd._append_log(str(log), {}, {"refused": "no"})
    first, second = (json.loads(line) for line in log.read_text().splitlines())
    assert first["ssh_connection"] == "a b c d" and first["argv"] == ["x"]
    assert second["refused"] == "no" and second["environment"] == []
    os.unlink(log)
    log.symlink_to(tmp_path / "target")
    with pytest.raises(OSError):
        gatecmd._append_log(str(log), {}, {})
    assert not (tmp_path / "target").exists()
