"""Operator commands run by a user who cannot read the repository: one line
saying what to do and the usage exit code, never a traceback or a claim
that the host or snapshot does not exist."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from pullsnap import errors

pytestmark = pytest.mark.root

GRABBER = os.path.join(os.path.dirname(sys.executable), "grabber")


@pytest.fixture
def config() -> Iterator[str]:
    """A config anyone may read, naming a 0700 repository only root may enter."""
    base = tempfile.mkdtemp(prefix="pullsnap-readonly-")
    try:
        os.chmod(base, 0o755)
        os.makedirs(os.path.join(base, "repo", "web1"))
        os.chmod(os.path.join(base, "repo"), 0o700)
        path = os.path.join(base, "grabber.toml")
        with open(path, "w") as f:
            f.write(f'repository = "{base}/repo"\n')
        os.chmod(path, 0o644)
        yield path
    finally:
        shutil.rmtree(base)


@pytest.mark.parametrize(
    "command",
    [["list"], ["prune"], ["prune", "--dry-run", "web1"], ["verify", "web1"],
     ["allow-run", "web1"], ["accept", "web1", "2026-11-25T021700Z"], ["status"]],
    ids=lambda c: "-".join(c),
)  # fmt: skip
def test_a_user_who_cannot_read_the_repository_is_told_so(config: str, command) -> None:
    done = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         GRABBER, "--config", config, *command],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == errors.USAGE, done.stderr
    assert len(lines) == 1 and lines[0].startswith("grabber: cannot read the repository "), lines
