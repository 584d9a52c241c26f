"""What the capability launcher runs: give up effective capabilities first.

The launcher's ambient capabilities arrive effective in this interpreter
(capabilities(7), execve of a file without file capabilities).  Before the
grabber imports anything else or reads a byte of input, they become
permitted-only (pullsnap.caps.hold_quietly); only the receiving rsync gets
them back, as ambient, after its confinement (grabber/confine/receiver.py).
"""

from __future__ import annotations

import sys

from pullsnap import caps


def main() -> int:
    held = caps.hold_at_start(caps.GRABBER_LAUNCHER_CAPS)
    from pullsnap.grabber.cli import main as grabber_main

    return grabber_main(sys.argv, held)


if __name__ == "__main__":
    from pullsnap.fastexit import exit_now

    exit_now(main())
