"""The commands the initiator tells an operator to run (initiator/advice.py):
each runs as printed, in a shell, whatever the paths and names."""

from __future__ import annotations

import dataclasses
import shlex

import pytest

from pullsnap.config import DEFAULT_INITIATOR_CONFIG, InitiatorConfig
from pullsnap.initiator import advice

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB9 root@web1 extra words"


def test_initiator_names_a_configuration_only_when_it_is_not_the_default() -> None:
    cfg = InitiatorConfig()
    assert advice.initiator(cfg, "check") == "initiator check"
    assert advice.initiator(dataclasses.replace(cfg, path=DEFAULT_INITIATOR_CONFIG)) == "initiator"
    odd = dataclasses.replace(cfg, path="/etc/pull snap/i.toml")
    line = advice.initiator(odd, "check", "--probe")
    assert line == "initiator -c '/etc/pull snap/i.toml' check --probe"
    assert shlex.split(line) == ["initiator", "-c", "/etc/pull snap/i.toml", "check", "--probe"]


def test_the_authorize_lines_for_the_backup_hosts_operator() -> None:
    first, comment, other = advice.grabber_authorize("web1", KEY, "pullsnap")
    assert shlex.split(first) == ["grabber", "authorize", "web1",
                                  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB9 root@web1"]  # fmt: skip
    assert comment.startswith("# with a grabber configuration other than ")
    assert other.startswith("# grabber --config FILE authorize --bind-config web1 ")
    first, _, other = advice.grabber_authorize("web1", KEY, "backup")
    assert shlex.split(first)[2:5] == ["--user", "backup", "web1"]
    assert "--bind-config --user backup web1" in other


@pytest.mark.parametrize(
    "host, port, name",
    [("Vault.Example", 22, "vault.example"), ("vault", 2222, "[vault]:2222"),
     ("2001:db8::1", 2200, "[2001:db8::1]:2200")],
)  # fmt: skip
def test_host_names_as_ssh_looks_keys_up(host: str, port: int, name: str) -> None:
    assert advice.host_name(host, port) == name


def test_keyscan_pin_and_forget() -> None:
    assert advice.keyscan("vault", 22, "ED25519") == "ssh-keyscan -t ed25519 vault"
    assert advice.keyscan("vault", 2222, "RSA") == "ssh-keyscan -p 2222 -t rsa vault"
    assert advice.pin("vault", 22, "ED25519", "/etc/pullsnap/known hosts") == (
        "ssh-keyscan -t ed25519 vault >> '/etc/pullsnap/known hosts'"
    )
    assert shlex.split(advice.forget("vault", 2222, "/k")) == [
        "ssh-keygen", "-R", "[vault]:2222", "-f", "/k"
    ]  # fmt: skip


def test_compare_names_the_file_on_the_backup_host() -> None:
    line = advice.compare("vault", 22, "SHA256:abc", "ed25519")
    assert line == ("compare SHA256:abc with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` "
                    "run on the backup host")  # fmt: skip
    unknown = advice.compare("vault", 2222, "", "DSA")
    assert unknown.startswith("see its fingerprint: ssh-keyscan -p 2222 -t dsa vault | "
                              "ssh-keygen -lf -; compare it with")  # fmt: skip
    assert "/etc/ssh/ssh_host_*_key.pub" in unknown
