"""`initiator check` (initiator/check.py): each check's findings, with the
fix every problem names, on files and stand-in programs made here."""

from __future__ import annotations

import dataclasses
import os
import pwd
import subprocess
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.config import Destination, InitiatorConfig
from pullsnap.initiator import check

ME = pwd.getpwuid(os.getuid())


def _program(tmp_path: Path, name: str, banner: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\necho '{banner}'\n")
    path.chmod(0o755)
    return str(path)


def _texts(found) -> list[tuple[bool, str, str]]:
    return [(f.ok, f.text, f.fix) for f in found]


def test_missing_tools_name_their_package(tmp_path: Path) -> None:
    cfg = InitiatorConfig(sshd=str(tmp_path / "sshd"), ssh=str(tmp_path / "ssh"),
                          rsync=str(tmp_path / "rsync"))  # fmt: skip
    found = _texts(check.check_tools(cfg))
    assert (False, f"sshd not found at {tmp_path}/sshd", "apt install openssh-server") in found
    assert (False, f"ssh not found at {tmp_path}/ssh", "apt install openssh-client") in found
    assert (False, "cannot tell the rsync version", f"check {tmp_path}/rsync --version") in found


@pytest.mark.parametrize(
    "banner, ok, text",
    [("rsync  version 3.4.1  protocol version 32", True, "rsync 3.4.1"),
     ("rsync  version 3.2.7  protocol version 31", False, "rsync 3.2.7 "),
     ("rsync  version 2.6.9  protocol version 29", False, "rsync 2.6.9 is too old")],
)  # fmt: skip
def test_the_rsync_version_is_judged(tmp_path: Path, banner: str, ok: bool, text: str) -> None:
    cfg = InitiatorConfig(rsync=_program(tmp_path, "rsync", banner))
    [rsync] = [f for f in check.check_tools(cfg) if f.text.startswith(("rsync ", "cannot"))]
    assert rsync.ok is ok and rsync.text.startswith(text)
    if not ok:
        assert rsync.fix.startswith("install rsync >= 3.4")


@pytest.mark.parametrize(
    "mode, uid_matches, problem",
    [(0o600, True, None), (0o400, True, None), (0o640, True, "mode 0640, not 0600"),
     (0o600, False, "not owned by the run's user"),
     (0o644, False, "not owned by the run's user, mode 0644, not 0600")],
)  # fmt: skip
def test_key_file_problem(mode: int, uid_matches: bool, problem) -> None:
    st = os.stat_result((0o100000 | mode, 0, 0, 1, 1000, 1000, 0, 0, 0, 0))
    assert check.key_file_problem(st, 1000 if uid_matches else 1001) == problem


def test_an_unknown_user_and_a_user_without_a_shell(monkeypatch) -> None:
    cfg = InitiatorConfig(user="nosuchuser")
    [found] = check.check_user(cfg)
    assert not found.ok and "useradd --system" in found.fix and found.fix.endswith("nosuchuser")
    nologin = pwd.struct_passwd(("backup", "x", 34, 34, "", "/var/backups", "/usr/sbin/nologin"))
    monkeypatch.setattr(check.pwd, "getpwnam", lambda name: nologin)
    shell = next(iter(check.check_user(InitiatorConfig(user="backup"))))
    assert not shell.ok and shell.fix == "usermod --shell /bin/sh backup"


def test_the_runtime_directory(tmp_path: Path) -> None:
    [default] = check.check_runtime(InitiatorConfig())
    assert default.ok and "$RUNTIME_DIRECTORY" in default.text
    missing = InitiatorConfig(runtime_dir=str(tmp_path / "run"), user=ME.pw_name)
    [found] = check.check_runtime(missing)
    assert not found.ok and found.fix.startswith(f"install -d -o {ME.pw_name} -m 0700 ")
    (tmp_path / "run").mkdir(mode=0o755)
    [found] = check.check_runtime(missing)
    assert not found.ok and found.fix == (
        f"chown {ME.pw_name} {tmp_path}/run && chmod 0700 {tmp_path}/run"
    )
    (tmp_path / "run").chmod(0o700)
    assert [f.ok for f in check.check_runtime(missing)] == [True]
    nobody = dataclasses.replace(missing, user="nosuchuser")
    [found] = check.check_runtime(nobody)
    assert not found.ok and "'nosuchuser' does not exist" in found.text


def _destination(tmp_path: Path, **changes) -> Destination:
    fields = {"name": "vault", "host": "vault.example", "sources": (str(tmp_path),),
              "identity_file": str(tmp_path / "id_ed25519"),
              "known_hosts": str(tmp_path / "known_hosts")}  # fmt: skip
    return Destination(**{**fields, **changes})


def _config(dest: Destination) -> InitiatorConfig:
    return InitiatorConfig(user=ME.pw_name, destinations=(dest,), path="/etc/i.toml")


def test_a_destination_without_key_and_known_hosts(tmp_path: Path) -> None:
    dest = _destination(tmp_path, sources=(str(tmp_path / "nope"),))
    found = _texts(check.check_destinations(_config(dest)))
    key, hosts, source = found
    assert not key[0] and key[1] == f"destination vault: login key {dest.identity_file} is missing"
    assert key[2].startswith(f"ssh-keygen -t ed25519 -N '' -f {dest.identity_file}")
    assert "-c /etc/i.toml setup" in key[2]
    assert not hosts[0] and hosts[1].endswith(f"{dest.known_hosts} is missing")
    assert source == (False, f"destination vault: source {tmp_path}/nope does not exist",
                      "fix `sources` in /etc/i.toml")  # fmt: skip


def test_a_pinned_host_key_and_a_loose_login_key(tmp_path: Path) -> None:
    dest = _destination(tmp_path)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "host")],
                   check=True)  # fmt: skip
    host_key = (tmp_path / "host.pub").read_text().split()[:2]
    Path(dest.known_hosts).write_text(f"vault.example {' '.join(host_key)}\n")
    Path(dest.identity_file).write_text("not really a key\n")
    os.chmod(dest.identity_file, 0o644)
    key, pinned = check.check_destinations(_config(dest))
    assert not key.ok and key.text.endswith("mode 0644, not 0600")
    assert key.fix == f"chown {ME.pw_name} {dest.identity_file} && chmod 0600 {dest.identity_file}"
    assert pinned.ok and pinned.text.startswith(
        f"destination vault: known_hosts {dest.known_hosts} pins vault.example: ED25519 SHA256:"
    )


