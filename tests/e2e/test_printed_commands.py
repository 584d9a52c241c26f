"""Every grabber command pullsnap prints runs as printed, with a grabber
configuration that is not the default (the lab's never is): the line it
names is run through a shell, exactly as printed, and does what it says."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from pullsnap import errors
from tests.e2e.conftest import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e]


def _as_printed(site: Site, line: str) -> subprocess.CompletedProcess:
    """`line` through sh, with the installed `grabber` first on PATH."""
    env = {"PATH": f"{site.lab.venv_bin}:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run(["sh", "-c", line], capture_output=True, text=True, env=env,
                          check=False, timeout=120)  # fmt: skip


def _tree(site: Site) -> None:
    os.makedirs(os.path.join(site.src, "etc"))
    with open(os.path.join(site.src, "etc", "hosts"), "w") as f:
        f.write("127.0.0.1 localhost\n")


def _fix(done: subprocess.CompletedProcess, words: str) -> str:
    [problem] = [line for line in done.stdout.splitlines()
                 if line.startswith("problem:") and words in line]  # fmt: skip
    return problem.split(" -- fix: ", 1)[1]


def test_a_key_bound_without_the_config_in_use_is_flagged_and_the_fix_runs(site: Site) -> None:
    """What `grabber authorize` without --bind-config writes sends web1's
    logins to the default file: `check` (its --config after the command)
    says so, and its fix, run as printed, makes the backup work."""
    _tree(site)
    site.lab.authorize([("web1", None)])  # type: ignore[list-item]
    user = site.lab.grabber_user
    check = ["check", "--config", site.grabber_config, "--user", user]
    done = site.lab.grabber(*check)
    assert done.returncode == errors.FAILED, done.stdout
    fix = _fix(done, "web1 is bound to config the default /etc/pullsnap/grabber.toml")
    assert fix.startswith(f"grabber --config {site.grabber_config} authorize --bind-config ")
    assert site.run().returncode != errors.OK  # its login reads a file that is not there
    command = fix.removesuffix(" rewrites it")
    assert _as_printed(site, command).returncode == errors.OK
    done = site.lab.grabber(*check)
    assert done.returncode == errors.OK, done.stdout
    assert "ok: authorized: web1" in done.stdout and f"config {site.grabber_config}" in done.stdout
    ran = site.run()
    assert ran.returncode == errors.OK, ran.stderr
    status = site.lab.grabber("status", "--config", site.grabber_config, "web1")
    assert status.returncode == errors.OK, status.stderr
    assert status.stdout.startswith("web1  ok")


def test_the_first_run_and_the_too_soon_refusal_name_the_command_that_lifts_it(
    site: Site,
) -> None:
    """With the default min_interval (4h) a test run right after the first
    is refused: the first verdict line says so and names `allow-run`."""
    _tree(site)
    site.regrab(policy={"min_interval": "4h"})
    first = site.run()
    assert first.returncode == errors.OK, first.stderr
    [verdict] = [line for line in first.stdout.splitlines() if line.startswith("lab: ok")]
    assert "(first snapshot of web1; runs are at least min_interval 4h00m apart" in verdict
    told = verdict.split("to run again sooner, on the backup host: ", 1)[1].rstrip(")")
    assert told == f"grabber --config {site.grabber_config} allow-run web1"
    again = site.run()
    assert again.returncode == errors.TOO_SOON
    [printed] = re.findall(r"\(on the backup host: (grabber [^)]*)\)", again.stderr)
    assert printed == f"grabber --config {site.grabber_config} allow-run web1"
    assert _as_printed(site, printed).returncode == errors.OK
    second = site.run()
    assert second.returncode == errors.OK and "first snapshot" not in second.stdout
    assert site.run().returncode == errors.TOO_SOON
    assert _as_printed(site, told).returncode == errors.OK
    assert site.run().returncode == errors.OK


def test_the_login_shell_typed_by_hand_names_the_command_meant(site: Site) -> None:
    """`grabber -c FILE status` from a shell (not sshd) runs no backup: it
    says what it is and what to type, and that runs."""
    _tree(site)
    assert site.run().returncode == errors.OK
    typed = _as_printed(site, f"grabber -c {site.grabber_config} status")
    assert typed.returncode == errors.REFUSED and typed.stdout == ""
    assert "is the login shell sshd starts for a backup" in typed.stderr
    printed = typed.stderr.strip().split("type: ", 1)[1]
    assert printed == f"grabber --config {site.grabber_config} status"
    done = _as_printed(site, printed)
    assert done.returncode == errors.OK and done.stdout.startswith("web1  ok"), done.stderr
    typed = _as_printed(site, "grabber -c list")
    assert typed.stderr.strip().endswith("type: grabber list")


def test_a_missing_snapshot_names_the_list_command_with_the_config(site: Site) -> None:
    _tree(site)
    assert site.run().returncode == errors.OK
    done = site.lab.grabber("diff", "web1", "2020-01-01T000000Z", "--config", site.grabber_config)
    assert done.returncode == errors.USAGE
    printed = done.stderr.strip().split("(see: ", 1)[1].rstrip(")")
    assert printed == f"grabber --config {site.grabber_config} list web1"
    listed = _as_printed(site, printed)
    assert listed.returncode == errors.OK and site.snapshots()[0] in listed.stdout
