"""The host binding comes from authorized_keys, the peer from SSH_CONNECTION.

DESIGN "Security properties" 5: a backed-up host can only write to its own
snapshot directory.  These tests play sshd: they build the `grabber -c
COMMAND` argv and the environment sshd would give the login shell.
"""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pullsnap.errors import REFUSED, BindingError
from pullsnap.grabber.session import binding
from pullsnap.grabber.session.binding import Binding

# DESIGN.md security properties: `./test.sh -m security` runs these.
pytestmark = pytest.mark.security

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE5vdEFSZWFsS2V5QnV0V2VsbEZvcm1lZEVub3VnaA"

# --- host names -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/",
        "a/b",
        "..",
        ".",
        "a..b",
        ".hidden",
        "-flag",
        "web1-",
        "web1.",
        "Web1",
        "WEB",
        "web 1",
        "web_1",
        "web1\n",
        "web\x00",
        "web\x1b",
        "web\x7f",
        "a" * 64,
        "wéb",
        "latest",
        "lock",
        "trash",
    ],
)
def test_bad_host_names_are_refused(name: str) -> None:
    with pytest.raises(BindingError, match="is not allowed") as info:
        binding.check_host_name(name)
    assert info.value.exit_code == REFUSED


@pytest.mark.parametrize(
    "name", ["web1", "db-2.example.org", "a", "0", "a" * 63, "x1.y2.z3", "latest-web"]
)
def test_ordinary_host_names_are_accepted(name: str) -> None:
    assert binding.check_host_name(name) == name


def test_host_name_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(BindingError):
        binding.check_host_name(None)  # type: ignore[arg-type]


_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=70)


@given(name=_LABEL | st.text(max_size=70))
def test_accepted_host_names_stay_directly_inside_the_repository(name: str) -> None:
    root = "/srv/pullsnap"
    try:
        binding.check_host_name(name)
    except BindingError:
        return
    path = os.path.normpath(os.path.join(root, name))
    assert os.path.dirname(path) == root
    assert os.path.basename(path) == name


# --- the forced command -------------------------------------------------------------


def test_parse_forced_command() -> None:
    assert binding.parse_forced_command("pullsnap-grabber host=web1") == Binding("web1", None)
    assert binding.parse_forced_command(
        "pullsnap-grabber host=db-2.example.org config=/etc/pullsnap/grabber-b.toml"
    ) == Binding("db-2.example.org", "/etc/pullsnap/grabber-b.toml")
    assert binding.parse_forced_command("pullsnap-grabber config=/etc/g.toml host=web1") == Binding(
        "web1", "/etc/g.toml"
    )


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("", "not bound"),
        ("pullsnap", "not bound"),
        ("rsync --server", "not bound"),
        ("pullsnap-grabber", "names no host"),
        ("pullsnap-grabber config=/etc/g.toml", "names no host"),
        ("pullsnap-grabber host=web1 extra", "bad word 'extra'"),
        ("pullsnap-grabber host=web1 user=root", "bad word 'user=root'"),
        ("pullsnap-grabber host=web1 host=web2", "bad word 'host=web2'"),
        ("pullsnap-grabber host=web1 config=/a config=/b", "bad word 'config=/b'"),
        ("pullsnap-grabber  host=web1", "bad word ''"),
        ("pullsnap-grabber host=web1 ", "bad word ''"),
        ("pullsnap-grabber host=../etc", "is not allowed"),
        ("pullsnap-grabber host=", "is not allowed"),
        ("pullsnap-grabber host=Web1", "is not allowed"),
        ("pullsnap-grabber host=web1\n", "is not allowed"),
        ("pullsnap-grabber\thost=web1", "not bound"),
        ("pullsnap-grabber host=web1 config=/etc/../root/g.toml", "config path"),
        ("pullsnap-grabber host=web1 config=/etc/pullsnap/..", "config path"),
        ("pullsnap-grabber host=web1 config=etc/g.toml", "config path"),
        ("pullsnap-grabber host=web1 config=", "config path"),
        ("pullsnap-grabber host=web1 config=/etc/my config.toml", "bad word 'config.toml'"),
        ("pullsnap-grabber host=web1 config=/etc/g.toml\n", "config path"),
        ("pullsnap-grabber host=web1 config=/etc/$(id).toml", "config path"),
    ],
)
def test_parse_forced_command_is_strict(command: str, words: str) -> None:
    with pytest.raises(BindingError) as info:
        binding.parse_forced_command(command)
    assert words in str(info.value)


