"""TOML configuration for both roles, validated once into frozen dataclasses.

Each dataclass field names its converter in `metadata["conv"]`; `_build`
walks a TOML table, refuses unknown keys (naming the nearest known key, or
the table a misplaced key belongs in), converts every value and reports
problems as `ConfigError("<file>: <key>", "<problem>")`.  The rest of the
code receives the frozen result and never looks at TOML again.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pullsnap.configvalues import (
    Invalid,
    Threshold,
    abspath,
    boolean,
    choice,
    conv,
    exclude_pattern,
    hook_command,
    host_label,
    host_name,
    integer,
    ionice,
    ip_address,
    list_of,
    listen_address,
    number,
    optional_abspath,
    parse_duration,
    parse_size,
    positive_duration,
    source_path,
    threshold,
    user_name,
)
from pullsnap.errors import ConfigError

DEFAULT_INITIATOR_CONFIG = "/etc/pullsnap/initiator.toml"
DEFAULT_GRABBER_CONFIG = "/etc/pullsnap/grabber.toml"

# --- initiator ---------------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    """One backup host this machine is pulled by."""

    name: str = conv(host_label)
    host: str = conv(host_name)
    port: int = conv(integer(1, 65535), default=22)
    user: str = conv(user_name, default="pullsnap")
    identity_file: str = conv(abspath, default="/etc/pullsnap/id_ed25519")
    known_hosts: str = conv(abspath, default="/etc/pullsnap/known_hosts")
    # Addresses the grabber connects back from; empty means the addresses
    # `host` resolves to.
    allow_from: tuple[str, ...] = conv(list_of(ip_address), default=())
    sources: tuple[str, ...] = conv(list_of(source_path, at_least=1), default=())
    excludes: tuple[str, ...] = conv(list_of(exclude_pattern), default=())
    # Commands run around this destination's backup, as the initiator's user
    # with a clean environment (README "Before and after hooks"); a failing `before` means no
    # backup, `after` always runs.
    before: tuple[str, ...] = conv(hook_command, default=())
    after: tuple[str, ...] = conv(hook_command, default=())
    before_timeout: float = conv(positive_duration, default=600.0)
    after_timeout: float = conv(positive_duration, default=600.0)


@dataclass(frozen=True)
class InitiatorConfig:
    """The backed-up host's side."""

    path: str = ""  # the file this came from, for messages
    user: str = conv(user_name, default="pullsnap")
    runtime_dir: str = conv(optional_abspath, default="")
    listen_address: str = conv(listen_address, default="")
    listen_port: int = conv(integer(0, 65535), default=0)
    nice: int = conv(integer(0, 19), default=10)
    ionice: str = conv(ionice, default="best-effort:7")
    keygen_timeout: float = conv(positive_duration, default=20.0)
    connect_back_timeout: float = conv(positive_duration, default=120.0)
    run_timeout: float = conv(positive_duration, default=12 * 3600.0)
    sshd: str = conv(abspath, default="/usr/sbin/sshd")
    ssh: str = conv(abspath, default="/usr/bin/ssh")
    ssh_keygen: str = conv(abspath, default="/usr/bin/ssh-keygen")
    rsync: str = conv(abspath, default="/usr/bin/rsync")
    destinations: tuple[Destination, ...] = ()


# --- grabber -----------------------------------------------------------------

# `grabber status`: the repository's filesystem is low below these.
WARN_BELOW = Threshold(10, percent=True)
CRIT_BELOW = Threshold(5, percent=True)
INODES = integer(0, 1 << 62)  # a number of inodes


@dataclass(frozen=True)
class HostPolicy:
    """Per-host rules: the [policy] table, overridden key by key by [hosts.NAME]."""

    # Admission: a host's runs that made a snapshot are at least this far apart
    # (a compromised host cannot flood retention); `grabber allow-run` lifts it once.
    min_interval: float = conv(parse_duration, default=4 * 3600.0)
    # Sanity: a snapshot with this fraction fewer files or bytes than the
    # previous good one is kept but marked suspect (0 disables the check).
    suspect_drop: float = conv(number(0, 1), default=0.5)
    # rsync exit 23 (some files unreadable): does the "partial" snapshot count as good?
    partial_is_good: bool = conv(boolean, default=True)
    # Monitoring: `grabber status` warns when the newest good snapshot is
    # partial (unreadable files, or source paths that were missing).
    warn_partial: bool = conv(boolean, default=True)
    # Monitoring: `grabber status` calls a host stale after this.
    max_age: float = conv(positive_duration, default=36 * 3600.0)
    # Time buckets (README "Retention"), decided with the backup host's clock.
    keep_within: float = conv(parse_duration, default=24 * 3600.0)
    keep_daily: int = conv(integer(0, 100000), default=7)
    keep_weekly: int = conv(integer(0, 100000), default=4)
    keep_monthly: int = conv(integer(0, 100000), default=6)
    keep_yearly: int = conv(integer(0, 100000), default=1)
    # The free-space guard (README "Retention"): what this host may hold when
    # space is short; 0: an equal part of what is left after the set shares.
    share: int = conv(parse_size, default=0)
    share_inodes: int = conv(INODES, default=0)


