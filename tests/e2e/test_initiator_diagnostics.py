"""The initiator's diagnostics point to the right fix, and the fix runs as
printed: the backup host's key (real ssh against the lab's sshd), what
`check` and the login make of known_hosts lines, the account `check` judges
keys for, and commands that name the configuration file in use."""

from __future__ import annotations

import os
import re
import shlex
import subprocess

import pytest

from lab import write
from pullsnap import errors
from tests.e2e.conftest import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e]


def _keygen(directory: str, name: str, kind: str = "ed25519") -> str:
    """A public key line ("ssh-ed25519 AAAA") that is not the backup host's."""
    path = os.path.join(directory, name)
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", path], check=True)
    with open(path + ".pub") as f:
        return " ".join(f.read().split()[:2])


def _fingerprint(public_file: str) -> str:
    done = subprocess.run(["ssh-keygen", "-lf", public_file], capture_output=True, text=True,
                          check=True)  # fmt: skip
    return done.stdout.split()[1]


def _sh(line: str, site: Site) -> subprocess.CompletedProcess:
    """A printed command, run by a shell as an operator would paste it."""
    env = {"PATH": f"{site.lab.venv_bin}:/usr/sbin:/usr/bin:/sbin:/bin"}
    return subprocess.run(["/bin/sh", "-c", line], capture_output=True, text=True, env=env,
                          timeout=120, check=False)  # fmt: skip


def _known_hosts(site: Site, text: str) -> str:
    path = write(os.path.join(site.root, "known_hosts"), text)
    site.configure(destination={"known_hosts": path})
    return path


def _check(site: Site, *args: str) -> subprocess.CompletedProcess:
    return site.lab.initiator("-c", site.initiator_config, "check", *args)


def test_a_changed_backup_host_key_is_named_with_its_fingerprint_and_the_fix(site: Site) -> None:
    os.makedirs(site.src)
    assert site.lab.sshd is not None
    port = site.lab.sshd.port
    real = _fingerprint(site.lab.path("sshd", "host_key.pub"))
    known_hosts = _known_hosts(site, f"[127.0.0.1]:{port} {_keygen(site.root, 'other')}\n")
    keyscan = f"ssh-keyscan -p {port} -t ed25519 127.0.0.1 >> {known_hosts}"
    forget = f"ssh-keygen -R '[127.0.0.1]:{port}' -f {known_hosts}"

    # The failure itself says which key came, how to fetch it, and to compare first.
    done = site.run()
    assert done.returncode == errors.REFUSED, done.stderr
    [verdict] = [line for line in done.stderr.splitlines() if line.startswith("lab: refused: ")]
    assert f"offered ED25519 key {real}, not the one {known_hosts} pins" in verdict
    assert f"first compare {real} with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`" in (
        verdict
    )
    assert verdict.endswith(f"if they match: {forget} && {keyscan})"), verdict
    assert "`initiator" not in verdict

    # check --probe sees the mismatch in its own findings, not an ok.
    probe = _check(site, "--probe")
    assert probe.returncode != errors.OK
    assert f"ok: destination lab: known_hosts {known_hosts}" not in probe.stdout
    [problem] = [line for line in probe.stdout.splitlines() if "does not pin" in line]
    assert problem.startswith(
        f"problem: destination lab: the backup host offers ED25519 key {real}"
    )

    # The printed fix, run as printed, is the fix.
    fix = problem.split("if they match: ", 1)[1]
    assert fix == f"{forget} && {keyscan}"
    assert _sh(fix, site).returncode == 0
    again = _check(site, "--probe")
    assert again.returncode == errors.OK, again.stdout + again.stderr
    assert f"ok: destination lab: the backup host's ED25519 key {real} is the one" in again.stdout
    assert "lab: ok: handshake and gate check passed" in again.stdout


KNOWN_HOSTS_CASES = {
    # name: (lines, with {port}, {real}, {other}, {ecdsa}; does ssh accept?)
    "port-line": ("[127.0.0.1]:{port} {real}\n", True),
    "bare-line": ("127.0.0.1 {real}\n", True),
    "bare-pattern": ("127.0.0.* {real}\n", True),
    "port-line-other-type-over-a-bare-line": ("[127.0.0.1]:{port} {ecdsa}\n127.0.0.1 {real}\n",
                                              False),
    "port-line-over-a-bare-line": ("[127.0.0.1]:{port} {other}\n127.0.0.1 {real}\n", False),
    "bare-line-other-key": ("127.0.0.1 {other}\n", False),
    "another-port": ("[127.0.0.1]:1 {real}\n", False),
}  # fmt: skip
HASHED_TOO = {"bare-line", "port-line-over-a-bare-line"}  # also with HashKnownHosts names


