"""What one run starts and where it keeps its files (initiator/wiring.py):
the runtime directory, the addresses allowed back, the argv of ssh and sshd,
the probes."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.config import Destination, InitiatorConfig
from pullsnap.initiator import wiring

DEST = Destination(name="vault", host="vault.example", port=2222, user="pullsnap",
                   sources=("/etc",), allow_from=("192.0.2.7",))  # fmt: skip


def test_a_configured_runtime_dir_is_used_or_named_never_replaced(tmp_path) -> None:

    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    assert wiring.runtime_base(InitiatorConfig(runtime_dir=str(tmp_path)), env) == str(tmp_path)
    assert wiring.runtime_base(InitiatorConfig(), env) == str(tmp_path)
    missing = str(tmp_path / "missing")
    with pytest.raises(errors.RunFailed, match=f"runtime_dir {missing} "):
        wiring.runtime_base(InitiatorConfig(runtime_dir=missing), env)


def _ssh_with_config(tmp_path, text: str) -> str:
    """The real ssh, reading `text` as its ssh_config."""
    config = tmp_path / "ssh_config"
    config.write_text(text)
    wrapper = tmp_path / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {config} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def test_the_login_goes_through_connectfd_unless_ssh_config_routes_the_host(tmp_path) -> None:

    dest = Destination(name="vault", host="vault.example", port=2222, sources=("/etc",))
    cases = [
        ("", False),
        ("Host vault.example\n    ProxyJump bastion.example\n", True),
        ("Host *\n    ProxyCommand nc %h %p\n", True),
        ("Host other.example\n    ProxyJump bastion.example\n", False),
    ]
    for text, expected in cases:
        cfg = InitiatorConfig(ssh=_ssh_with_config(tmp_path, text))
        assert wiring.own_proxy(cfg, dest) is expected, text
    argv = wiring.ssh_argv(InitiatorConfig(), dest, 30)
    proxy = next(w for w in argv if w.startswith("ProxyCommand="))
    assert proxy.endswith(" vault.example 2222 30") and "ProxyUseFdpass=yes" in argv
    assert not any("Proxy" in w for w in wiring.ssh_argv(InitiatorConfig(), dest, 30, False))


def test_when_ssh_cannot_say_the_operators_setup_is_left_alone(tmp_path) -> None:

    dest = Destination(name="vault", host="vault.example", sources=("/etc",))
    broken = _ssh_with_config(tmp_path, "NoSuchOption yes\n")
    assert wiring.own_proxy(InitiatorConfig(ssh=broken), dest) is True
    assert wiring.own_proxy(InitiatorConfig(ssh=str(tmp_path / "absent")), dest) is True


def test_the_runtime_directory_falls_back_in_order(tmp_path: Path) -> None:
    systemd, xdg = tmp_path / "systemd", tmp_path / "xdg"
    systemd.mkdir()
    xdg.mkdir()
    env = {"RUNTIME_DIRECTORY": f"{systemd}:{tmp_path}/other", "XDG_RUNTIME_DIR": str(xdg)}
    assert wiring.runtime_base(InitiatorConfig(), env) == str(systemd)
    assert wiring.runtime_base(InitiatorConfig(), {"XDG_RUNTIME_DIR": str(xdg)}) == str(xdg)
    assert wiring.runtime_base(InitiatorConfig(), {}) in ("/dev/shm", "/tmp")


def test_a_runtime_directory_ssh_would_split_is_refused(tmp_path: Path) -> None:
    spaced = tmp_path / "with space"
    spaced.mkdir()
    with pytest.raises(errors.ConfigError, match="use a path of letters, digits"):
        wiring.runtime_base(InitiatorConfig(), {"XDG_RUNTIME_DIR": str(spaced)})


def test_allowed_addresses_are_the_configured_ones_or_the_resolved_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert wiring.resolve_allowed(DEST) == ("192.0.2.7",)
    local = Destination(name="vault", host="127.0.0.1", sources=("/etc",))
    assert wiring.resolve_allowed(local) == ("127.0.0.1",)

    def no_such_name(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    nowhere = Destination(name="vault", host="vault.example", sources=("/etc",))
    with pytest.raises(errors.Unreachable, match=r"cannot resolve vault\.example: Name or"):
        wiring.resolve_allowed(nowhere)


def test_the_call_to_the_backup_host_pins_everything_and_runs_one_command() -> None:
    argv = wiring.ssh_argv(InitiatorConfig(), DEST, 0.5, nodelay=False)
    assert argv[0] == InitiatorConfig().ssh
    assert argv[-3:] == ["--", "vault.example", "pullsnap"]
    assert argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-l") + 1] == "pullsnap"
    options = {argv[i + 1] for i, w in enumerate(argv) if w == "-o"}
    for pinned in ("BatchMode=yes", "StrictHostKeyChecking=yes", "ForwardAgent=no",
                   "ClearAllForwardings=yes", "PermitLocalCommand=no", "ControlPath=none",
                   "GlobalKnownHostsFile=/dev/null", "ConnectTimeout=1",
                   f"IdentityFile={DEST.identity_file}",
                   f"UserKnownHostsFile={DEST.known_hosts}"):  # fmt: skip
        assert pinned in options, pinned
    assert "-T" in argv and "-a" in argv and "-x" in argv


def test_the_one_shot_sshd_reads_its_own_config_on_stdin() -> None:
    cfg = InitiatorConfig()
    assert wiring.sshd_argv(cfg, "/run/x/sshd_config") == [cfg.sshd, "-i", "-e", "-f",
                                                            "/run/x/sshd_config"]  # fmt: skip


def _fake_rsync(tmp_path: Path, help_text: str) -> str:
    program = tmp_path / "rsync"
    program.write_text(f"#!/bin/sh\ncat <<'END'\n{help_text}\nEND\n")
    program.chmod(0o755)
    return str(program)


@pytest.mark.parametrize("help_text, has", [("  --confine-root=DIR  bound opens", True),
                                            ("  --chroot", False)])  # fmt: skip
def test_the_confine_root_probe_reads_rsyncs_help(tmp_path: Path, help_text, has) -> None:
    assert wiring.start_confine_root_probe(_fake_rsync(tmp_path, help_text))() is has


def test_the_login_name_is_this_users() -> None:
    import pwd

    assert wiring.login_name() == pwd.getpwuid(os.getuid()).pw_name


def test_write_private_makes_a_new_0600_file_and_never_follows_or_replaces(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sshd_config"
    wiring.write_private(str(path), "Port 22\n")
    assert path.read_text() == "Port 22\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        wiring.write_private(str(path), "again")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        wiring.write_private(str(tmp_path / "link"), "x")
    assert not (tmp_path / "elsewhere").exists()
