"""What an operator touches: live progress, the probe, `check`, `gate --dry-run`."""

from __future__ import annotations

import json
import os
import pty
import subprocess

import pytest

from pullsnap import errors
from tests.e2e.conftest import Site
from tests.labfixtures import read_terminal

pytestmark = [pytest.mark.root, pytest.mark.e2e]


def _small_tree(site: Site, big_mib: int = 0) -> None:
    os.makedirs(os.path.join(site.src, "etc"))
    with open(os.path.join(site.src, "etc", "hosts"), "w") as f:
        f.write("127.0.0.1 localhost\n")
    if big_mib:
        with open(os.path.join(site.src, "big"), "wb") as f:
            f.write(os.urandom(big_mib * 1024 * 1024))


def test_progress_is_shown_on_a_terminal(site: Site) -> None:
    """rsync's progress travels grabber -> ssh -> initiator and is drawn on
    a terminal; the verdict line follows."""
    _small_tree(site, big_mib=300)
    site.configure()
    primary, secondary = pty.openpty()
    argv = [os.path.join(site.lab.venv_bin, "initiator"), "-c", site.initiator_config, "--now"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=secondary, text=True)
    os.close(secondary)
    seen = read_terminal(primary)
    out, _ = proc.communicate(timeout=120)
    os.close(primary)
    assert proc.returncode == errors.OK
    assert b"lab: " in seen and b"100%" in seen, seen[-500:]
    assert "lab: ok, snapshot web1/" in out


def test_dry_run_probe_makes_no_snapshot(site: Site) -> None:
    _small_tree(site)
    site.configure()
    before = site.repo_state()
    done = site.run("--dry-run")
    assert done.returncode == errors.OK, done.stderr
    assert "handshake and gate check passed" in done.stdout
    # It took the host's lock (so made the host's directory) and a pull slot
    # like a run, nothing else.
    assert [p for p in site.repo_state() if p[0] != site.host_dir()] == before
    assert os.listdir(site.host_dir()) == [".lock"]


def test_check_reports_ok_and_problems(site: Site) -> None:
    _small_tree(site)
    site.configure()
    done = site.lab.initiator("-c", site.initiator_config, "check")
    assert done.returncode == errors.OK, done.stdout
    assert "problem:" not in done.stdout
    assert "ok: rsync 3." in done.stdout and "ok: runs as psi-" in done.stdout
    site.configure(destination={"identity_file": "/nonexistent/id_ed25519"})
    done = site.lab.initiator("-c", site.initiator_config, "check")
    assert done.returncode == errors.FAILED
    assert "problem: destination lab: login key /nonexistent/id_ed25519 is missing" in done.stdout
    assert "fix: ssh-keygen -t ed25519" in done.stdout


def test_gate_dry_run_takes_roots_from_the_config(site: Site) -> None:
    _small_tree(site)
    site.configure()
    command = f"rsync --server --sender -lre.iLsfxCIvu . {site.src}/etc"
    env = {"PATH": "/usr/bin:/bin", "SSH_ORIGINAL_COMMAND": command}
    done = site.lab.initiator("gate", "--dry-run", "-c", site.initiator_config, env=env)
    assert done.returncode == 0, done.stderr
    argv = json.loads(done.stdout.strip().splitlines()[-1])
    assert argv[:3] == ["/usr/bin/rsync", "--server", "--sender"] and argv[-1] == f"{site.src}/etc"
    env["SSH_ORIGINAL_COMMAND"] = "rsync --server --sender -lre.iLsfxCIvu . /etc/shadow"
    done = site.lab.initiator("gate", "--dry-run", "-c", site.initiator_config, env=env)
    assert done.returncode == 1
    assert done.stderr.strip() == "gate error: path /etc/shadow is outside the source roots"


def test_grabber_refuses_an_interactive_login(site: Site) -> None:
    done = subprocess.run(
        ["setpriv", f"--reuid={site.lab.grabber_pw().pw_uid}", "--init-groups",
         f"--regid={site.lab.grabber_pw().pw_gid}", site.lab.grabber_shell, "-c", "sh"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == errors.REFUSED
    assert "not started by sshd" in done.stderr and "only serves backups" in done.stderr