@pytest.mark.parametrize("case", sorted(KNOWN_HOSTS_CASES))
def test_check_and_the_login_agree_on_known_hosts_lines(site: Site, case: str) -> None:
    """A line without the port counts for any port when that port has no
    line at all (OpenSSH check_host_key); `check` and `check --probe` say
    what the real login does, hashed or not."""
    os.makedirs(site.src)
    assert site.lab.sshd is not None
    template, accepted = KNOWN_HOSTS_CASES[case]
    with open(site.lab.path("sshd", "host_key.pub")) as f:
        real = " ".join(f.read().split()[:2])
    text = template.format(port=site.lab.sshd.port, real=real, other=_keygen(site.root, "o"),
                           ecdsa=_keygen(site.root, "e", "ecdsa"))  # fmt: skip
    for hashed in (False, True) if case in HASHED_TOO else (False,):
        known_hosts = _known_hosts(site, text)
        if hashed:
            subprocess.run(["ssh-keygen", "-H", "-f", known_hosts], capture_output=True, check=True)
            os.chmod(known_hosts, 0o644)
        login = site.run("--dry-run")
        assert (login.returncode == errors.OK) is accepted, login.stderr
        plain = _check(site)
        says_none = "has no key for" in plain.stdout
        assert not (accepted and says_none), plain.stdout
        if says_none:
            # Its fix shows the backup host's fingerprint, as printed, before pinning it.
            show = re.search(r"see its fingerprint: (.*?); compare it with", plain.stdout)
            assert show is not None, plain.stdout
            shown = _sh(show.group(1), site)
            assert _fingerprint(site.lab.path("sshd", "host_key.pub")) in shown.stdout
        probe = _check(site, "--probe")
        finding = [x for x in probe.stdout.splitlines() if x.startswith(("ok: destination lab: "
                   "the backup host", "problem: destination lab: the backup host",
                   "problem: destination lab: " + known_hosts))]  # fmt: skip
        assert len(finding) == 1, probe.stdout
        assert finding[0].startswith("ok:") is accepted, finding
        assert (probe.returncode == errors.OK) is accepted, probe.stdout + probe.stderr


def test_check_as_another_user_names_the_user_backups_run_as(site: Site) -> None:
    """Run by an account that is not the configured one, `check` judges the
    login key for the configured user and says to run it as root or as that
    user, never to hand the key to the account that ran it."""
    os.makedirs(site.src)
    lab = site.lab
    key = os.path.join(site.root, "id_ed25519")
    with open(lab.path("initiator", "id_ed25519"), "rb") as f:
        private = f.read()
    ini = lab.initiator_pw()
    with open(key, "wb") as f:
        f.write(private)
    os.chown(key, ini.pw_uid, ini.pw_gid)
    os.chmod(key, 0o600)
    site.configure(destination={"identity_file": key})
    stranger = ["runuser", "-u", lab.plain_user, "--"]
    done = lab.initiator("-c", site.initiator_config, "check", prefix=stranger)
    assert done.returncode == errors.FAILED, done.stdout + done.stderr
    assert f"chown {lab.plain_user}" not in done.stdout
    assert f"ok: destination lab: login key {key}" in done.stdout  # right for the configured user
    command = f"initiator -c {site.initiator_config} check"
    assert (
        f"problem: this check runs as {lab.plain_user}, but backups run as "
        f"{lab.initiator_user} (`user` in {site.initiator_config}"
    ) in done.stdout
    assert f"fix: run `{command}` as root or as {lab.initiator_user}" in done.stdout
    # A key it may not even look at: the same advice, not "missing".
    hidden = lab.path("initiator", "id_ed25519")
    site.configure(destination={"identity_file": hidden})
    done = lab.initiator("-c", site.initiator_config, "check", prefix=stranger)
    assert f"{hidden} is missing" not in done.stdout
    assert (
        f"problem: destination lab: login key {hidden}: {lab.plain_user} may not look at it "
        f"-- fix: run `{command}` as root or as {lab.initiator_user}"
    ) in done.stdout
    # The printed command, as root, judges for the configured user and finds nothing wrong.
    assert _sh(command, site).returncode == errors.OK


def _backticked_initiator(text: str) -> list[str]:
    return re.findall(r"`(initiator [^`]*)`", text)


def test_every_printed_initiator_command_names_the_config_and_runs(site: Site) -> None:
    os.makedirs(site.src)
    config = site.configure(sources=[site.src, os.path.join(site.root, "absent")],
                            runtime_dir=os.path.join(site.root, "no-run-dir"))  # fmt: skip
    quoted = shlex.quote(config)
    check = _check(site)
    assert f"fix `sources` in {config}" in check.stdout
    assert f"(or: initiator -c {quoted} setup)" in check.stdout
    run = site.run()
    assert f"`initiator -c {quoted} setup` makes it, `initiator -c {quoted} check`" in run.stderr
    site.configure(destination={"identity_file": os.path.join(site.root, "no-key")})
    assert f"(`initiator -c {quoted} check` says how to fix it)" in site.run().stderr
    site.configure()
    site.lab.write_raw_authorized_keys("")
    refused = site.run()
    assert f"the `grabber authorize` line `initiator -c {quoted} setup` prints" in refused.stderr
    printed = _backticked_initiator(check.stdout + run.stderr + refused.stderr)
    assert len(printed) >= 3
    for command in set(printed):
        assert command.startswith(f"initiator -c {quoted} "), command
        done = _sh(command, site)
        assert done.returncode != errors.USAGE, (command, done.stderr)
        assert "no such file" not in done.stderr
