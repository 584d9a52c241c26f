"""Problems `grabber check` finds show where operators look: a partial run
names what it could not read in its verdict line and record, `status`
warns while the newest good snapshot is partial, and a repository `check`
rejects stops runs with the fix."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from lab import write
from pullsnap import errors
from tests.e2e.conftest import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e]


def _without_capability(site: Site) -> subprocess.CompletedProcess:
    """The initiator as its user without CAP_DAC_READ_SEARCH: root's 0600
    files cannot be read."""
    pw = site.lab.initiator_pw()
    setpriv = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]
    env = {"PATH": "/usr/bin:/bin", "HOME": site.lab.path("home-i")}
    return site.lab.initiator("-c", site.initiator_config, "--now", "--format", "text",
                              prefix=setpriv, env=env)  # fmt: skip


def test_a_partial_run_names_its_unreadable_and_missing_paths_and_status_warns(
    site: Site,
) -> None:
    os.makedirs(os.path.join(site.src, "etc"))
    for name in ("shadow", "gshadow", "sudoers", "key"):
        write(os.path.join(site.src, "etc", name), "secret\n", 0o600)
    write(os.path.join(site.src, "etc", "hosts"), "127.0.0.1 localhost\n")
    gone = os.path.join(site.root, "data")  # a source path that is not there
    site.configure(sources=[site.src, gone])
    done = _without_capability(site)
    assert done.returncode == errors.PARTIAL, done.stderr
    said = (done.stdout + done.stderr).splitlines()
    [verdict] = [line for line in said if line.startswith("lab: partial")]
    etc = site.src + "/etc"
    named = (f"(4 unreadable: {etc}/gshadow, {etc}/key, {etc}/shadow and 1 more; "
             f"1 missing: {gone} (rsync exit 23))")  # fmt: skip
    assert verdict.endswith(named), verdict
    [name] = site.snapshots()
    with open(os.path.join(site.host_dir(), name + ".json")) as f:
        record = json.load(f)
    assert record["message"] == named[1:-1] and record["failed_paths_total"] == 5
    status = site.lab.grabber("status", "--config", site.grabber_config)
    assert status.returncode == errors.OK
    assert status.stdout.startswith("web1  WARN   last good")
    assert f"WARN      last good snapshot {name} is partial: 4 unreadable" in status.stdout
    nagios = site.lab.grabber("status", "--nagios", "--config", site.grabber_config)
    assert nagios.returncode == 1 and nagios.stdout.startswith("PULLSNAP WARNING - web1 (")
    site.regrab(policy={"warn_partial": False})
    nagios = site.lab.grabber("status", "--nagios", "--config", site.grabber_config)
    assert nagios.returncode == 0, nagios.stdout


def test_a_repository_open_to_other_users_refuses_runs_with_the_fix(site: Site) -> None:
    os.makedirs(os.path.join(site.src, "etc"))
    write(os.path.join(site.src, "etc", "hosts"), "127.0.0.1 localhost\n")
    os.chmod(site.repo, 0o755)
    refused = site.run()
    assert refused.returncode == errors.REFUSED
    assert site.snapshots() == []
    fix = refused.stderr.split(" -- fix: ", 1)[1].split("\n", 1)[0].strip()
    assert fix == f"chmod 0700 {site.repo}"
    subprocess.run(fix, shell=True, check=True)
    assert site.run().returncode == errors.OK


def test_a_missing_repository_refuses_runs_with_the_command_that_makes_it(site: Site) -> None:
    os.makedirs(os.path.join(site.src, "etc"))
    write(os.path.join(site.src, "etc", "hosts"), "127.0.0.1 localhost\n")
    os.rmdir(site.repo)
    refused = site.run()
    assert refused.returncode == errors.FAILED
    fix = refused.stderr.split(" -- fix: ", 1)[1].split("\n", 1)[0].strip()
    user = site.lab.grabber_user
    assert fix == f"install -d -o {user} -g {user} -m 0700 {site.repo}"
    subprocess.run(fix, shell=True, check=True)
    assert site.run().returncode == errors.OK
