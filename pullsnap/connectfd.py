"""ssh's ProxyCommand with ProxyUseFdpass=yes (ssh_config(5)): connect to
ADDRESS PORT with Nagle's algorithm off and hand ssh the connected socket.

ssh turns Nagle off only once a session is interactive, and a backup's
sessions never are.  Until then, each time it sends a message as two
writes, the second waits for the peer's delayed ACK: 40 ms at a time,
twice per handshake on loopback (tcp(7) TCP_NODELAY).  Passing ssh a
socket with TCP_NODELAY already set takes those waits out.

Run as a script, `python3 -I -S connectfd.py ADDRESS PORT TIMEOUT`: it
imports nothing from pullsnap and no site packages, so it starts in a few
milliseconds, and the grabber's Landlock rules only need to let the
receiver read this one file.  ssh gives it a Unix socket as stdout
(sshconnect.c ssh_proxy_fdpass_connect); its messages go to ssh's stderr.
"""

from __future__ import annotations

import os
import socket
import sys

# Run as a script, it imports no more than this: what ssh waits for is its
# start.  The parent-side helpers below import what they need when called.


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: connectfd.py ADDRESS PORT TIMEOUT", file=sys.stderr)
        return 255
    address, port, timeout = argv[1], int(argv[2]), float(argv[3])
    try:
        conn = socket.create_connection((address, port), timeout=timeout)
    except TimeoutError:
        print(f"ssh: connect to host {address} port {port}: Connection timed out", file=sys.stderr)
        return 255
    except OSError as e:
        print(f"ssh: connect to host {address} port {port}: {e.strerror or e}", file=sys.stderr)
        return 255
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.settimeout(None)
    with socket.socket(fileno=sys.stdout.fileno()) as to_ssh:
        socket.send_fds(to_ssh, [b"\0"], [conn.fileno()])
    return 0


SHELL = "/bin/sh"  # ssh runs ProxyCommand as `$SHELL -c "exec ..."`; our children get no SHELL


class HelperFiles:
    __slots__ = ("read", "run")

    def __init__(self, run: tuple[str, ...], read: tuple[str, ...]) -> None:
        self.run = run  # executed: the shell and the interpreter
        self.read = read  # read: the standard library and this script


def _python() -> str:
    """The interpreter itself, not a virtualenv's link to it: with -S it
    then reads nothing but the standard library."""
    return os.path.realpath(sys.executable)


def helper_files() -> HelperFiles:
    """What a process confined by Landlock must be allowed for ssh to run us."""
    stdlib = os.path.dirname(os.__file__)
    return HelperFiles(run=(SHELL, _python()), read=(stdlib, os.path.abspath(__file__)))


# ssh runs ProxyCommand through the shell: every word must be plain.
_PLAIN_WORD = r"^[A-Za-z0-9_./:%+,@=][A-Za-z0-9_./:%+,@=-]*\Z"


def proxy_options(address: str, port: int, timeout: float) -> list[str]:
    """The ssh options that make ssh connect through this script, or none
    when a word of the command would not be plain to the shell (an
    interpreter or install path with spaces, an odd host name): then ssh
    connects by itself, as it would without us."""
    import re

    python, script = _python(), os.path.abspath(__file__)
    if not all(re.match(_PLAIN_WORD, word) for word in (python, script, address)):
        return []
    words = [python, "-I", "-S", script, address, str(int(port)), str(max(1, int(timeout)))]
    # ssh expands %-tokens in ProxyCommand (a scoped IPv6 address has a '%').
    command = " ".join(words).replace("%", "%%")
    return ["-o", f"ProxyCommand={command}", "-o", "ProxyUseFdpass=yes"]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
