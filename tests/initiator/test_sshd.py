"""The one-shot sshd's configuration, checked by the real sshd.

DESIGN "Security properties" 2: public key only, one session, and no pty,
forwarding, agent, X11 or user rc, closed in sshd_config and again with
`restrict` on the authorized_keys line.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pullsnap.initiator import sshd
from pullsnap.initiator.sshd import DoorConfig, GateCommand

# DESIGN.md security properties: `./test.sh -m security` runs these.
pytestmark = pytest.mark.security

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
PUBLIC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE5vdEFSZWFsS2V5QnV0V2VsbEZvcm1lZEVub3VnaA"

ODD_ROOTS = (
    "/srv/plain",
    "/srv/with space",
    "/srv/o'brien",
    '/srv/say "hi"',
    "/srv/$HOME`id`;x&&y|z",
    "/srv/back\\slash",
    "/srv/*?[glob]",
    "/srv/-dash",
    "/srv/tab\there",
)


def gate(*roots: str, confine_root: bool = True) -> GateCommand:
    return GateCommand(
        python="/usr/bin/python3",
        roots=roots or ("/etc", "/home"),
        rsync="/usr/bin/rsync",
        nice=10,
        ionice="best-effort:7",
        log="/run/pullsnap-x/gate.log",
        confine_root=confine_root,
    )


@pytest.fixture
def door(tmp_path: Path) -> DoorConfig:
    key = tmp_path / "host_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
        check=True,
        capture_output=True,
    )
    (tmp_path / "authorized_keys").write_text("")
    return DoorConfig(
        user="backup",
        host_key=str(key),
        authorized_keys=str(tmp_path / "authorized_keys"),
        gate=gate(*ODD_ROOTS),
    )


def sshd_effective(tmp_path: Path, door: DoorConfig, flag: str) -> subprocess.CompletedProcess:
    path = tmp_path / "sshd_config"
    path.write_text(sshd.sshd_config(door))
    return subprocess.run(
        [SSHD, flag, "-f", str(path)], capture_output=True, text=True, env=ENV, timeout=30
    )


def test_real_sshd_accepts_the_config(tmp_path: Path, door: DoorConfig) -> None:
    done = sshd_effective(tmp_path, door, "-t")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""


def test_real_sshd_rejects_a_broken_config(tmp_path: Path, door: DoorConfig) -> None:
    # The check above would prove nothing if `sshd -t` accepted anything.
    path = tmp_path / "broken"
    path.write_text(sshd.sshd_config(door) + "NoSuchOption yes\n")
    done = subprocess.run([SSHD, "-t", "-f", str(path)], capture_output=True, env=ENV)
    assert done.returncode != 0


def test_effective_settings_are_restrictive(tmp_path: Path, door: DoorConfig) -> None:
    done = sshd_effective(tmp_path, door, "-T")
    assert done.returncode == 0, done.stderr
    effective: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        effective.setdefault(key, value)
    expected = {
        "permittty": "no",
        "disableforwarding": "yes",
        "allowagentforwarding": "no",
        "allowtcpforwarding": "no",
        "allowstreamlocalforwarding": "no",
        "x11forwarding": "no",
        "permituserrc": "no",
        "permittunnel": "no",
        "permituserenvironment": "no",
        "passwordauthentication": "no",
        "kbdinteractiveauthentication": "no",
        "hostbasedauthentication": "no",
        "pubkeyauthentication": "yes",
        "authenticationmethods": "publickey",
        "permitrootlogin": "no",
        "maxauthtries": "1",
        "maxsessions": "1",
        "allowusers": "backup",
        "hostkey": door.host_key,
        "authorizedkeysfile": door.authorized_keys,
        "permitopen": "none",
        "permitlisten": "none",
    }
    assert {k: effective.get(k) for k in expected} == expected
    # sshd keeps the forced command verbatim: the gate's quoting reaches the shell.
    assert effective["forcecommand"] == door.gate.shell_line()


def test_config_text_has_the_restrictive_lines(door: DoorConfig) -> None:
    text = sshd.sshd_config(door)
    lines = text.splitlines()
    for wanted in (
        "PermitTTY no",
        "DisableForwarding yes",
        "AllowAgentForwarding no",
        "X11Forwarding no",
        "PermitUserRC no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "MaxAuthTries 1",
        "MaxSessions 1",
        "AllowUsers backup",
        f"HostKey {door.host_key}",
    ):
        assert wanted in lines, wanted
    force = [line for line in lines if line.startswith("ForceCommand ")]
    assert force == [f"ForceCommand {door.gate.shell_line()}"]
    # sshd uses the first value of a keyword: none may appear twice.
    keywords = [line.split()[0] for line in lines if line and not line.startswith("#")]
    assert len(keywords) == len(set(keywords))
    assert text.endswith("\n") and "\n\n" not in text


# --- the gate command through a shell ---------------------------------------------------


def through_sh(line: str) -> list[str]:
    """Run `line` as sshd would ($SHELL -c), with exec replaced by a printer."""
    assert line.startswith("exec ")
    printer = "printf '%s\\0' " + line[len("exec ") :]
    done = subprocess.run(["sh", "-c", printer], capture_output=True, check=True, env=ENV)
    return [w.decode() for w in done.stdout.split(b"\0")[:-1]]


@pytest.mark.parametrize("root", ODD_ROOTS)
def test_gate_shell_line_gives_exactly_the_argv(root: str) -> None:
    g = gate("/etc", root)
    assert through_sh(g.shell_line()) == g.argv()


def test_gate_argv_shape() -> None:
    g = gate("/etc", "/srv/with space")
    argv = g.argv()
    assert argv[:4] == ["/usr/bin/python3", "-I", "-m", sshd.GATE_MODULE]
    assert argv[argv.index("--rsync") + 1] == "/usr/bin/rsync"
    assert [argv[i + 1] for i, w in enumerate(argv) if w == "--root"] == ["/etc", "/srv/with space"]
    assert argv[argv.index("--nice") + 1] == "10"
    assert argv[argv.index("--ionice") + 1] == "best-effort:7"
    assert "--no-confine-root" not in argv
    assert gate(confine_root=False).argv()[-1] == "--no-confine-root"
    assert (
        through_sh(gate(*ODD_ROOTS, confine_root=False).shell_line())
        == gate(*ODD_ROOTS, confine_root=False).argv()
    )


# --- authorized_keys -------------------------------------------------------------------------


def opt_dequote(text: str) -> tuple[str, str]:
    """sshd's reading of a quoted option value (OpenSSH misc.c opt_dequote):
    `\\"` is a quote, every other character stands for itself.  Returns
    (value, rest of the line)."""
    assert text[0] == '"'
    out, i = [], 1
    while i < len(text) and text[i] != '"':
        if text[i] == "\\" and text[i + 1 : i + 2] == '"':
            i += 1
        out.append(text[i])
        i += 1
    assert i < len(text), "missing end quote"
    return "".join(out), text[i + 1 :]


def test_authorized_keys_line_shape() -> None:
    command = gate().shell_line()
    line = sshd.authorized_keys_line(PUBLIC, ["192.0.2.20", "2001:db8::20"], command)
    assert line.startswith('restrict,from="192.0.2.20,2001:db8::20",command="')
    assert line.endswith(f" {PUBLIC} pullsnap-once\n")
    assert line.count("\n") == 1
    rest = line[len('restrict,from="192.0.2.20,2001:db8::20",command=') :]
    value, tail = opt_dequote(rest)
    assert value == command
    assert tail == f" {PUBLIC} pullsnap-once\n"


@pytest.mark.parametrize("root", ODD_ROOTS)
def test_authorized_keys_command_survives_sshds_dequoting(root: str) -> None:
    # A root with a quote used to make this line impossible to build.
    command = gate("/etc", root).shell_line()
    line = sshd.authorized_keys_line(PUBLIC, ["127.0.0.1"], command)
    prefix = 'restrict,from="127.0.0.1",command='
    assert line.startswith(prefix)
    value, tail = opt_dequote(line[len(prefix) :])
    assert value == command
    assert tail == f" {PUBLIC} pullsnap-once\n"
    assert through_sh(value) == gate("/etc", root).argv()


def test_authorized_keys_line_refusals() -> None:
    with pytest.raises(ValueError, match="allow_from"):
        sshd.authorized_keys_line(PUBLIC, [], "exec true")
    with pytest.raises(ValueError, match="cannot be embedded"):
        sshd.authorized_keys_line(PUBLIC, ["127.0.0.1"], "exec true\nssh-ed25519 AAAA")
    with pytest.raises(ValueError, match="cannot be embedded"):
        sshd.authorized_keys_line(PUBLIC, ["127.0.0.1"], "exec true \\")
