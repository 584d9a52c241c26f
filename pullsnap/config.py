"""TOML configuration for both roles, validated once into frozen dataclasses.

Each dataclass field names its converter in `metadata["conv"]`; `_build`
walks a TOML table, refuses unknown keys, converts every value and reports
problems as `ConfigError("<file>: <key>", "<problem>")`.  The rest of the
code receives the frozen result and never looks at TOML again.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pullsnap import handoff
from pullsnap.errors import ConfigError, HandoffError

DEFAULT_INITIATOR_CONFIG = "/etc/pullsnap/initiator.toml"
DEFAULT_GRABBER_CONFIG = "/etc/pullsnap/grabber.toml"

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_DURATION_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(s|m|h|d|w)?$")
_SIZE_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]?)(i?B)?$", re.IGNORECASE)
_DURATION_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


class _Invalid(ValueError):
    """A converter's complaint; `_build` adds file and key."""


# --- converters --------------------------------------------------------------


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be a string, not {type(value).__name__}")
    if "\0" in value or "\n" in value:
        raise _Invalid("must not contain NUL or newline")
    return value


def _abspath(value: Any) -> str:
    text = _string(value)
    if not text.startswith("/"):
        raise _Invalid(f"{text!r} must be an absolute path")
    return os.path.normpath(text)


def _optional_abspath(value: Any) -> str:
    return "" if value == "" else _abspath(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("must be true or false")
    return value


def _integer(low: int, high: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid("must be an integer")
        if not low <= value <= high:
            raise _Invalid(f"must be between {low} and {high}")
        return value

    return convert


def _number(low: float, high: float) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Invalid("must be a number")
        if not low <= value <= high:
            raise _Invalid(f"must be between {low} and {high}")
        return float(value)

    return convert


def parse_duration(value: Any) -> float:
    """Seconds from 90, 1.5, "90s", "5m", "36h", "7d", "2w"."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION_RE.match(value.strip())):
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise _Invalid(f"{value!r} is not a duration (use seconds or e.g. '90s', '5m', '36h')")
    if not math.isfinite(seconds):
        raise _Invalid(f"{value!r} is not a duration (every wait needs a finite deadline)")
    if seconds < 0:
        raise _Invalid("must not be negative")
    return seconds


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise _Invalid("must be more than zero")
    return seconds


def parse_size(value: Any) -> int:
    """Bytes from 1024, "512M", "10G", "1.5TiB"."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and (match := _SIZE_RE.match(value.strip())):
        return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])
    raise _Invalid(f"{value!r} is not a size (use bytes or e.g. '512M', '10G')")


def _name(value: Any) -> str:
    text = _string(value)
    if not _NAME_RE.match(text):
        raise _Invalid(f"{text!r} must be lowercase letters, digits, '-' or '_', at most 63")
    return text


def _user(value: Any) -> str:
    text = _string(value)
    if not _USER_RE.match(text):
        raise _Invalid(f"{text!r} is not a valid user name")
    return text


def _address(value: Any) -> str:
    text = _string(value)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise _Invalid(f"{text!r} is not an IP address") from None


def _listen_address(value: Any) -> str:
    text = _string(value)
    if text in ("", "*"):
        return ""
    return _address(text)