# --- the login ----------------------------------------------------------------------------

FORCED = "pullsnap-grabber host=web1"


def test_binding_from_login() -> None:
    env = {"SSH_ORIGINAL_COMMAND": "pullsnap", "SSH_CONNECTION": "192.0.2.5 5000 192.0.2.1 22"}
    assert binding.binding_from_login(["grabber", "-c", FORCED], env) == Binding("web1")


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"SSH_ORIGINAL_COMMAND": ""},
        {"SSH_ORIGINAL_COMMAND": "pullsnap "},
        {"SSH_ORIGINAL_COMMAND": "Pullsnap"},
        {"SSH_ORIGINAL_COMMAND": FORCED},
        {"SSH_ORIGINAL_COMMAND": "rsync --server --sender . /"},
    ],
)
def test_login_without_the_forced_command_is_refused(environ: dict[str, str]) -> None:
    # An unbound key: the client's own words become COMMAND, and sshd sets
    # no SSH_ORIGINAL_COMMAND (or the client asked for something else).
    with pytest.raises(BindingError, match="not bound to a host"):
        binding.binding_from_login(["grabber", "-c", FORCED], environ)


@pytest.mark.parametrize(
    "argv",
    [
        ["grabber"],
        ["-grabber"],
        ["grabber", "-c"],
        ["grabber", "-l"],
        ["grabber", "-i", FORCED],
        ["grabber", "-c", FORCED, "extra"],
        ["grabber", FORCED],
    ],
)
def test_interactive_login_is_refused(argv: list[str]) -> None:
    with pytest.raises(BindingError, match="no interactive login"):
        binding.binding_from_login(argv, {"SSH_ORIGINAL_COMMAND": "pullsnap"})


def test_login_with_a_bad_forced_command_is_refused() -> None:
    with pytest.raises(BindingError, match="is not allowed"):
        binding.binding_from_login(
            ["grabber", "-c", "pullsnap-grabber host=../other"],
            {"SSH_ORIGINAL_COMMAND": "pullsnap"},
        )


# --- the peer --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("connection", "address"),
    [
        ("192.0.2.5 50022 192.0.2.1 22", "192.0.2.5"),
        ("::1 50022 ::1 22", "::1"),
        ("2001:db8:0:0::5 50022 2001:db8::1 22", "2001:db8::5"),
        ("::ffff:127.0.0.1 50022 ::ffff:127.0.0.1 22", "127.0.0.1"),
        ("fe80::1%eth0 50022 fe80::2%eth0 22", "fe80::1"),
    ],
)
def test_peer_address_comes_from_ssh_connection(connection: str, address: str) -> None:
    environ = {"SSH_CONNECTION": connection, "SSH_CLIENT": "203.0.113.66 1 22"}
    assert binding.peer_address(environ) == address


@pytest.mark.parametrize(
    "connection", [None, "", "192.0.2.5", "192.0.2.5 50022 192.0.2.1", "a b c d e"]
)
def test_peer_address_refused_without_ssh_connection(connection: str | None) -> None:
    environ = {} if connection is None else {"SSH_CONNECTION": connection}
    # SSH_CLIENT is not a substitute: only sshd's own SSH_CONNECTION counts.
    environ["SSH_CLIENT"] = "192.0.2.5 50022 22"
    with pytest.raises(BindingError, match="SSH_CONNECTION is missing"):
        binding.peer_address(environ)


def test_peer_address_refused_when_not_an_address() -> None:
    with pytest.raises(BindingError, match="names no IP address"):
        binding.peer_address({"SSH_CONNECTION": "vault.example.org 50022 192.0.2.1 22"})


# --- authorized_keys --------------------------------------------------------------------------

_COMMAND_RE = re.compile(r'^restrict,command="([^"]*)" (\S+) (\S+) (\S+)\n\Z')


def _forced_command_of(line: str) -> tuple[str, str, str]:
    match = _COMMAND_RE.match(line)
    assert match is not None, line
    return match.group(1), f"{match.group(2)} {match.group(3)}", match.group(4)


