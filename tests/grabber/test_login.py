"""What the capability launcher runs (grabber/login.py): capabilities are
held before the grabber's command line is even imported, and what was held
is what the grabber gets."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pullsnap import caps
from pullsnap.grabber import cli, login


def test_main_holds_the_launcher_caps_and_hands_them_on(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []

    def hold(wanted):
        calls.append(("hold", tuple(wanted)))
        return ("cap_chown",)

    monkeypatch.setattr(caps, "hold_at_start", hold)
    monkeypatch.setattr(cli, "main", lambda argv, held: calls.append(("main", held)) or 4)
    monkeypatch.setattr(sys, "argv", ["-grabber"])
    assert login.main() == 4
    assert calls == [("hold", tuple(caps.GRABBER_LAUNCHER_CAPS)), ("main", ("cap_chown",))]


def test_login_does_not_import_the_command_line_before_holding() -> None:
    """Run as a module in a fresh interpreter: until main() runs, nothing of
    the grabber beyond pullsnap.caps is loaded."""
    program = (
        "import sys, pullsnap.grabber.login\n"
        "print(sorted(m for m in sys.modules if m.startswith('pullsnap.grabber.')))"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    assert done.stdout.strip() == "['pullsnap.grabber.login']"