def test_known_hosts_without_this_host(tmp_path: Path) -> None:
    dest = _destination(tmp_path, port=2222)
    Path(dest.known_hosts).write_text("")
    found = list(check.check_host_key(_config(dest), dest, "destination vault", probe=False))
    [f] = found
    assert not f.ok and f.text.endswith(
        "has no key for [vault.example]:2222 (nor, without the port, for vault.example)"
    )
    assert "ssh-keyscan -p 2222" in f.fix


def test_hooks_must_be_programs(tmp_path: Path) -> None:
    cfg = _config(_destination(tmp_path))
    [bad] = check._check_hook(cfg, "destination vault: before hook", ("no-such-program",), 60)
    assert not bad.ok and bad.fix == "fix `before`/`after` in /etc/i.toml"
    [shell] = check._check_hook(cfg, "x", ("/bin/sh", "-c", "pg_dump db > /x"), 90)
    assert shell.ok and shell.text == "x: pg_dump db > /x (timeout 90 s)"
    [found] = check._check_hook(cfg, "x", ("true", "a"), 1.5)
    assert found.ok and found.text == "x: true a (timeout 1.5 s)"


def test_run_prints_every_line_and_fails_on_a_problem(tmp_path: Path, capsys) -> None:
    cfg = dataclasses.replace(_config(_destination(tmp_path)), sshd=str(tmp_path / "sshd"))
    assert check.run(cfg) == errors.FAILED
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "config: /etc/i.toml: ok (1 destination(s))"
    assert all(line.split(":")[0] in ("ok", "note", "problem") for line in out[1:])
    assert f"problem: sshd not found at {tmp_path}/sshd -- fix: apt install openssh-server" in out
