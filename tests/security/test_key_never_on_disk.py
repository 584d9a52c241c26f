"""Property 1: the one-time private key is never written to a file.

A real backup runs with strace following both roles: the initiator and
everything it starts, and the backup host's sshd with every session it
forks (grabber, ssh-agent, ssh-add, rsync, ssh).  Every write is checked
against the file type of its descriptor: the key may go through the FIFO
(made by mknod as a FIFO), pipes and sockets, never into a regular file.
The only "PRIVATE KEY" a regular file may hold is the run's ephemeral host
key, inside the private run directory, gone after the run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from pullsnap import errors
from tests.labfixtures import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.security]

TRACED = "openat,mknodat,mkdir,write,pwrite64,writev,rename,renameat,renameat2,link,linkat"
# 1234  write(5</path/to/file>, "....", 411) = 411
_WRITE_RE = re.compile(r'^\d+\s+(?:write|pwrite64)\((\d+)<([^>]*)>, "(.*)", \d+(?:, \d+)?\) = \d+')
_MKNOD_RE = re.compile(r'^\d+\s+mknodat\(AT_FDCWD(?:<[^>]*>)?, "([^"]+)", (S_IFIFO\|0\d+)')
_MKDIR_RE = re.compile(r'^\d+\s+mkdir\("([^"]+)", (0\d+)\) = 0')


def _strace(argv_or_pid: list[str] | int, out: str) -> subprocess.Popen:
    target = ["-p", str(argv_or_pid)] if isinstance(argv_or_pid, int) else ["--", *argv_or_pid]
    return subprocess.Popen(
        # -ff: one file per process, so no call is split into "<unfinished
        # ...>" and "<... resumed>" halves by another process's lines.
        ["strace", "-ff", "-y", "-qq", "-s", "1000000", "-e", f"trace={TRACED}", "-o", out,
         *target],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _unescape(text: str) -> str:
    return text.encode("latin-1", "backslashreplace").decode("unicode_escape")


def _lines(prefix: str) -> list[str]:
    """Every traced call of every process, from strace -ff's files PREFIX.PID."""
    directory, base = os.path.split(prefix)
    lines = []
    for name in sorted(os.listdir(directory)):
        if name.startswith(base + "."):
            with open(os.path.join(directory, name), encoding="latin-1") as f:
                lines += [f"{name.rsplit('.', 1)[1]} {line}" for line in f]
    return lines


def _writes(prefix: str) -> list[tuple[str, str]]:
    found = []
    for line in _lines(prefix):
        match = _WRITE_RE.match(line)
        if match:
            found.append((match.group(2), _unescape(match.group(3))))
    return found


def _is_special(target: str) -> bool:
    return target.startswith(("pipe:", "socket:", "/dev/null", "/dev/pts", "anon_inode:"))


def _secret_of(armoured: str) -> tuple[str, str]:
    """The part of the armour that encodes only the ed25519 seed, and the raw
    seed (as latin-1 text, like the trace).  openssh-key-v1 (PROTOCOL.key)
    holds the 64-byte private key as seed || public, after a length of 64;
    the public half appears elsewhere too and is no secret."""
    import base64

    body = "".join(armoured.strip().splitlines()[1:-1])
    blob = base64.b64decode(body)
    start = blob.index(b"\0\0\0\x40") + 4
    while blob[start + 32 : start + 64] not in blob[: start - 4]:
        start = blob.index(b"\0\0\0\x40", start) + 4
    first, last = -(-start // 3), (start + 32) // 3  # whole base64 groups inside the seed
    return body[4 * first : 4 * last], blob[start : start + 32].decode("latin-1")


def test_the_one_time_key_never_lands_in_a_regular_file(site: Site, tmp_path) -> None:
    os.makedirs(site.src)
    with open(os.path.join(site.src, "f"), "w") as f:
        f.write("content\n")
    site.configure()
    assert site.lab.sshd is not None and site.lab.sshd.process is not None
    grabber_trace = str(tmp_path / "grabber.trace")
    initiator_trace = str(tmp_path / "initiator.trace")
    backup_side = _strace(site.lab.sshd.process.pid, grabber_trace)
    time.sleep(0.5)  # let strace attach before the connection arrives
    argv = [os.path.join(site.lab.venv_bin, "initiator"), "-c", site.initiator_config, "--now"]
    initiator = _strace(argv, initiator_trace)
    initiator.communicate(timeout=300)
    backup_side.send_signal(signal.SIGINT)
    backup_side.communicate(timeout=60)
    assert site.snapshots(), "the traced backup did not complete"

    fifos, dirs = {}, {}
    for line in _lines(initiator_trace):
        if m := _MKNOD_RE.match(line):
            fifos[m.group(1)] = m.group(2)
        if m := _MKDIR_RE.match(line):
            dirs[m.group(1)] = m.group(2)
    [fifo] = [p for p in fifos if p.endswith("/client_key")]
    assert fifos[fifo] == "S_IFIFO|0600"
    run_dir = os.path.dirname(fifo)
    assert run_dir.startswith(site.runtime + "/") and dirs[run_dir] == "0700"

    initiator_writes = _writes(initiator_trace)
    [key] = [data for target, data in initiator_writes if target == fifo]
    assert key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    secret_text, seed = _secret_of(key)
    grabber_writes = _writes(grabber_trace)
    assert any(secret_text in data for _, data in grabber_writes), "the grabber side saw no key"

    host_keys = []
    for target, data in initiator_writes + grabber_writes:
        if _is_special(target) or target == fifo:
            continue
        assert secret_text not in data and seed not in data, f"one-time key written to {target}"
        if "PRIVATE KEY" in data:
            host_keys.append(target)
    # ssh-keygen's host key: the only private key in a regular file, in the run dir.
    assert host_keys == [os.path.join(run_dir, "host_key")]
    assert not os.path.exists(run_dir)
    assert os.listdir(site.runtime) == []
    assert errors.OK == 0
