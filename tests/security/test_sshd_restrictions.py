"""Properties 2 and 3 with the right key: a hostile backup host holding the
one-time key gets nothing but the gate, and the gate nothing but a
read-only rsync sender inside the roots.  Each attack is one real run."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.security]

SENDER = "rsync --server --sender -lre.iLsfxCIvu ."


def _gate_lines(stderr: str) -> list[dict]:
    """The gate's log entries as the initiator relays them (-v): on a terminal
    `lab: gate: {...}`, otherwise logfmt `dest=lab log="gate: {...}"`."""
    from pullsnap import logfmt

    lines = []
    for line in stderr.splitlines():
        text = dict(logfmt.parse(line)).get("log", "") if "log=" in line else line
        if "gate: {" in text:
            lines.append(json.loads(text.split("gate: ", 1)[1]))
    return lines


@pytest.mark.parametrize(
    ("options", "command", "expect", "env"),
    [
        ([], [], "gate error: no command was given", None),  # a shell
        (["-tt"], [], "PTY allocation request failed", None),
        ([], ["id"], "gate error", None),
        ([], ["sh", "-c", "'cat /etc/shadow'"], "gate error", None),
        (["-s"], ["sftp"], "subsystem request failed", None),  # no subsystem is configured
        (["-W", "127.0.0.1:22"], [], "administratively prohibited", None),
        (["-N", "-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:22"], [],
         "remote port forwarding failed", None),
        (["-N", "-o", "ExitOnForwardFailure=yes", "-R", "/tmp/pullsnap-attack.sock:127.0.0.1:22"],
         [], "forwarding failed", None),
    ],
    ids=["shell", "pty", "command", "shell-command", "sftp", "stream-forward", "remote-forward",
         "streamlocal-forward"],
)  # fmt: skip
def test_sshd_gives_nothing_but_the_gate(hostile, options, command, expect, env) -> None:
    got = hostile("ssh", options=options, command=command, env=env)
    ssh = got["ssh"]
    assert ssh["code"] != 0
    assert expect in ssh["stderr"], ssh["stderr"]
    assert got["runtime_left"] == []


@pytest.mark.parametrize(
    "command",
    [
        "rsync --server -lre.iLsfxCIvu . {src}",  # receiving: a write
        "rsync --server --sender -slre.iLsfxCIvu",  # -s moves arguments in-band
        "rsync --server --sender -lre.iLsfxCIvu --remove-source-files . {src}",
        "rsync --server --sender -lre.iLsfxCIvu --delete . {src}",
        "rsync --server --sender -lre.iLsfxCIvu --log-file=/tmp/x . {src}",
        "rsync; rm -rf / --server --sender -lre.iLsfxCIvu . {src}",  # --rsync-path trick
        "rsync --server --sender -lre.iLsfxCIvu . {src}/../../../etc",
        "rsync --server --sender -lre.iLsfxCIvu . /etc/shadow",
        "rsync --server --sender -lre.iLsfxCIvu . {src}`id`",
        "rsync --server --sender -lre.iLsfxCIvu . " + "/x" * 40000,
    ],
    ids=["not-sender", "protect-args", "remove-source", "delete", "log-file", "rsync-path",
         "dotdot", "outside", "metachar", "long"],
)  # fmt: skip
def test_gate_refuses_through_the_real_door(hostile, site, command) -> None:
    got = hostile("ssh", options=[], command=[command.format(src=site.src)])
    ssh = got["ssh"]
    assert ssh["code"] == 1, ssh
    refusals = [line for line in ssh["stderr"].splitlines() if line.startswith("gate error:")]
    assert len(refusals) == 1, ssh["stderr"]


def test_forwarded_agent_and_client_environment_never_reach_the_gate(hostile, site) -> None:
    got = hostile(
        "ssh", options=["-A", "-o", "SetEnv=LD_PRELOAD=/tmp/evil.so RSYNC_RSH=sh"],
        command=[f"{SENDER} {site.src}"],
    )  # fmt: skip
    lines = _gate_lines(got["initiator"]["stderr"])
    assert len(lines) == 1, got["initiator"]["stderr"][-3000:]
    [entry] = lines
    assert entry["argv"][:3] == ["/usr/bin/rsync", "--server", "--sender"]
    names = set(entry["environment"])
    assert "SSH_ORIGINAL_COMMAND" in names
    assert not names & {"SSH_AUTH_SOCK", "LD_PRELOAD", "RSYNC_RSH"}, names
