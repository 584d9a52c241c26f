"""Configuration: parsed once into frozen dataclasses, errors name file and key."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from pullsnap import config
from pullsnap.config import (
    Destination,
    GrabberConfig,
    InitiatorConfig,
    load_grabber,
    load_initiator,
)
from pullsnap.errors import USAGE, ConfigError

INITIATOR_TOML = """
user = "backup"
runtime_dir = "/run/pullsnap"
listen_address = "192.0.2.10"
listen_port = 40022
nice = 5
ionice = "idle"
keygen_timeout = "45s"
connect_back_timeout = "2m"
run_timeout = "6h"
sshd = "/opt/ssh/sbin/sshd"
rsync = "/opt/rsync/bin/rsync"

[[destination]]
name = "vault"
host = "vault.example.org"
port = 2222
user = "pullsnap"
identity_file = "/etc/pullsnap/vault_ed25519"
known_hosts = "/etc/pullsnap/vault_known_hosts"
allow_from = ["192.0.2.20", "2001:db8::20"]
sources = ["/etc", "/home", "/srv/data/"]
excludes = [".cache/", "*.tmp", "/home/*/Downloads"]

[[destination]]
name = "offsite"
host = "198.51.100.7"
sources = ["/etc"]
"""

GRABBER_TOML = """
repository = "/srv/pullsnap"
super = "fake-super"
rsync = "/usr/local/bin/rsync"
handoff_timeout = 10
connect_timeout = "1m"
rsync_timeout = "15m"
run_timeout = "1d"
compress = true
min_free_abs = "10G"
min_free_avg = 1.5
min_keep = 5
"""


def write(tmp_path: Path, text: str, name: str = "test.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def minimal_initiator(**dest: object) -> dict:
    destination: dict[str, object] = {"name": "vault", "host": "vault", "sources": ["/etc"]}
    destination.update(dest)
    return {"destination": [destination]}


def config_error(call, *args: object) -> str:
    with pytest.raises(ConfigError) as info:
        call(*args)
    assert info.value.exit_code == USAGE
    return str(info.value)


# --- valid files --------------------------------------------------------------------


def test_full_initiator_file_parses_with_conversions(tmp_path: Path) -> None:
    path = write(tmp_path, INITIATOR_TOML)
    cfg = config.load_initiator(path)
    assert isinstance(cfg, InitiatorConfig)
    assert cfg.path == path
    assert cfg.user == "backup"
    assert cfg.runtime_dir == "/run/pullsnap"
    assert cfg.listen_address == "192.0.2.10"
    assert cfg.listen_port == 40022
    assert cfg.nice == 5
    assert cfg.ionice == "idle"
    assert cfg.keygen_timeout == 45.0
    assert cfg.connect_back_timeout == 120.0
    assert cfg.run_timeout == 6 * 3600.0
    assert cfg.sshd == "/opt/ssh/sbin/sshd"
    assert cfg.rsync == "/opt/rsync/bin/rsync"
    # Not in the file: the defaults.
    assert cfg.ssh == "/usr/bin/ssh"
    assert cfg.ssh_keygen == "/usr/bin/ssh-keygen"

    vault, offsite = cfg.destinations
    assert vault == Destination(
        name="vault",
        host="vault.example.org",
        port=2222,
        user="pullsnap",
        identity_file="/etc/pullsnap/vault_ed25519",
        known_hosts="/etc/pullsnap/vault_known_hosts",
        allow_from=("192.0.2.20", "2001:db8::20"),
        sources=("/etc", "/home", "/srv/data"),
        excludes=(".cache/", "*.tmp", "/home/*/Downloads"),
    )
    assert offsite.name == "offsite"
    assert offsite.host == "198.51.100.7"
    assert offsite.sources == ("/etc",)
    assert offsite.port == 22
    assert offsite.allow_from == ()
    assert offsite.excludes == ()


def test_full_grabber_file_parses_with_conversions(tmp_path: Path) -> None:
    path = write(tmp_path, GRABBER_TOML)
    cfg = config.load_grabber(path)
    assert cfg == GrabberConfig(
        path=path,
        repository="/srv/pullsnap",
        super="fake-super",
        rsync="/usr/local/bin/rsync",
        handoff_timeout=10.0,
        connect_timeout=60.0,
        rsync_timeout=900.0,
        run_timeout=86400.0,
        compress=True,
        min_free_abs=10 * 1024**3,
        min_free_avg=1.5,
        min_keep=5,
    )


def test_configs_are_frozen(tmp_path: Path) -> None:
    cfg = config.load_grabber(write(tmp_path, GRABBER_TOML))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.min_keep = 1  # type: ignore[misc]
    initiator = config.load_initiator(write(tmp_path, INITIATOR_TOML, "i.toml"))
    assert isinstance(initiator.destinations, tuple)
    assert isinstance(initiator.destinations[0].sources, tuple)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1.5h", 5400.0),
        ("36h", 36 * 3600.0),
        ("7d", 7 * 86400.0),
        ("2w", 14 * 86400.0),
        (" 5 m ", 300.0),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert config.parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (1024, 1024),
        ("0", 0),
        ("512", 512),
        ("512M", 512 * 1024**2),
        ("10G", 10 * 1024**3),
        ("10g", 10 * 1024**3),
        ("10GiB", 10 * 1024**3),
        ("10 GB", 10 * 1024**3),
        ("1.5TiB", int(1.5 * 1024**4)),
        ("2K", 2048),
        ("1P", 1024**5),
    ],
)
def test_sizes(text: object, size: int) -> None:
    assert config.parse_size(text) == size


@pytest.mark.parametrize(
    ("value", "whole", "limit"),
    [("10%", 4096, 409), ("0.5%", 1000, 5), ("100%", 7, 7), (5000, 10**9, 5000)],
)
def test_thresholds_are_a_percentage_or_an_amount(value: object, whole: int, limit: int) -> None:
    cfg = config.grabber_from_dict({"free_inodes_warn": value})
    assert cfg.free_inodes_warn.of(whole) == limit
    assert config.grabber_from_dict({"free_warn": "2G"}).free_warn.of(1) == 2 << 30


@pytest.mark.parametrize("value", ["101%", "-1%", "lots", True, "5 %%"])
def test_a_threshold_that_is_neither_is_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="free_inodes_crit: "):
        config.grabber_from_dict({"free_inodes_crit": value})


def test_defaults_are_sane() -> None:
    grabber = config.grabber_from_dict({})
    assert grabber.repository.startswith("/")
    assert grabber.super == "auto"
    assert grabber.min_keep >= 1
    assert grabber.min_free_abs >= 1024**3
    assert grabber.min_free_avg > 1
    assert grabber.compress is False
    for name in ("handoff_timeout", "connect_timeout", "rsync_timeout", "run_timeout"):
        assert 0 < getattr(grabber, name) <= 24 * 3600, name
    assert grabber.handoff_timeout < grabber.rsync_timeout < grabber.run_timeout
    for name in ("rsync", "ssh", "ssh_agent", "ssh_add"):
        assert os.path.isabs(getattr(grabber, name))

    initiator = config.initiator_from_dict(minimal_initiator())
    assert initiator == dataclasses.replace(
        InitiatorConfig(), path="<config>", destinations=(initiator.destinations)
    )
    assert initiator.listen_port == 0  # the kernel picks a free port per run
    assert initiator.listen_address == ""
    assert 0 <= initiator.nice <= 19
    assert initiator.keygen_timeout < initiator.connect_back_timeout < initiator.run_timeout
    dest = initiator.destinations[0]
    assert dest.port == 22
    assert dest.user == "pullsnap"
    assert os.path.isabs(dest.identity_file) and os.path.isabs(dest.known_hosts)
    assert dest.excludes == () and dest.allow_from == ()


def test_addresses_are_normalised() -> None:
    cfg = config.initiator_from_dict(
        {"listen_address": "*", **minimal_initiator(allow_from=["2001:DB8:0::1", "127.0.0.1"])}
    )
    assert cfg.listen_address == ""
    assert cfg.destinations[0].allow_from == ("2001:db8::1", "127.0.0.1")


# --- every error names file and key ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("colour = 'red'\n", "colour", "unknown key"),
        ("path = '/x'\n", "path", "unknown key"),
        ("min_keep = '3'\n", "min_keep", "integer"),
        ("min_keep = 0\n", "min_keep", "between"),
        ("min_keep = true\n", "min_keep", "integer"),
        ("compress = 'yes'\n", "compress", "true or false"),
        ("run_timeout = 'five minutes'\n", "run_timeout", "not a duration"),
        ("run_timeout = '-5m'\n", "run_timeout", "not a duration"),
        ("run_timeout = -5\n", "run_timeout", "negative"),
        ("run_timeout = 0\n", "run_timeout", "more than zero"),
        ("run_timeout = nan\n", "run_timeout", "duration"),
        ("run_timeout = inf\n", "run_timeout", "duration"),
        ("min_free_abs = '10X'\n", "min_free_abs", "not a size"),
        ("min_free_abs = -1\n", "min_free_abs", "not a size"),
        ("min_free_abs = 1.5\n", "min_free_abs", "not a size"),
        ("min_free_avg = nan\n", "min_free_avg", "between"),
        ("repository = 'srv/pullsnap'\n", "repository", "absolute"),
        ("repository = 7\n", "repository", "string"),
        ("rsync = './rsync'\n", "rsync", "absolute"),
        ("super = 'yes'\n", "super", "one of"),
    ],
)
def test_grabber_errors_name_file_and_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    path = write(tmp_path, text)
    message = config_error(config.load_grabber, path)
    assert message.startswith(f"{path}: {key}: "), message
    assert words in message


@pytest.mark.parametrize(
    ("top", "dest", "key", "words"),
    [
        ({"colour": "red"}, {}, "colour", "unknown key"),
        ({"ionice": "realtime:8"}, {}, "ionice", "must be none, idle"),
        ({"ionice": "best-effort:"}, {}, "ionice", "must be none, idle"),
        ({"ionice": "sometimes"}, {}, "ionice", "must be none, idle"),
        ({"nice": 20}, {}, "nice", "between 0 and 19"),
        ({"listen_port": "22"}, {}, "listen_port", "integer"),
        ({"listen_address": "localhost"}, {}, "listen_address", "not an IP address"),
        ({"keygen_timeout": "20 sec"}, {}, "keygen_timeout", "not a duration"),
        ({"runtime_dir": "run/pullsnap"}, {}, "runtime_dir", "absolute"),
        ({"user": "Backup"}, {}, "user", "not a valid user name"),
        ({}, {"colour": "red"}, "destination[0].colour", "unknown key"),
        ({}, {"port": "22"}, "destination[0].port", "integer"),
        ({}, {"port": 70000}, "destination[0].port", "between"),
        ({}, {"name": "Vault"}, "destination[0].name", "lowercase"),
        ({}, {"name": "../x"}, "destination[0].name", "lowercase"),
        ({}, {"host": ["a"]}, "destination[0].host", "string"),
        ({}, {"host": "a\nb"}, "destination[0].host", "newline"),
        ({}, {"allow_from": ["vault.example.org"]}, "destination[0].allow_from", "IP address"),
        ({}, {"allow_from": "127.0.0.1"}, "destination[0].allow_from", "list"),
        ({}, {"sources": []}, "destination[0].sources", "at least 1"),
        ({}, {"sources": "/etc"}, "destination[0].sources", "list"),
        ({}, {"sources": ["etc"]}, "destination[0].sources", "absolute"),
        ({}, {"sources": ["/home/*"]}, "destination[0].sources", "glob"),
        ({}, {"sources": ["/home/[ab]"]}, "destination[0].sources", "glob"),
        ({}, {"sources": ["/etc\x1b"]}, "destination[0].sources", "control"),
        ({}, {"excludes": ["+ /etc/shadow"]}, "destination[0].excludes", "filter rule"),
        ({}, {"excludes": ["--delete"]}, "destination[0].excludes", "filter rule"),
        ({}, {"excludes": ["a\nb"]}, "destination[0].excludes", "newline"),
        ({}, {"excludes": [""]}, "destination[0].excludes", "empty"),
        ({}, {"identity_file": "id_ed25519"}, "destination[0].identity_file", "absolute"),
    ],
)
def test_initiator_errors_name_file_and_key(
    tmp_path: Path, top: dict, dest: dict, key: str, words: str
) -> None:
    path = write(tmp_path, _toml({**top, **minimal_initiator(**dest)}))
    message = config_error(config.load_initiator, path)
    assert message.startswith(f"{path}: {key}: "), message
    assert words in message
    # A config error is about the file, not about a handoff.
    assert "handoff" not in message


def test_missing_destination_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "user = 'backup'\n")
    message = config_error(config.load_initiator, path)
    assert message.startswith(f"{path}: destination: ")
    assert "[[destination]]" in message
    path = write(tmp_path, "[destination]\nname = 'x'\n", "table.toml")
    assert config_error(config.load_initiator, path).startswith(f"{path}: destination: ")


@pytest.mark.parametrize("missing", ["name", "host", "sources"])
def test_destination_required_keys(tmp_path: Path, missing: str) -> None:
    data = minimal_initiator()
    del data["destination"][0][missing]
    path = write(tmp_path, _toml(data))
    message = config_error(config.load_initiator, path)
    assert message == f"{path}: destination[0].{missing}: is required"


def test_duplicate_destination_names_are_an_error(tmp_path: Path) -> None:
    data = minimal_initiator()
    data["destination"].append({"name": "other", "host": "h2", "sources": ["/srv"]})
    data["destination"].append({"name": "vault", "host": "h3", "sources": ["/srv"]})
    path = write(tmp_path, _toml(data))
    message = config_error(config.load_initiator, path)
    assert message.startswith(f"{path}: destination: ")
    assert "'vault' is used twice" in message


def test_the_second_destination_is_named_by_index(tmp_path: Path) -> None:
    data = minimal_initiator()
    data["destination"].append({"name": "other", "host": "h2", "sources": ["relative"]})
    path = write(tmp_path, _toml(data))
    assert config_error(config.load_initiator, path).startswith(f"{path}: destination[1].sources: ")


def test_unreadable_or_broken_files_name_the_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.toml")
    assert config_error(config.load_grabber, missing).startswith(f"{missing}: no such file")
    broken = write(tmp_path, "min_keep = = 3\n")
    assert config_error(config.load_grabber, broken).startswith(f"{broken}: not valid TOML")
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b"# caf\xe9\nmin_keep = 3\n")
    assert config_error(config.load_grabber, str(latin1)).startswith(f"{latin1}: not valid TOML")
    assert config_error(config.load_initiator, str(tmp_path)).startswith(f"{tmp_path}: ")


# --- a tiny TOML writer for the error tables ------------------------------------------


def _value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        escaped = (f"\\u{ord(c):04x}" if c in '"\\' or not c.isprintable() else c for c in v)
        return '"' + "".join(escaped) + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(v)


def _toml(data: dict) -> str:
    lines = [f"{k} = {_value(v)}" for k, v in data.items() if k != "destination"]
    for table in data.get("destination", []):
        lines.append("[[destination]]")
        lines += [f"{k} = {_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def test_sources_with_dot_dot_are_refused_not_rewritten(tmp_path) -> None:
    path = tmp_path / "i.toml"
    path.write_text('[[destination]]\nname = "v"\nhost = "v"\nsources = ["/srv/../etc"]\n')
    with pytest.raises(ConfigError, match="not normalised"):
        load_initiator(str(path))


def test_the_shipped_examples_parse() -> None:
    root = Path(__file__).resolve().parents[1]
    initiator = load_initiator(str(root / "config" / "initiator.toml"))
    grabber = load_grabber(str(root / "config" / "grabber.toml"))
    assert initiator.destinations[0].name == "vault"
    assert grabber.min_keep == 3


def test_a_destination_host_is_a_host_name_or_an_address() -> None:
    import pytest

    from pullsnap.config import ConfigError, initiator_from_dict

    def config(host: object) -> dict:
        return {"destination": [{"name": "vault", "host": host, "sources": ["/etc"]}]}

    for good in ("vault", "vault.example.org", "vault.example.org.", "192.0.2.5", "2001:db8::5"):
        assert initiator_from_dict(config(good)).destinations[0].host == good
    for bad in ("", "-oProxyCommand=x", "vault example", "vault;reboot", "$(reboot)", "a..b"):
        with pytest.raises(ConfigError, match="host"):
            initiator_from_dict(config(bad))


# --- unknown keys: the nearest known one, or the table it belongs in ------------------


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("reposiotry = '/srv'\n", "reposiotry", "did you mean 'repository'?"),
        ("max_concurent_pulls = 2\n", "max_concurent_pulls",
         "did you mean 'max_concurrent_pulls'?"),
        ("polcy = 1\n", "polcy", "did you mean 'policy'?"),
        ("[policy]\nkeep_dialy = 7\n", "policy.keep_dialy", "did you mean 'keep_daily'?"),
        ("[hosts.web1]\nmin_intervall = '1h'\n", "hosts.web1.min_intervall",
         "did you mean 'min_interval'?"),
        ("keep_daily = 7\n", "keep_daily", "it belongs in [policy] or [hosts.NAME]"),
        ("[policy]\nrepository = '/srv'\n", "policy.repository",
         "it belongs in the top level, before [policy]"),
        ("colour = 'red'\n", "colour", " (see config/ for the keys)"),
    ],
)  # fmt: skip
def test_an_unknown_grabber_key_gets_the_nearest_known_one(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text)
    message = config_error(config.load_grabber, path)
    assert message.startswith(f"{path}: {key}: unknown key") and message.endswith(problem), message


@pytest.mark.parametrize(
    ("top", "dest", "key", "problem"),
    [
        ({}, {"soruces": ["/etc"]}, "destination[0].soruces", "did you mean 'sources'?"),
        ({}, {"exclude": ["*.tmp"]}, "destination[0].exclude", "did you mean 'excludes'?"),
        ({"listen_adress": "::"}, {}, "listen_adress", "did you mean 'listen_address'?"),
        ({"destinaton": "vault"}, {}, "destinaton", "did you mean 'destination'?"),
        ({"sources": ["/etc"]}, {}, "sources", "it belongs in [[destination]]"),
        ({}, {"nice": 5}, "destination[0].nice",
         "it belongs in the top level, before [[destination]]"),
        ({}, {"colour": "red"}, "destination[0].colour", " (see config/ for the keys)"),
    ],
)  # fmt: skip
def test_an_unknown_initiator_key_gets_the_nearest_known_one(
    tmp_path: Path, top: dict, dest: dict, key: str, problem: str
) -> None:
    path = write(tmp_path, _toml({**top, **minimal_initiator(**dest)}))
    message = config_error(config.load_initiator, path)
    assert message.startswith(f"{path}: {key}: unknown key") and message.endswith(problem), message
