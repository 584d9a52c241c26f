"""Reading the handoff from stdin: bounded in size and in time.

The header names the body length, so an oversized handoff is refused
after at most `handoff.MAX_HEADER` bytes; the whole read has one deadline.
"""

from __future__ import annotations

import os
import select
import time

from pullsnap import handoff
from pullsnap.errors import HandoffError, HandoffTimeout


def _read_some(fd: int, limit: int, deadline: float) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise HandoffTimeout()
    ready, _, _ = select.select([fd], [], [], remaining)
    if not ready:
        raise HandoffTimeout()
    return os.read(fd, limit)


def read_handoff(fd: int, timeout: float) -> handoff.Handoff:
    deadline = time.monotonic() + timeout
    header = b""
    while not header.endswith(b"\n"):
        # One byte at a time: nothing past the header is consumed here.
        chunk = _read_some(fd, 1, deadline)
        if not chunk:
            raise HandoffError("the handoff ended before its header")
        header += chunk
        if len(header) > handoff.MAX_HEADER:
            raise HandoffError("the first line is not a pullsnap handoff header")
    length = handoff.decode_header(header)
    body = b""
    while len(body) < length:
        chunk = _read_some(fd, length - len(body), deadline)
        if not chunk:
            raise HandoffError(f"the handoff ended after {len(body)} of {length} bytes")
        body += chunk
    return handoff.decode_body(body)
