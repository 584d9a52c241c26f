"""The btrfs store's pull through the gate: the command line the real rsync
client makes of the grabber's in-place argv (transfer/pull.py) passes a
current gate, and a gate whose table predates it (no "inplace") refuses it
with exactly the line the grabber recognizes (transfer/oldgate.py)."""

from __future__ import annotations

import pytest

from pullsnap.grabber.transfer import oldgate, pull
from pullsnap.initiator import gate, gatecmd
from pullsnap.initiator.gate import GatePolicy, parse
from tests.initiator.gatelines import RSYNC


def _in_place_options() -> list[str]:
    """The grabber's btrfs-store options, up to its remote shell."""
    connect = pull.ConnectBack(user="pullsnap", address="127.0.0.1", port=2222,
                               known_hosts="/run/p/known_hosts", public_key_file="/run/p/key.pub",
                               agent_socket="/run/p/agent", connect_timeout=30)  # fmt: skip
    spec = pull.PullSpec(rsync=RSYNC, ssh="/usr/bin/ssh", connect=connect, sources=("/etc",),
                         target="/srv/pullsnap/web1/x.incomplete", excludes=("*.tmp",),
                         in_place=True)  # fmt: skip
    argv = pull.rsync_argv(spec)
    assert "--inplace" in argv
    return argv[1 : argv.index("-e")]


@pytest.fixture
def in_place_line(client_line, root: str) -> str:
    line = client_line(_in_place_options(), f"{root}/etc")
    assert "--inplace" in line.split(" . ")[0].split()
    return line


def test_a_current_gate_lets_the_in_place_sender_run(in_place_line: str, root: str) -> None:
    argv = parse(in_place_line, GatePolicy(roots=(root,)))
    options = argv[3 : argv.index("--")]
    assert "--inplace" in options
    # The receiver's --delete options stay on the receiving side.
    assert not any(o.startswith("--del") for o in options)
    assert argv[-1] == f"{root}/etc"


def test_an_old_gate_refuses_it_with_the_line_the_grabber_knows(
    in_place_line: str, root: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.delitem(gate.LONG_OPTIONS, "inplace")
    execs: list[object] = []
    settings = gatecmd.GateSettings(GatePolicy(roots=(root,)))
    code = gatecmd.run(settings, {"SSH_ORIGINAL_COMMAND": in_place_line},
                       execve=lambda *a: execs.append(a), confine=lambda p: None,
                       watch=lambda path: None)  # fmt: skip
    out, err = capsys.readouterr()
    assert (code, out, execs) == (1, "", [])
    assert err == oldgate.REFUSAL + "\n"
    assert oldgate.refused_inplace(err.splitlines())
