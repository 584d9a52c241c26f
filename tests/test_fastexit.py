"""Ending an entry point without the interpreter's teardown (fastexit.py):
the status is the one given, buffered output is out, atexit does not run."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = """
import atexit, sys
from pullsnap.fastexit import exit_now
atexit.register(lambda: print("atexit ran"))
sys.stdout.write("to stdout, buffered")
sys.stderr.write("to stderr")
exit_now(7)
"""


def test_exit_now_flushes_keeps_the_status_and_skips_atexit() -> None:
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 7
    assert done.stdout == "to stdout, buffered"
    assert done.stderr == "to stderr"


def test_a_closed_stdout_does_not_stop_the_exit() -> None:
    program = "import sys\nsys.stdout.close()\nfrom pullsnap.fastexit import exit_now\nexit_now(3)"
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=60,
                          check=False)  # fmt: skip
    assert done.returncode == 3 and done.stderr == b""
