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
        stdin=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"},
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
        "report", "versions", "diff", "du", "check", "prune", "verify", "migrate",
    ]  # fmt: skip


def test_a_login_shell_is_told_from_an_operator() -> None:
    assert cli._is_login_shell(["grabber", "-c", "x"])
    assert cli._is_login_shell(["-grabber"])
    assert not cli._is_login_shell(["grabber", "list"])
    assert not cli._is_login_shell(["/opt/pullsnap/bin/grabber"])
