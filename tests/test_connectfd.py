"""connectfd.py: ssh's ProxyCommand that hands over a socket with Nagle off."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from pullsnap import connectfd


def _run_helper(
    address: str, port: int
) -> tuple[subprocess.CompletedProcess, socket.socket | None]:
    """Run the script as ssh would (stdout a Unix socket); what it passed back."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours:
        done = subprocess.run(
            [os.path.realpath(sys.executable), "-I", "-S", connectfd.__file__, address,
             str(port), "5"],
            stdout=theirs.fileno(), stderr=subprocess.PIPE, text=True, timeout=30, check=False,
        )  # fmt: skip
        theirs.close()
        if done.returncode != 0:
            return done, None
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    return done, socket.socket(fileno=fds[0])


def test_the_socket_ssh_gets_is_connected_with_nagle_off() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        done, passed = _run_helper("127.0.0.1", server.getsockname()[1])
        assert done.returncode == 0, done.stderr
        assert passed is not None
        with passed:
            assert passed.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            conn, _ = server.accept()
            with conn:
                assert conn.getpeername() == passed.getsockname()
                passed.sendall(b"SSH-2.0-test\r\n")
                assert conn.recv(64) == b"SSH-2.0-test\r\n"


def test_a_refused_connection_is_one_line_in_ssh_words() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    done, passed = _run_helper("127.0.0.1", port)
    assert passed is None and done.returncode == 255
    assert done.stderr == f"ssh: connect to host 127.0.0.1 port {port}: Connection refused\n"


def test_proxy_options_run_the_interpreter_itself_and_escape_percent() -> None:
    opts = connectfd.proxy_options("fe80::1%eth0", 2222, 7.5)
    assert opts[-2:] == ["-o", "ProxyUseFdpass=yes"]
    command = opts[1].removeprefix("ProxyCommand=")
    words = command.split(" ")
    assert words[0] == os.path.realpath(sys.executable)  # not a virtualenv's link
    assert words[1:3] == ["-I", "-S"]
    assert words[4:] == ["fe80::1%%eth0", "2222", "7"]  # ssh turns %% back into %


def test_helper_files_cover_what_the_interpreter_reads() -> None:
    files = connectfd.helper_files()
    assert files.run == ("/bin/sh", os.path.realpath(sys.executable))
    assert os.path.abspath(connectfd.__file__) in files.read
    assert os.path.dirname(os.__file__) in files.read


def test_words_the_shell_would_read_as_more_than_a_word_mean_no_proxy() -> None:
    for address in ("vault; reboot", "$(reboot)", "-oProxyCommand=x", "a b", "`x`", "vault'"):
        assert connectfd.proxy_options(address, 22, 10) == [], address
    assert connectfd.proxy_options("vault.example.org", 22, 10) != []
    assert connectfd.proxy_options("2001:db8::5", 22, 10) != []