def _choice(*choices: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = _string(value)
        if text not in choices:
            raise _Invalid(f"{text!r} must be one of {', '.join(choices)}")
        return text

    return convert


def _ionice(value: Any) -> str:
    text = _string(value)
    if not re.match(r"^(none|idle|best-effort(:[0-7])?|realtime(:[0-7])?)$", text):
        raise _Invalid(f"{text!r} must be none, idle, best-effort[:0-7] or realtime[:0-7]")
    return text


def _list_of(conv: Callable[[Any], Any], at_least: int = 0) -> Callable[[Any], tuple]:
    def convert(value: Any) -> tuple:
        if not isinstance(value, list):
            raise _Invalid("must be a list")
        if len(value) < at_least:
            raise _Invalid(f"needs at least {at_least} entr{'y' if at_least == 1 else 'ies'}")
        return tuple(conv(item) for item in value)

    return convert


def _source(value: Any) -> str:
    text = _string(value)
    bare = text.rstrip("/") or "/"  # a trailing slash is harmless
    if bare.startswith("/") and os.path.normpath(bare) != bare:
        raise _Invalid(f"{text!r} is not normalised (write {os.path.normpath(bare)!r})")
    text = _abspath(text)
    try:
        handoff.check_source_path(text)
    except HandoffError as e:
        # The bare problem: "bad handoff:" would mislead in a config error.
        raise _Invalid(str(e.args[0])) from None
    return text


def _exclude(value: Any) -> str:
    text = _string(value)
    try:
        handoff.check_exclude(text)
    except HandoffError as e:
        raise _Invalid(str(e.args[0])) from None
    return text


def _hook(value: Any) -> tuple[str, ...]:
    """A hook command: a string runs with /bin/sh -c, a list is the argv itself."""
    if isinstance(value, str):
        text = _string(value).strip()
        return ("/bin/sh", "-c", text) if text else ()
    words = _list_of(_string)(value)
    if words and not words[0]:
        raise _Invalid("the program (first word) must not be empty")
    return words


def _conv(conv: Callable[[Any], Any], **kwargs: Any) -> Any:
    return field(metadata={"conv": conv}, **kwargs)


# --- initiator ---------------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    """One backup host this machine is pulled by."""

    name: str = _conv(_name)
    host: str = _conv(_string)
    port: int = _conv(_integer(1, 65535), default=22)
    user: str = _conv(_user, default="pullsnap")
    identity_file: str = _conv(_abspath, default="/etc/pullsnap/id_ed25519")
    known_hosts: str = _conv(_abspath, default="/etc/pullsnap/known_hosts")
    # Addresses the grabber connects back from; empty means the addresses
    # `host` resolves to.
    allow_from: tuple[str, ...] = _conv(_list_of(_address), default=())
    sources: tuple[str, ...] = _conv(_list_of(_source, at_least=1), default=())
    excludes: tuple[str, ...] = _conv(_list_of(_exclude), default=())
    # Commands run around this destination's backup, as the initiator's user
    # with a clean environment (README "Before and after hooks"); a failing `before` means no
    # backup, `after` always runs.
    before: tuple[str, ...] = _conv(_hook, default=())
    after: tuple[str, ...] = _conv(_hook, default=())
    before_timeout: float = _conv(_positive_duration, default=600.0)
    after_timeout: float = _conv(_positive_duration, default=600.0)


@dataclass(frozen=True)
class InitiatorConfig:
    """The backed-up host's side."""

    path: str = ""  # the file this came from, for messages
    user: str = _conv(_user, default="pullsnap")
    runtime_dir: str = _conv(_optional_abspath, default="")
    listen_address: str = _conv(_listen_address, default="")
    listen_port: int = _conv(_integer(0, 65535), default=0)
    nice: int = _conv(_integer(0, 19), default=10)
    ionice: str = _conv(_ionice, default="best-effort:7")
    keygen_timeout: float = _conv(_positive_duration, default=20.0)
    connect_back_timeout: float = _conv(_positive_duration, default=120.0)
    run_timeout: float = _conv(_positive_duration, default=12 * 3600.0)
    sshd: str = _conv(_abspath, default="/usr/sbin/sshd")
    ssh: str = _conv(_abspath, default="/usr/bin/ssh")
    ssh_keygen: str = _conv(_abspath, default="/usr/bin/ssh-keygen")
    rsync: str = _conv(_abspath, default="/usr/bin/rsync")
    destinations: tuple[Destination, ...] = ()


# --- grabber -----------------------------------------------------------------


@dataclass(frozen=True)
class HostPolicy:
    """Per-host rules: the [policy] table, overridden key by key by [hosts.NAME]."""

    # Admission: a host's runs that made a snapshot are at least this far apart
    # (a compromised host cannot flood retention); `grabber allow-run` lifts it once.
    min_interval: float = _conv(parse_duration, default=4 * 3600.0)
    # Sanity: a snapshot with this fraction fewer files or bytes than the
    # previous good one is kept but marked suspect (0 disables the check).
    suspect_drop: float = _conv(_number(0, 1), default=0.5)
    # rsync exit 23 (some files unreadable): does the "partial" snapshot count as good?
    partial_is_good: bool = _conv(_boolean, default=True)
    # Monitoring: `grabber status` calls a host stale after this.
    max_age: float = _conv(_positive_duration, default=36 * 3600.0)
    # Time buckets (README "Retention"), decided with the backup host's clock.
    keep_within: float = _conv(parse_duration, default=24 * 3600.0)
    keep_daily: int = _conv(_integer(0, 100000), default=7)
    keep_weekly: int = _conv(_integer(0, 100000), default=4)
    keep_monthly: int = _conv(_integer(0, 100000), default=6)
    keep_yearly: int = _conv(_integer(0, 100000), default=1)


@dataclass(frozen=True)
class GrabberConfig:
    """The backup host's side."""

    path: str = ""
    repository: str = _conv(_abspath, default="/srv/pullsnap")
    # "auto": --super when the receiver capabilities are held, else --fake-super.
    super: str = _conv(_choice("auto", "super", "fake-super"), default="auto")
    # --super without Landlock: the receiver holds DAC_OVERRIDE unconfined.
    allow_unconfined_super: bool = _conv(_boolean, default=False)
    # --super on a repository filesystem without nosuid,nodev: snapshots then
    # hold working setuid-root files and device nodes.
    allow_suid_repository: bool = _conv(_boolean, default=False)
    # rsync older than 3.4.0 as the receiver (CVE-2024-12084..12088): refused
    # unless true (for a distribution build that carries the fixes).
    allow_unsafe_rsync: bool = _conv(_boolean, default=False)
    rsync: str = _conv(_abspath, default="/usr/bin/rsync")
    ssh: str = _conv(_abspath, default="/usr/bin/ssh")
    ssh_agent: str = _conv(_abspath, default="/usr/bin/ssh-agent")
    ssh_add: str = _conv(_abspath, default="/usr/bin/ssh-add")
    handoff_timeout: float = _conv(_positive_duration, default=30.0)
    connect_timeout: float = _conv(_positive_duration, default=30.0)
    rsync_timeout: float = _conv(_positive_duration, default=600.0)
    run_timeout: float = _conv(_positive_duration, default=12 * 3600.0)
    compress: bool = _conv(_boolean, default=False)
    min_free_abs: int = _conv(parse_size, default=1 << 30)
    min_free_avg: float = _conv(_number(0, 1000), default=2.0)
    min_keep: int = _conv(_integer(1, 100000), default=3)
    # At most this many pulls at once across hosts (0: no cap); a run beyond
    # it waits up to queue_timeout for a slot, then fails with exit code 8.
    max_concurrent_pulls: int = _conv(_integer(0, 10000), default=0)
    queue_timeout: float = _conv(_positive_duration, default=2 * 3600.0)
    # Monitoring (README "Status and alerts"): commands run as the grabber user
    # with a documented environment, never with client text in their argv.
    on_success: tuple[str, ...] = _conv(_hook, default=())
    on_failure: tuple[str, ...] = _conv(_hook, default=())
    on_stale: tuple[str, ...] = _conv(_hook, default=())
    hook_timeout: float = _conv(_positive_duration, default=60.0)
    # node_exporter textfile that `grabber status` rewrites; "" for none.
    prometheus_file: str = _conv(_optional_abspath, default="")
    policy: HostPolicy = HostPolicy()
    hosts: Mapping[str, HostPolicy] = dataclasses.field(default_factory=dict)

    def policy_for(self, host: str) -> HostPolicy:
        """The rules for one host: its [hosts.NAME] table, else [policy]."""
        return self.hosts.get(host, self.policy)


# --- building ----------------------------------------------------------------


def _build(cls: type, table: Mapping[str, Any], where: str, **extra: Any) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls) if "conv" in f.metadata}
    values: dict[str, Any] = {}
    for key, raw in table.items():
        if key not in known:
            raise ConfigError(f"{where}{key}", "unknown key (see config/ for the keys)")
        try:
            values[key] = known[key].metadata["conv"](raw)
        except _Invalid as e:
            raise ConfigError(f"{where}{key}", str(e)) from None
    for name, f in known.items():
        if name not in values and f.default is dataclasses.MISSING:
            raise ConfigError(f"{where}{name}", "is required")
    return cls(**values, **extra)


