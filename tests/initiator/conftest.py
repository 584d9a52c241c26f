"""The gate's tree and command lines, shared by test_gate.py and
test_gatecmd.py: a source root with links out of it, and what the installed
rsync client asks the remote shell to run."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pullsnap.initiator.gate import GatePolicy
from tests.initiator.gatelines import ACCEPTED_OPTIONS, RSYNC, WEIRD


@pytest.fixture(scope="session")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """<base>/root (the source root) and <base>/outside, with links between."""
    base = tmp_path_factory.mktemp("gate")
    root, outside = base / "root", base / "outside"
    for d in (root / "etc", root / "home" / "a b", root / WEIRD, outside, base / "root2"):
        d.mkdir(parents=True)
    (root / "etc" / "hosts").write_text("hosts\n")
    (root / WEIRD / "f").write_text("weird\n")
    (outside / "secret").write_text("secret\n")
    (root / "escape").symlink_to(outside)
    (root / "inner").symlink_to(root / "etc")
    return base


@pytest.fixture(scope="session")
def root(tree: Path) -> str:
    return str(tree / "root")


@pytest.fixture(scope="session")
def policy(root: str) -> GatePolicy:
    return GatePolicy(roots=(root,))


@pytest.fixture(scope="session")
def client_line(tree: Path):
    """Run the real rsync client; return the command it asks the remote shell for."""
    fake = tree / "fake-ssh"
    fake.write_text(
        "#!/bin/sh\n"
        "# rsync runs: SHELL [-l USER] HOST rsync --server ...; keep the remote command.\n"
        'while [ $# -gt 0 ] && [ "$1" != rsync ]; do shift; done\n'
        'printf \'%s\' "$*" > "$CAPTURE"\n'
        "exit 1\n"
    )
    fake.chmod(0o755)
    capture = tree / "captured"

    def run(options: list[str], *paths: str) -> str:
        sources = [f"u@h:{paths[0]}", *(f":{p}" for p in paths[1:])]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CAPTURE": str(capture)}
        capture.unlink(missing_ok=True)
        argv = [RSYNC, *options, "-e", str(fake), *sources, str(tree / "dest")]
        subprocess.run(argv, env=env, capture_output=True, timeout=30, check=False)
        return capture.read_text()

    return run


@pytest.fixture(scope="session")
def real_lines(client_line, root: str) -> list[str]:
    paths = (f"{root}/etc", f"{root}/home/a b", f"{root}/{WEIRD}/")
    return [client_line(options, *paths) for options in ACCEPTED_OPTIONS]
