"""The one-shot door: a listening socket that lets exactly one allowed peer in.

    grabber ──TCP──> [listening socket] ──accept()──> peer allowed?
                                                       no:  close at once (RST),
                                                            before one SSH byte
                                                       yes: stop listening,
                                                            fd ──> sshd -i
                                                                   (fd 0 and 1)

A plain socket rather than `listenTCP`: the accepted socket is handed to a
child, and a Twisted transport would shut it down when we close our copy.
`close()` on our copy leaves the child's copy open (socket(7)).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet import defer
from twisted.python import failure

from pullsnap.errors import RunFailed, Timeout
from pullsnap.names import normalise_address


def listen_family(address: str) -> socket.AddressFamily:
    if address and ipaddress.ip_address(address).version == 6:
        return socket.AF_INET6
    return socket.AF_INET


def listening_socket(address: str, port: int) -> socket.socket:
    """Bound and listening.  "" is every address: IPv6 and IPv4 on one socket
    (IPV6_V6ONLY off, ipv6(7); IPv4 peers show as ::ffff:a.b.c.d), or IPv4
    alone on a kernel without IPv6.  The backup host connects back to the
    address this host called it from, which is IPv6 on a dual-stack network."""
    if address:
        binds = [(listen_family(address), address)]
    else:
        binds = [(socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")]
    for family, host in binds[:-1]:
        with contextlib.suppress(OSError):
            return _listen(family, host, port)
    return _listen(*binds[-1], port)


def _listen(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        sock.listen(8)
    except OSError:
        sock.close()
        raise
    return sock


class Door:
    """Listen on (address, port); `accept_one` yields the first allowed peer."""

    def __init__(
        self,
        reactor: Any,
        address: str,
        port: int,
        allow: Iterable[str],
        on_stranger: Callable[[str], None] = lambda peer: None,
    ) -> None:
        self.reactor = reactor
        self.allow = frozenset(normalise_address(a) for a in allow)
        self.on_stranger = on_stranger
        self.strangers: list[str] = []
        self.sock = listening_socket(address, port)
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self._waiting: defer.Deferred[socket.socket] | None = None
        self._timer: Any = None
        self._reading = False

    # IReadDescriptor, so the reactor tells us when a connection is pending.
    def fileno(self) -> int:
        return self.sock.fileno()

    def logPrefix(self) -> str:
        return "pullsnap-door"

    def connectionLost(self, reason: failure.Failure) -> None:
        self.close()

    def doRead(self) -> None:
        while self._waiting is not None:
            try:
                conn, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                # EMFILE and the like leave the socket readable: failing now
                # beats spinning until the deadline.
                waiting, self._waiting = self._waiting, None
                self.close()
                waiting.errback(failure.Failure(RunFailed(f"accept() failed: {e.strerror}")))
                return
            address = normalise_address(peer[0])
            if address not in self.allow:
                self._reject(conn, address)
                continue
            waiting, self._waiting = self._waiting, None
            self.close()
            conn.setblocking(True)
            # sshd turns Nagle off only once a session is interactive: until
            # then a reply sent as two writes waits for the peer's delayed
            # ACK, 40 ms each time, during the handshake (tcp(7) TCP_NODELAY).
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            waiting.callback(conn)
            return

    def _reject(self, conn: socket.socket, address: str) -> None:
        # SO_LINGER 0: close sends RST, so the stranger gets no banner and
        # no orderly end either (socket(7)).
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        self.strangers.append(address)
        self.on_stranger(address)

    def accept_one(self, timeout: float) -> defer.Deferred[socket.socket]:
        """Fire with the first connection from an allowed address."""
        self._waiting = defer.Deferred()
        self._timer = self.reactor.callLater(timeout, self._expire, timeout)
        self.reactor.addReader(self)
        self._reading = True
        return self._waiting

    def postpone(self, timeout: float) -> None:
        """Restart the accept deadline at `timeout` from now (if still waiting)."""
        if self._waiting is not None and self._timer is not None and self._timer.active():
            self._timer.reset(timeout)
            self._timer.args = (timeout,)

    def _expire(self, timeout: float) -> None:
        waiting, self._waiting = self._waiting, None
        self.close()
        if waiting is not None:
            waiting.errback(
                failure.Failure(
                    Timeout(f"the backup host did not connect back within {timeout:g} s")
                )
            )

    def close(self) -> None:
        if self._reading:
            self.reactor.removeReader(self)
            self._reading = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if self.sock.fileno() >= 0:
            self.sock.close()
