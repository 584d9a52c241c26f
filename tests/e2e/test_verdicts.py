"""What `initiator --now` prints: on a terminal, live progress then a human
verdict line; anywhere else, no progress and key=value lines."""

from __future__ import annotations

import os
import pty
import re
import subprocess

import pytest

from pullsnap import errors, logfmt
from pullsnap.grabber.store.repository import HostRepo
from tests.e2e.conftest import Site
from tests.labfixtures import read_terminal

pytestmark = [pytest.mark.root, pytest.mark.e2e]


def _tree(site: Site, big_mib: int = 0) -> None:
    os.makedirs(os.path.join(site.src, "etc"))
    for i in range(20):
        with open(os.path.join(site.src, "etc", f"f{i}"), "w") as f:
            f.write("x" * (100 * i))
    if big_mib:
        with open(os.path.join(site.src, "big"), "wb") as f:
            f.write(os.urandom(big_mib * 1024 * 1024))


def test_not_on_a_terminal_one_key_value_line_per_destination(site: Site) -> None:
    _tree(site)
    site.configure()
    done = site.lab.initiator("-c", site.initiator_config, "--now")
    assert done.returncode == errors.OK, done.stderr
    assert done.stderr == "", "no progress noise"
    [line] = done.stdout.splitlines()
    verdict = logfmt.parse(line)
    [name] = site.snapshots()
    assert verdict["dest"] == "lab" and verdict["result"] == "ok" and verdict["exit"] == "0"
    assert verdict["snapshot"] == f"web1/{name}"
    # "added" is what the snapshot took on disk, as its record says: the
    # files' blocks and its directories', more than the files' bytes here.
    data = sum(100 * i for i in range(20))
    record = HostRepo(site.repo, "web1").read_record(name)
    assert record is not None and int(verdict["added"]) == record["added"]["bytes"] > data
    assert int(verdict["files"]) >= 21 and int(verdict["transferred"]) >= data
    assert float(verdict["seconds"]) > 0


def test_verbose_log_lines_are_key_value_too(site: Site) -> None:
    _tree(site)
    site.configure()
    done = site.lab.initiator("-c", site.initiator_config, "--now", "-v")
    assert done.returncode == errors.OK, done.stderr
    logged = [logfmt.parse(line) for line in done.stderr.splitlines()]
    assert logged and all(set(pairs) == {"dest", "log"} for pairs in logged)
    assert any(pairs["log"].startswith("connect-back from 127.0.0.1") for pairs in logged)


def test_on_a_terminal_progress_then_a_human_verdict(site: Site) -> None:
    """Both streams on a terminal, as an operator runs it: rsync's progress
    (files, bytes, rate, ETA) is redrawn in place, then the verdict."""
    _tree(site, big_mib=200)
    site.configure()
    primary, secondary = pty.openpty()
    argv = [os.path.join(site.lab.venv_bin, "initiator"), "-c", site.initiator_config, "--now"]
    proc = subprocess.Popen(argv, stdout=secondary, stderr=secondary)
    os.close(secondary)
    seen = read_terminal(primary)
    assert proc.wait(timeout=120) == errors.OK
    os.close(primary)
    text = seen.decode("utf-8", "replace")
    progress = re.findall(r"\rlab: +\d+%  [\d,]+ files  [\d.]+ \w+  \S+/s  eta [\d:]+", text)
    assert progress, text[-500:]
    [name] = site.snapshots()
    verdict = re.search(
        rf"lab: ok, snapshot web1/{name}, [\d,]+ files, ([\d.]+ \w+) transferred, ([\d.]+ \w+) "
        r"added, [\d.]+ s",
        text,
    )
    assert verdict, text[-500:]
    assert "dest=" not in text
