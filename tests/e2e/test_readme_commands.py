"""The README's restore, delete and allow-run commands, taken from its text
and run as written against the lab (with its grabber configuration, which
is not the default, after the command as README says it may go), with the
README's example host paths mapped into the lab's source tree."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from lab import write
from pullsnap import errors
from tests.e2e.conftest import Site
from tests.trees import differences

pytestmark = [pytest.mark.root, pytest.mark.e2e]

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _commands(title: str, program: str) -> list[list[str]]:
    """The `program ...` lines of the sh blocks under `### title`."""
    section = re.split(r"\n##+ ", README.split(f"\n### {title}\n", 1)[1], maxsplit=1)[0]
    blocks = [part.split("```", 1)[0] for part in section.split("```sh\n")[1:]]
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line) for line in lines if re.match(rf"^(\S*/)?{program}\b", line)]


def _run(site: Site, words: list[str]) -> subprocess.CompletedProcess:
    argv = [os.path.join(site.lab.venv_bin, "grabber"), *words[1:], "--config",
            site.grabber_config]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)


def _tree(site: Site) -> None:
    for directory in ("etc/ssh", "home/alice"):
        os.makedirs(os.path.join(site.src, directory))
    write(os.path.join(site.src, "etc", "ssh", "sshd_config"), "PermitRootLogin no\n", 0o600)
    write(os.path.join(site.src, "home", "alice", "notes"), "remember\n", 0o640)
    os.chown(os.path.join(site.src, "home", "alice", "notes"), 1234, 1234)


def test_the_readme_restore_and_delete_commands_run_as_written(site: Site) -> None:
    _tree(site)
    for _ in range(2):
        assert site.run().returncode == errors.OK
    first, second = site.snapshots()
    lab_paths = {"/etc/ssh/sshd_config": site.src + "/etc/ssh/sshd_config",
                 "/home/alice": site.src + "/home/alice", "2026-11-24T021700Z": first,
                 "/tmp/restore": os.path.join(site.root, "tmp-restore"),
                 "/restore/alice": os.path.join(site.root, "restore", "alice")}  # fmt: skip
    os.makedirs(lab_paths["/tmp/restore"])
    os.makedirs(os.path.dirname(lab_paths["/restore/alice"]))
    restores = [c for c in _commands("Restoring with grabber restore", "grabber")
                if "--to-host" not in c]  # fmt: skip
    assert len(restores) == 2
    for words in restores:
        done = _run(site, [lab_paths.get(w, w) for w in words])
        assert done.returncode == errors.OK, (words, done.stdout, done.stderr)
        assert "verified" in done.stdout.splitlines()[-1]
    restored = os.path.join(lab_paths["/tmp/restore"], "sshd_config")
    with open(restored) as f:
        assert f.read() == "PermitRootLogin no\n"
    assert os.stat(restored).st_mode & 0o777 == 0o600
    assert differences(site.src + "/home/alice", lab_paths["/restore/alice"]) == []
    [delete] = _commands("Deleting a snapshot", "grabber")
    done = _run(site, [lab_paths.get(w, w) for w in delete])
    assert done.returncode == errors.OK, done.stderr
    assert site.snapshots() == [second]


def test_the_readme_allow_run_command_lets_a_run_through(site: Site) -> None:
    _tree(site)
    site.regrab(policy={"min_interval": "4h"})
    assert site.run().returncode == errors.OK
    assert site.run().returncode == errors.TOO_SOON
    [allow] = _commands("5. Check end to end, then back up (on web1)", "grabber")
    assert allow[0] == "/opt/pullsnap/bin/grabber"
    assert _run(site, allow).returncode == errors.OK
    assert site.run().returncode == errors.OK