def _load_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(path, "no such file (pass --config or create it from config/)") from None
    except PermissionError:
        raise ConfigError(path, "permission denied") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, f"not valid TOML: {e}") from None


def initiator_from_dict(data: Mapping[str, Any], path: str = "<config>") -> InitiatorConfig:
    table = dict(data)
    raw_destinations = table.pop("destination", [])
    if not isinstance(raw_destinations, list) or not raw_destinations:
        raise ConfigError(f"{path}: destination", "add at least one [[destination]] table")
    destinations = []
    for index, raw in enumerate(raw_destinations):
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: destination", "must be [[destination]] tables")
        destinations.append(_build(Destination, raw, f"{path}: destination[{index}]."))
    names = [d.name for d in destinations]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ConfigError(f"{path}: destination", f"name {duplicate!r} is used twice")
    for index, dest in enumerate(destinations):
        if not dest.sources:
            raise ConfigError(f"{path}: destination[{index}].sources", "is required")
    return _build(InitiatorConfig, table, f"{path}: ", path=path, destinations=tuple(destinations))


def grabber_from_dict(data: Mapping[str, Any], path: str = "<config>") -> GrabberConfig:
    from pullsnap.errors import BindingError
    from pullsnap.names import check_host_name

    table = dict(data)
    defaults = table.pop("policy", {})
    per_host = table.pop("hosts", {})
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: policy", "must be a [policy] table")
    if not isinstance(per_host, dict):
        raise ConfigError(f"{path}: hosts", "must be [hosts.NAME] tables")
    policy = _build(HostPolicy, defaults, f"{path}: policy.")
    hosts: dict[str, HostPolicy] = {}
    for name, overrides in per_host.items():
        try:
            check_host_name(name)
        except BindingError as e:
            raise ConfigError(f"{path}: hosts.{name}", str(e)) from None
        if not isinstance(overrides, dict):
            raise ConfigError(f"{path}: hosts.{name}", "must be a table")
        hosts[name] = _build(HostPolicy, {**defaults, **overrides}, f"{path}: hosts.{name}.")
    return _build(GrabberConfig, table, f"{path}: ", path=path, policy=policy, hosts=hosts)


def load_initiator(path: str = DEFAULT_INITIATOR_CONFIG) -> InitiatorConfig:
    return initiator_from_dict(_load_toml(path), path)


def load_grabber(path: str = DEFAULT_GRABBER_CONFIG) -> GrabberConfig:
    return grabber_from_dict(_load_toml(path), path)
