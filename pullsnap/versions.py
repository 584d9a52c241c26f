"""Versions of the tools we drive, and which ones are safe (pure parsing + one probe)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Sequence
from functools import cache, lru_cache

# rsync before 3.4.0 lets a malicious sender attack the receiver
# (CVE-2024-12084..12088); the grabber is the receiver.
MIN_SAFE_RSYNC = (3, 4, 0)
# What the gate's allow-list and --confine-root were written against.
MIN_RSYNC = (3, 2, 3)


def parse_version(text: str) -> tuple[int, ...] | None:
    """First dotted version number in a tool's banner."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        return None
    return tuple(int(g) for g in match.groups() if g is not None)


def dotted(version: tuple[int, ...] | None) -> str:
    return ".".join(map(str, version)) if version else "unknown"


@lru_cache(maxsize=8)
def tool_version(argv: tuple[str, ...]) -> tuple[int, ...] | None:
    """Run `argv` (e.g. ("rsync", "--version")) and parse its banner."""
    return start_probe(argv)()


def start_output(argv: Sequence[str]) -> Callable[[], bytes]:
    """Start `argv` now; the returned function waits for it and gives what
    it wrote, stdout and stderr together (once: later calls return the
    same; b"" if it could not run or took over 10 s).  The program runs
    while the caller does other work."""
    try:
        child = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    except OSError:
        return lambda: b""
    found: list[bytes] = []

    def output() -> bytes:
        if not found:
            try:
                out, _ = child.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                out = b""
            found.append(out)
        return found[0]

    return output


def start_probe(argv: tuple[str, ...]) -> Callable[[], tuple[int, ...] | None]:
    """`start_output` of a banner, parsed into a version when asked (once)."""
    output = start_output(argv)
    return cache(lambda: parse_version(output().decode("utf-8", "replace")))


def rsync_version(rsync: str) -> tuple[int, ...] | None:
    return tool_version((rsync, "--version"))


def rsync_risk(version: tuple[int, ...] | None) -> str | None:
    """Why this rsync is not safe to pull with, or None (pure).

    3.4.0 fixed a receiver heap overflow and info leak reachable by a
    malicious sender and several path escapes (CVE-2024-12084..12088, the
    rsync 3.4.0 NEWS).  A distribution may carry the fixes in an older
    version number: then the operator says so in the configuration.
    """
    if version is None:
        return "cannot tell its version"
    if version < MIN_SAFE_RSYNC:
        return f"{dotted(version)} is older than {dotted(MIN_SAFE_RSYNC)} (CVE-2024-12084..12088)"
    return None
