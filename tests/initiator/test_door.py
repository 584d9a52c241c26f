"""The one-shot door: one allowed peer gets in, strangers get nothing.

DESIGN "Security properties" 2 (pre-handshake peer check) and 8 (every wait
has a deadline).  The connection tests run the real reactor in a fresh
interpreter and read its JSON verdict; the clients are plain sockets in a
thread of that process.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from twisted.internet import task

from pullsnap.errors import TIMEOUT, Timeout
from pullsnap.initiator import door as door_module
from pullsnap.initiator.door import Door

# DESIGN.md security properties: `./test.sh -m security` runs these.
pytestmark = pytest.mark.security

_PRELUDE = r"""
import json, socket, sys
from twisted.internet import defer, task, threads
from pullsnap.errors import Timeout
from pullsnap.initiator.door import Door

def connect_refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=20).close()
    except ConnectionRefusedError:
        return True
    return False
"""

_ACCEPT = (
    _PRELUDE
    + r"""
async def main(reactor):
    strangers = []
    door = Door(reactor, "127.0.0.1", 0, ["127.0.0.1"], on_stranger=strangers.append)
    accepted = door.accept_one(30)
    port = door.port

    def clients():
        out = {}
        stranger = socket.socket()
        stranger.bind(("127.0.0.2", 0))
        stranger.settimeout(20)
        try:
            # The reset can come so soon that connect() itself reports it.
            stranger.connect(("127.0.0.1", port))
            data = stranger.recv(1024)
            out["stranger"] = {"bytes": len(data), "end": "eof"}
        except ConnectionResetError:
            out["stranger"] = {"bytes": 0, "end": "reset"}
        stranger.close()
        friend = socket.create_connection(("127.0.0.1", port), timeout=20)
        friend.sendall(b"ping")
        out["friend_got"] = friend.recv(1024).decode()
        friend.close()
        out["later_refused"] = connect_refused(port)
        return out

    client_side = threads.deferToThread(clients)
    conn = await accepted
    out = {"peer": conn.getpeername()[0], "blocking": conn.getblocking()}
    out["door_got"] = conn.recv(4).decode()
    conn.sendall(b"door-ok")
    conn.close()
    out.update(await client_side)
    out["strangers"] = strangers
    out["door_strangers"] = door.strangers
    out["listening_fd"] = door.sock.fileno()
    print(json.dumps(out), flush=True)

task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
"""
)

_TIMEOUT = (
    _PRELUDE
    + r"""
async def main(reactor):
    door = Door(reactor, "127.0.0.1", 0, ["127.0.0.1"])
    port = door.port
    started = reactor.seconds()
    out = {}
    try:
        await door.accept_one(0.3)
        out["error"] = None
    except Timeout as e:
        out["error"] = "Timeout"
        out["message"] = str(e)
    out["waited"] = reactor.seconds() - started
    out["later_refused"] = connect_refused(port)
    print(json.dumps(out), flush=True)

task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
"""
)


def run_script(script: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip(), done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_stranger_is_closed_before_any_byte_and_friend_gets_in() -> None:
    out = run_script(_ACCEPT)
    # The stranger (127.0.0.2) got not one byte: a reset or an empty read.
    assert out["stranger"]["bytes"] == 0
    assert out["stranger"]["end"] in ("reset", "eof")
    assert out["strangers"] == ["127.0.0.2"]
    assert out["door_strangers"] == ["127.0.0.2"]
    # The allowed peer still got in afterwards, over a working socket.
    assert out["peer"] == "127.0.0.1"
    assert out["blocking"] is True  # ready to hand to sshd -i
    assert out["door_got"] == "ping"
    assert out["friend_got"] == "door-ok"
    # One connection only: the door stopped listening.
    assert out["later_refused"] is True
    assert out["listening_fd"] == -1


def test_accept_one_times_out_with_the_real_reactor() -> None:
    out = run_script(_TIMEOUT)
    assert out["error"] == "Timeout"
    assert "did not connect back within 0.3 s" in out["message"]
    assert 0.25 <= out["waited"] < 5
    assert out["later_refused"] is True


# --- the same, in-process, with a fake reactor -----------------------------------------


class FakeReactor(task.Clock):
    """task.Clock for callLater, plus the reader registry Door uses."""

    def __init__(self) -> None:
        super().__init__()
        self.readers: set = set()

    def addReader(self, reader: object) -> None:
        self.readers.add(reader)

    def removeReader(self, reader: object) -> None:
        self.readers.discard(reader)


def test_accept_one_times_out_on_the_clock() -> None:
    reactor = FakeReactor()
    door = Door(reactor, "127.0.0.1", 0, ["127.0.0.1"])
    port = door.port
    d = door.accept_one(120)
    assert door in reactor.readers
    failures: list = []
    d.addErrback(failures.append)
    reactor.advance(119.9)
    assert failures == [] and not d.called
    reactor.advance(0.2)
    assert len(failures) == 1
    error = failures[0].value
    assert isinstance(error, Timeout)
    assert error.exit_code == TIMEOUT
    assert str(error) == "the backup host did not connect back within 120 s"
    assert reactor.readers == set()
    assert reactor.getDelayedCalls() == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


def test_do_read_rejects_then_accepts_in_process() -> None:
    reactor = FakeReactor()
    seen: list[str] = []
    door = Door(reactor, "127.0.0.1", 0, ["127.0.0.1"], on_stranger=seen.append)
    accepted: list[socket.socket] = []
    door.accept_one(60).addCallback(accepted.append)

    stranger = socket.socket()
    stranger.bind(("127.0.0.2", 0))
    stranger.settimeout(5)
    stranger.connect(("127.0.0.1", door.port))
    door.doRead()
    assert seen == ["127.0.0.2"] and accepted == []
    with pytest.raises(ConnectionResetError):
        stranger.recv(1)
    stranger.close()

    friend = socket.create_connection(("127.0.0.1", door.port), timeout=5)
    door.doRead()
    assert len(accepted) == 1
    assert accepted[0].getpeername()[0] == "127.0.0.1"
    assert reactor.readers == set() and reactor.getDelayedCalls() == []
    accepted[0].close()
    friend.close()


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::FFFF:192.0.2.1", "192.0.2.1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
    ],
)
def test_normalise_address(text: str, address: str) -> None:
    assert door_module.normalise_address(text) == address


def test_allow_list_is_normalised() -> None:
    reactor = FakeReactor()
    door = Door(reactor, "127.0.0.1", 0, ["::ffff:127.0.0.1", "2001:DB8::1"])
    try:
        assert door.allow == frozenset({"127.0.0.1", "2001:db8::1"})
    finally:
        door.close()


def test_listen_family() -> None:
    assert door_module.listen_family("127.0.0.1") == socket.AF_INET
    assert door_module.listen_family("::") == socket.AF_INET6


@pytest.mark.parametrize("peer", ["::1", "127.0.0.1"])
def test_any_address_lets_the_backup_host_in_over_ipv6_and_ipv4(peer: str) -> None:
    """listen_address "" is every address: the connect-back goes to the address
    this host called the backup host from, which may be IPv6 (dual stack)."""
    reactor = FakeReactor()
    door = Door(reactor, "", 0, ["::1", "127.0.0.1"])
    accepted: list[socket.socket] = []
    door.accept_one(60).addCallback(accepted.append)
    with socket.create_connection((peer, door.port), timeout=5):
        door.doRead()
    assert len(accepted) == 1
    assert door_module.normalise_address(accepted[0].getpeername()[0]) == peer
    accepted[0].close()