@dataclass(frozen=True)
class GrabberConfig:
    """The backup host's side."""

    path: str = ""
    repository: str = conv(abspath, default="/srv/pullsnap")
    # "auto": btrfs subvolumes when the repository is on btrfs and the grabber
    # can delete them, else hardlinked trees (grabber/store/storekind.py).
    store: str = conv(choice("auto", "hardlink", "btrfs"), default="auto")
    # "auto": --super when the receiver capabilities are held, else --fake-super.
    super: str = conv(choice("auto", "super", "fake-super"), default="auto")
    # --super without Landlock: the receiver holds DAC_OVERRIDE unconfined.
    allow_unconfined_super: bool = conv(boolean, default=False)
    # --super on a repository filesystem without nosuid,nodev: snapshots then
    # hold working setuid-root files and device nodes.
    allow_suid_repository: bool = conv(boolean, default=False)
    # rsync older than 3.4.0 as the receiver (CVE-2024-12084..12088): refused
    # unless true (for a distribution build that carries the fixes).
    allow_unsafe_rsync: bool = conv(boolean, default=False)
    rsync: str = conv(abspath, default="/usr/bin/rsync")
    ssh: str = conv(abspath, default="/usr/bin/ssh")
    ssh_agent: str = conv(abspath, default="/usr/bin/ssh-agent")
    ssh_add: str = conv(abspath, default="/usr/bin/ssh-add")
    handoff_timeout: float = conv(positive_duration, default=30.0)
    connect_timeout: float = conv(positive_duration, default=30.0)
    rsync_timeout: float = conv(positive_duration, default=600.0)
    run_timeout: float = conv(positive_duration, default=12 * 3600.0)
    compress: bool = conv(boolean, default=False)
    min_free_abs: int = conv(parse_size, default=1 << 30)
    min_free_inodes: int = conv(INODES, default=10_000)
    min_free_avg: float = conv(number(0, 1000), default=2.0)
    min_keep: int = conv(integer(1, 100000), default=3)
    # At most this many pulls at once across hosts (0: no cap); a run beyond
    # it waits its turn (arrival order) up to queue_timeout, then fails with
    # exit code 8.  8: bench/FLEET.md (32 hosts at once on 2 cores: no
    # shorter night above 4, and each slot more is memory and seeks).
    max_concurrent_pulls: int = conv(integer(0, 10000), default=8)
    queue_timeout: float = conv(positive_duration, default=2 * 3600.0)
    # At most this many sessions of one host at once (all its keys together;
    # 0: no cap); one more is refused before it starts anything (exit code 4).
    max_sessions_per_host: int = conv(integer(0, 1000), default=2)
    # A probe (initiator --dry-run, check --probe): its wait for a pull slot
    # and its handshake together end within this.
    probe_timeout: float = conv(positive_duration, default=60.0)
    # Monitoring (README "Status and alerts"): commands run as the grabber user
    # with a documented environment, never with client text in their argv.
    on_success: tuple[str, ...] = conv(hook_command, default=())
    on_failure: tuple[str, ...] = conv(hook_command, default=())
    on_stale: tuple[str, ...] = conv(hook_command, default=())
    hook_timeout: float = conv(positive_duration, default=60.0)
    # node_exporter textfile that `grabber status` rewrites; "" for none.
    prometheus_file: str = conv(optional_abspath, default="")
    # `grabber status` warns, then calls it critical, below this much free in
    # the repository's filesystem: a percentage of it, or an amount.  (A
    # Threshold is frozen; ruff's RUF009 cannot know it.)
    free_warn: Threshold = conv(threshold(parse_size), default=WARN_BELOW)  # noqa: RUF009
    free_crit: Threshold = conv(threshold(parse_size), default=CRIT_BELOW)  # noqa: RUF009
    free_inodes_warn: Threshold = conv(threshold(INODES), default=WARN_BELOW)  # noqa: RUF009
    free_inodes_crit: Threshold = conv(threshold(INODES), default=CRIT_BELOW)  # noqa: RUF009
    policy: HostPolicy = HostPolicy()
    hosts: Mapping[str, HostPolicy] = dataclasses.field(default_factory=dict)

    def policy_for(self, host: str) -> HostPolicy:
        """The rules for one host: its [hosts.NAME] table, else [policy]."""
        return self.hosts.get(host, self.policy)


# --- building ----------------------------------------------------------------


def _keys(cls: type) -> list[str]:
    """The keys a table of `cls` accepts."""
    return [f.name for f in dataclasses.fields(cls) if "conv" in f.metadata]


