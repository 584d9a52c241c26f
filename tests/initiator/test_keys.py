"""The run's keys, made by the real ssh-keygen under a real Twisted reactor.

DESIGN "Security properties" 1: the one-time client private key is never
written to a file; ssh-keygen writes it into a FIFO we read.  Each test runs
a small script in a fresh interpreter (a reactor runs once per process) and
reads its JSON verdict.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pullsnap import handoff

# DESIGN.md security properties: `./test.sh -m security` runs these.
pytestmark = pytest.mark.security

SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"

_SCRIPT = r"""
import json, os, stat, sys, threading
from twisted.internet import defer, task
from pullsnap.initiator import keys

run_dir, keygen, timeout, which = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
seen = {}          # name -> set of file types seen while the keys were made
leaks = []         # regular files other than host_key holding a private key
stop = threading.Event()

def kind(mode):
    return "fifo" if stat.S_ISFIFO(mode) else "file" if stat.S_ISREG(mode) else "other"

def watch():
    # Poll the run directory as fast as we can; read regular files only
    # (opening the FIFO would steal the key from the code under test).
    while not stop.is_set():
        for entry in os.scandir(run_dir):
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except FileNotFoundError:
                continue
            seen.setdefault(entry.name, set()).add(kind(mode))
            if not stat.S_ISREG(mode) or entry.name == "host_key":
                continue
            try:
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                if stat.S_ISREG(os.fstat(fd).st_mode) and b"PRIVATE KEY" in os.read(fd, 65536):
                    leaks.append(entry.name)
            finally:
                os.close(fd)

async def main(reactor):
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out = {}
    try:
        if which in ("both", "host"):
            out["host_public"] = await keys.make_host_key(reactor, keygen, run_dir, timeout)
        if which in ("both", "client"):
            client = await keys.make_client_key(reactor, keygen, run_dir, timeout)
            out["private"] = client.private.decode("ascii")
            out["public"] = client.public
    except Exception as e:
        out["error"] = type(e).__name__
        out["message"] = str(e)
    stop.set()
    watcher.join()
    out["seen"] = {name: sorted(kinds) for name, kinds in seen.items()}
    out["leaks"] = sorted(set(leaks))
    print(json.dumps(out), flush=True)

task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
"""


def make_keys(run_dir: Path, keygen: str = SSH_KEYGEN, which: str = "both", timeout: float = 20):
    run_dir.mkdir(mode=0o700, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(run_dir), keygen, str(timeout), which],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip(), done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def regular_files(directory: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes() for p in directory.iterdir() if p.is_file() and not p.is_symlink()
    }


def fake_keygen(tmp_path: Path, body: str) -> str:
    """A stand-in ssh-keygen; `$key` is the -f argument (always last)."""
    script = tmp_path / "fake-ssh-keygen"
    script.write_text("#!/bin/sh\nfor key; do :; done\nread answer\n" + body)
    script.chmod(0o755)
    return str(script)


FAKE_PRIVATE = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAAB\\n"
    "-----END OPENSSH PRIVATE KEY-----\\n"
)
FAKE_PUBLIC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE5vdEFSZWFsS2V5QnV0V2VsbEZvcm1lZEVub3VnaA x"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("keys") / "run"
    return run_dir, make_keys(run_dir)


def test_client_key_is_a_valid_openssh_private_key(made: tuple[Path, dict]) -> None:
    _run_dir, out = made
    assert "error" not in out, out
    private = out["private"]
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    handoff.check_client_key(private)
    # ssh-keygen itself derives the same public key from it (read from a pipe).
    derived = subprocess.run(
        [SSH_KEYGEN, "-y", "-f", "/dev/stdin"],
        input=private,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out["public"] == f"{derived[0]} {derived[1]}"
    assert out["public"].startswith("ssh-ed25519 ")
    assert len(out["public"].split()) == 2  # comment dropped


def test_host_key_is_a_pinnable_public_key(made: tuple[Path, dict]) -> None:
    run_dir, out = made
    handoff.check_host_key(out["host_public"])
    assert out["host_public"] != out["public"]
    derived = subprocess.run(
        [SSH_KEYGEN, "-y", "-f", str(run_dir / "host_key")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out["host_public"] == f"{derived[0]} {derived[1]}"


def test_only_the_host_key_remains_and_only_it_is_private(made: tuple[Path, dict]) -> None:
    run_dir, out = made
    assert sorted(os.listdir(run_dir)) == ["host_key"]  # FIFO and .pub files are gone
    files = regular_files(run_dir)
    assert [name for name, data in files.items() if b"PRIVATE KEY" in data] == ["host_key"]
    # While the keys were made: the client key path was never a regular file,
    # and no regular file but host_key ever held a private key.
    assert out["leaks"] == []
    assert out["seen"]["client_key"] == ["fifo"]  # the watcher did see it
    assert set(out["seen"]) <= {"host_key", "host_key.pub", "client_key", "client_key.pub"}


def test_a_replaced_fifo_is_detected(tmp_path: Path) -> None:
    keygen = fake_keygen(
        tmp_path,
        f"printf '{FAKE_PRIVATE}' > \"$key\"\n"
        'rm -f "$key"\n'
        'mkfifo "$key"\n'
        f"echo '{FAKE_PUBLIC}' > \"$key.pub\"\n",
    )
    out = make_keys(tmp_path / "run", keygen, which="client")
    assert out.get("error") == "RunFailed", out
    assert "was replaced" in out["message"]
    assert "private" not in out


def test_a_fifo_replaced_by_a_regular_file_is_detected(tmp_path: Path) -> None:
    keygen = fake_keygen(
        tmp_path,
        f'rm -f "$key"\nprintf \'{FAKE_PRIVATE}\' > "$key"\necho \'{FAKE_PUBLIC}\' > "$key.pub"\n',
    )
    out = make_keys(tmp_path / "run", keygen, which="client")
    assert out.get("error") == "RunFailed", out
    assert "was replaced" in out["message"]


def test_something_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    keygen = fake_keygen(
        tmp_path, f"echo 'not a key' > \"$key\"\necho '{FAKE_PUBLIC}' > \"$key.pub\"\n"
    )
    out = make_keys(tmp_path / "run", keygen, which="client")
    assert out.get("error") == "RunFailed", out
    assert "did not write an OpenSSH private key" in out["message"]


def test_a_failing_keygen_is_reported(tmp_path: Path) -> None:
    keygen = fake_keygen(tmp_path, "echo 'no entropy today' >&2\nexit 1\n")
    out = make_keys(tmp_path / "run", keygen, which="client")
    assert out.get("error") == "RunFailed", out
    assert "no entropy today" in out["message"]


def test_a_hanging_keygen_times_out(tmp_path: Path) -> None:
    keygen = fake_keygen(tmp_path, "exec sleep 30\n")
    out = make_keys(tmp_path / "run", keygen, which="client", timeout=0.5)
    assert out.get("error") == "Timeout", out
    assert "took longer than 0.5 s" in out["message"]
