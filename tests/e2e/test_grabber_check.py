"""`grabber check` on the lab's backup host: a good setup passes; each kind
of problem is reported with a fix, and running that fix makes it pass."""

from __future__ import annotations

import json
import os
import shlex
import subprocess

import pytest

from lab import make_user, remove_user
from pullsnap import errors
from tests.e2e.conftest import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e]


def _check(site: Site, config: str | None = None) -> subprocess.CompletedProcess:
    return site.lab.grabber("--config", config or site.grabber_config, "check",
                            "--user", site.lab.grabber_user)  # fmt: skip


def _problems(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stdout.splitlines() if line.startswith("problem:")]


def _fix(line: str) -> str:
    return line.split(" -- fix: ", 1)[1]


def test_a_good_backup_host_passes(site: Site) -> None:
    done = _check(site)
    assert done.returncode == errors.OK, done.stdout
    assert _problems(done) == []
    expected = [
        *("ok: login shell", "ok: Landlock ABI", "ok: rsync 3.", "ok: hardlinks work"),
        *(f"ok: repository {site.repo}", "ok: free space", "ok: authorized: web1"),
    ]
    assert [e for e in expected if e not in done.stdout] == []


def test_problems_come_with_the_command_that_fixes_them(site: Site) -> None:
    os.chmod(site.repo, 0o755)
    user = site.lab.grabber_user
    with open(site.lab.path("home-g", ".ssh", "authorized_keys"), "a") as f:
        f.write(f"{site.lab.login_public_key()}\n")
        f.write("ssh-ed25519 AAAAnot-base64!\n")
    subprocess.run(["usermod", "--password", "!", user], check=True)
    try:
        done = _check(site)
        problems = _problems(done)
        assert done.returncode == errors.FAILED
        [mode] = [p for p in problems if "mode 0755" in p]
        assert _fix(mode) == f"chown {user}:{user} {site.repo} && chmod 0700 {site.repo}"
        [locked] = [p for p in problems if "password is locked" in p]
        assert _fix(locked) == f"usermod --password '*' {user}"
        assert any("line 2: ssh-ed25519 SHA256:" in p and "not bound to a host" in p
                   for p in problems)  # fmt: skip
        assert any("line 3: malformed" in p for p in problems)
        for line in (mode, locked):
            subprocess.run(_fix(line), shell=True, check=True)
        done = _check(site)
        assert not any("mode 0755" in p or "locked" in p for p in _problems(done))
    finally:
        subprocess.run(["usermod", "--password", "*", user], check=True)


def test_super_demanded_without_the_launcher_is_a_problem(site: Site) -> None:
    config = site.regrab(super="super")
    done = _check(site, config)
    [problem] = _problems(done)
    assert 'super = "super" but the login shell is not the launcher: runs are refused' in problem
    assert "grabber install-launcher --user" in problem


def test_launcher_on_a_suid_capable_repository_and_the_mount_that_fixes_it(site: Site) -> None:
    """With the launcher, a repository without nosuid,nodev makes runs refuse
    with the fix `check` names too; that fix command works."""
    site.lab.use_launcher(True)
    mounted = False
    try:
        done = _check(site)
        assert "the capability launcher (rsync --super)" in done.stdout
        assert "ok: launcher holds chown," in done.stdout
        [problem] = _problems(done)
        assert "runs are refused" in problem and "nosuid,nodev" in problem
        os.makedirs(site.src)
        refused = site.run()
        assert refused.returncode == errors.FAILED
        assert f"fix: {_fix(problem)}" in refused.stderr
        command = _fix(problem).split(", and in /etc/fstab")[0]
        assert command == f"mount --bind -o nosuid,nodev {site.repo} {site.repo}"
        subprocess.run(shlex.split(command), check=True)
        mounted = True
        done = _check(site)
        assert done.returncode == errors.OK, done.stdout
        assert "ok: rsync --super: capabilities, confinement and mount options agree" in done.stdout
        assert site.run().returncode == errors.OK
        [name] = site.snapshots()
        with open(os.path.join(site.host_dir(), name + ".json")) as f:
            assert json.load(f)["mode"] == "super"
    finally:
        if mounted:
            subprocess.run(["umount", site.repo], check=False)
        site.lab.use_launcher(False)


def test_authorize_on_a_fresh_account_leaves_keys_sshd_can_read(site: Site) -> None:
    """`grabber authorize` for an account without ~/.ssh makes one the
    account owns (sshd opens authorized_keys as the user), and `grabber
    check` catches a ~/.ssh the user cannot enter."""
    name = f"psn-{site.lab.tag}"
    home = os.path.join(site.root, "home-n")
    os.makedirs(home)
    pw = make_user(name, home, "/bin/sh")
    try:
        os.chown(home, pw.pw_uid, pw.pw_gid)
        done = site.lab.grabber("--config", site.grabber_config, "authorize", "--bind-config",
                                "--user", name, "web9", site.lab.login_public_key())  # fmt: skip
        assert done.returncode == errors.OK, done.stderr
        ssh_dir = os.path.join(home, ".ssh")
        for path, mode in ((ssh_dir, 0o700), (os.path.join(ssh_dir, "authorized_keys"), 0o600)):
            st = os.stat(path)
            assert (st.st_uid, st.st_mode & 0o7777) == (pw.pw_uid, mode), path
        as_user = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]
        readable = subprocess.run([*as_user, "cat", os.path.join(ssh_dir, "authorized_keys")],
                                  capture_output=True, text=True, check=False)  # fmt: skip
        assert f'command="pullsnap-grabber host=web9 config={site.grabber_config}"' in (
            readable.stdout
        )
        check = ["--config", site.grabber_config, "check", "--user", name]
        assert "ok: authorized: web9" in site.lab.grabber(*check).stdout
        os.chown(ssh_dir, 0, 0)
        [problem] = [p for p in _problems(site.lab.grabber(*check)) if ssh_dir in p]
        assert f"sshd reads the keys as {name}, who cannot enter it" in problem
        subprocess.run(_fix(problem), shell=True, check=True)
        assert not [p for p in _problems(site.lab.grabber(*check)) if ssh_dir in p]
    finally:
        remove_user(name)


def test_check_says_which_store_and_why(btrfs_site: Site) -> None:
    site = btrfs_site
    done = _check(site)
    assert done.returncode == errors.OK, done.stdout
    assert 'ok: store for a new host: btrfs (store = "auto": the repository is on btrfs' \
        in done.stdout, done.stdout  # fmt: skip
    # The lab's own repository is not on btrfs.
    plain = site.lab.write_grabber_config(name=os.path.join(site.root, "plain.toml"))
    done = _check(site, plain)
    assert 'ok: store for a new host: hardlink (store = "auto": the repository is not on btrfs)' \
        in done.stdout, done.stdout  # fmt: skip
    # Asked for where it cannot work: a problem, and how to fix it.
    done = _check(site, site.lab.write_grabber_config(name=plain, store="btrfs"))
    assert done.returncode == errors.FAILED
    [problem] = [p for p in _problems(done) if "store for a new host" in p]
    assert "the repository is not on btrfs" in problem
    assert _fix(problem).startswith("put the repository on a btrfs filesystem")
