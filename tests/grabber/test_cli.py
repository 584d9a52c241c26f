"""The grabber's two faces (cli.py): the login shell serves one backup
without loading the operator's commands; the operator's parser has them all."""

from __future__ import annotations

import json
import subprocess
import sys

from pullsnap.grabber import cli

LOGIN = """
import json, sys
from pullsnap.grabber import cli
code = cli.main(["grabber", "-c", "pullsnap-grabber host=web1"])
loaded = sorted(m for m in sys.modules if m.startswith("pullsnap.grabber."))
print(json.dumps({"code": code, "loaded": loaded}))
"""


def test_the_login_shell_starts_without_the_operators_commands() -> None:
    done = subprocess.run(
        [sys.executable, "-c", LOGIN], capture_output=True, text=True, check=False,
        stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", "SSH_CONNECTION": "127.0.0.1 50000 127.0.0.1 22"},
    )  # fmt: skip
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["code"] == 6  # refused: no forced command, no SSH_ORIGINAL_COMMAND
    assert "pullsnap.grabber.session.serve" in out["loaded"]
    for box in ("commands", "views", "setup", "integrity", "retention"):
        assert not [m for m in out["loaded"] if m.startswith(f"pullsnap.grabber.{box}")], box


def test_the_operators_parser_knows_every_command() -> None:
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    assert list(sub.choices) == [
        "list", "authorize", "deauthorize", "install-launcher", "allow-run", "accept", "status",
        "report", "versions", "diff", "du", "restore", "delete", "check", "prune", "verify",
        "migrate",
    ]  # fmt: skip


def test_a_login_shell_is_told_from_an_operator() -> None:
    assert cli._is_login_shell(["grabber", "-c", "x"])
    assert cli._is_login_shell(["-grabber"])
    assert not cli._is_login_shell(["grabber", "list"])
    assert not cli._is_login_shell(["/opt/pullsnap/bin/grabber"])


def test_the_configuration_may_follow_the_command() -> None:
    """`grabber status --config FILE` as well as `grabber --config FILE status`;
    without either, the default file."""
    parse = cli.build_parser().parse_args
    assert parse(["status", "--config", "/srv/g.toml", "web1"]).config == "/srv/g.toml"
    assert parse(["--config", "/srv/g.toml", "status"]).config == "/srv/g.toml"
    assert parse(["--config", "/a.toml", "list", "--config", "/b.toml"]).config == "/b.toml"
    assert parse(["status"]).config == "/etc/pullsnap/grabber.toml"
    assert parse(["check", "-c", "/srv/g.toml"]).config == "/srv/g.toml"


def test_the_login_shell_typed_by_hand_says_what_to_type(capsys, monkeypatch) -> None:
    """Not started by sshd (none of its variables): the login-shell mode
    refuses at once and names the command the person meant."""
    for name in ("SSH_CONNECTION", "SSH_CLIENT", "SSH_ORIGINAL_COMMAND"):
        monkeypatch.delenv(name, raising=False)
    code = cli.main(["grabber", "-c", "/srv/g.toml", "status"])
    err = capsys.readouterr().err
    assert code == 6 and "not started by sshd" in err
    assert err.strip().endswith("type: grabber --config /srv/g.toml status")