def unknown_key_problem(key: str, known: list[str], elsewhere: Mapping[str, str]) -> str:
    """What to say about `key`, which this table does not know (pure): the
    table it belongs in, or the nearest known key (difflib's ratio, as
    git's and argparse's "did you mean" do it), or where the keys are."""
    if key in elsewhere:
        return f"unknown key here: it belongs in {elsewhere[key]}"
    near = difflib.get_close_matches(key, known, n=1)
    if near:
        return f"unknown key: did you mean {near[0]!r}?"
    return "unknown key (see config/ for the keys)"


def _refuse_unknown(
    table: Mapping[str, Any], known: list[str], where: str, elsewhere: Mapping[str, str]
) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(f"{where}{key}", unknown_key_problem(key, known, elsewhere))


def _build(
    cls: type, table: Mapping[str, Any], where: str, elsewhere: Mapping[str, str], **extra: Any
) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls) if "conv" in f.metadata}
    _refuse_unknown(table, list(known), where, elsewhere)
    values: dict[str, Any] = {}
    for key, raw in table.items():
        try:
            values[key] = known[key].metadata["conv"](raw)
        except Invalid as e:
            raise ConfigError(f"{where}{key}", str(e)) from None
    for name, f in known.items():
        if name not in values and f.default is dataclasses.MISSING:
            raise ConfigError(f"{where}{name}", "is required")
    return cls(**values, **extra)


def _belongs(cls: type, place: str, unless: list[str]) -> dict[str, str]:
    """Keys of `cls` tables, for a table where they are misplaced."""
    return {key: place for key in _keys(cls) if key not in unless}


def _load_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(path, "no such file (pass --config or create it from config/)") from None
    except PermissionError:
        raise ConfigError(path, "permission denied") from None
    except OSError as e:  # a directory, an I/O error
        raise ConfigError(path, f"cannot read: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, f"not valid TOML: {e}") from None
    except UnicodeDecodeError as e:  # tomllib decodes the whole file first
        raise ConfigError(path, f"not valid TOML: not UTF-8 at byte {e.start}") from None


def initiator_from_dict(data: Mapping[str, Any], path: str = "<config>") -> InitiatorConfig:
    table = dict(data)
    top = [*_keys(InitiatorConfig), "destination"]
    _refuse_unknown(table, top, f"{path}: ", _belongs(Destination, "[[destination]]", top))
    raw_destinations = table.pop("destination", [])
    if not isinstance(raw_destinations, list) or not raw_destinations:
        raise ConfigError(f"{path}: destination", "add at least one [[destination]] table")
    destinations = []
    in_destination = _belongs(InitiatorConfig, "the top level, before [[destination]]",
                              _keys(Destination))  # fmt: skip
    for index, raw in enumerate(raw_destinations):
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: destination", "must be [[destination]] tables")
        where = f"{path}: destination[{index}]."
        destinations.append(_build(Destination, raw, where, in_destination))
    names = [d.name for d in destinations]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ConfigError(f"{path}: destination", f"name {duplicate!r} is used twice")
    for index, dest in enumerate(destinations):
        if not dest.sources:
            raise ConfigError(f"{path}: destination[{index}].sources", "is required")
    return _build(InitiatorConfig, table, f"{path}: ", {}, path=path,
                  destinations=tuple(destinations))  # fmt: skip


def grabber_from_dict(data: Mapping[str, Any], path: str = "<config>") -> GrabberConfig:
    from pullsnap.errors import BindingError
    from pullsnap.names import check_host_name

    table = dict(data)
    top = [*_keys(GrabberConfig), "policy", "hosts"]
    _refuse_unknown(table, top, f"{path}: ", _belongs(HostPolicy, "[policy] or [hosts.NAME]", top))
    defaults = table.pop("policy", {})
    per_host = table.pop("hosts", {})
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: policy", "must be a [policy] table")
    if not isinstance(per_host, dict):
        raise ConfigError(f"{path}: hosts", "must be [hosts.NAME] tables")
    in_policy = _belongs(GrabberConfig, "the top level, before [policy]", _keys(HostPolicy))
    policy = _build(HostPolicy, defaults, f"{path}: policy.", in_policy)
    hosts: dict[str, HostPolicy] = {}
    for name, overrides in per_host.items():
        try:
            check_host_name(name)
        except BindingError as e:
            raise ConfigError(f"{path}: hosts.{name}", str(e)) from None
        if not isinstance(overrides, dict):
            raise ConfigError(f"{path}: hosts.{name}", "must be a table")
        where = f"{path}: hosts.{name}."
        hosts[name] = _build(HostPolicy, {**defaults, **overrides}, where, in_policy)
    return _build(GrabberConfig, table, f"{path}: ", {}, path=path, policy=policy, hosts=hosts)


def load_initiator(path: str = DEFAULT_INITIATOR_CONFIG) -> InitiatorConfig:
    return initiator_from_dict(_load_toml(path), path)


def load_grabber(path: str = DEFAULT_GRABBER_CONFIG) -> GrabberConfig:
    return grabber_from_dict(_load_toml(path), path)