@pytest.mark.parametrize(
    ("host", "config"),
    [("web1", None), ("db-2.example.org", "/etc/pullsnap/grabber-b.toml")],
)
def test_authorized_keys_line_round_trips(host: str, config: str | None) -> None:
    line = binding.authorized_keys_line(host, PUBLIC_KEY + " someone@laptop", config)
    command, key, comment = _forced_command_of(line)
    assert key == PUBLIC_KEY  # the operator's comment is replaced
    assert comment == f"pullsnap:{host}"
    assert binding.parse_forced_command(command) == Binding(host, config)


_HOSTS = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]{1,10}){0,3}", fullmatch=True)
_CONFIGS = st.none() | st.from_regex(r"/[a-z0-9_-]{1,12}(/[a-z0-9_.-]{1,12}){0,3}", fullmatch=True)


@given(host=_HOSTS, config=_CONFIGS)
def test_authorized_keys_line_round_trips_for_any_valid_binding(
    host: str, config: str | None
) -> None:
    if host in ("latest", "lock", "trash") or (config and "/../" in config + "/"):
        return
    command, key, _ = _forced_command_of(binding.authorized_keys_line(host, PUBLIC_KEY, config))
    assert key == PUBLIC_KEY
    assert binding.parse_forced_command(command) == Binding(host, config)


@pytest.mark.parametrize(
    "public",
    [
        "",
        "AAAAC3NzaC1lZDI1NTE5",
        "rsa AAAAB3Nza",
        'ssh-ed25519 AAAA" command="sh',
        "ssh-ed25519 AAAA,from=x",
        "-----BEGIN OPENSSH PRIVATE KEY-----",
    ],
)
def test_authorized_keys_line_refuses_what_is_not_a_public_key(public: str) -> None:
    with pytest.raises(BindingError, match="not an OpenSSH public key"):
        binding.authorized_keys_line("web1", public)


def test_authorized_keys_line_refuses_bad_bindings() -> None:
    with pytest.raises(BindingError, match="is not allowed"):
        binding.authorized_keys_line("../web1", PUBLIC_KEY)
    with pytest.raises(BindingError, match="config path"):
        binding.authorized_keys_line("web1", PUBLIC_KEY, '/etc/x" ssh-rsa')


def test_a_line_can_be_bound_to_source_addresses() -> None:
    line = binding.authorized_keys_line(
        "web7", PUBLIC_KEY, sources=["10.7.0.17", " 192.0.2.9/24", "2001:db8::1/128"]
    )
    assert line.startswith(
        'restrict,from="10.7.0.17,192.0.2.0/24,2001:db8::1",command="pullsnap-grabber host=web7" '
    )


@pytest.mark.parametrize(
    "bad", ["web8", "10.0.0.300", '10.0.0.1",command="sh', "10.0.0.*", "", "10.0.0.1 x"]
)
def test_source_addresses_are_addresses_or_networks_only(bad: str) -> None:
    with pytest.raises(BindingError, match="is not an IP address or network"):
        binding.authorized_keys_line("web7", PUBLIC_KEY, sources=[bad])


# --- the login shell typed by hand ----------------------------------------------------

COMMANDS = ("list", "status", "check")


@pytest.mark.parametrize(
    "argv, advice",
    [(["grabber", "-c", "status"], "type: grabber status"),
     (["grabber", "-c", "status --json web1"], "type: grabber status --json web1"),
     (["grabber", "-c", "/srv/g.toml", "list"], "type: grabber --config /srv/g.toml list"),
     (["grabber", "-c"], "type: grabber --config FILE COMMAND"),
     (["grabber", "-c", "sh"], "this account only serves backups"),
     (["-grabber"], "this account only serves backups")],
)  # fmt: skip
def test_a_login_shell_typed_by_hand_is_told_what_to_type(argv: list[str], advice: str) -> None:
    said = binding.login_mistake(argv, COMMANDS)
    assert said.startswith("`grabber -c ...` is the login shell sshd starts") and advice in said


def test_only_sshds_variables_tell_a_backup_from_a_person() -> None:
    assert not binding.started_by_sshd({"PATH": "/bin", "HOME": "/root"})
    assert binding.started_by_sshd({"SSH_CONNECTION": "10.0.0.5 40000 10.0.0.1 22"})
    assert binding.started_by_sshd({"SSH_ORIGINAL_COMMAND": "pullsnap"})
