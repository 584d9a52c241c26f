"""The shipped sample configurations and README's configuration tables say
what the code does: every key the parser accepts is there, once, with the
default the code has (read from the dataclasses, never written down here).

A sample's setting lines are `key = value` or `# key = value` (commented out);
lines indented inside a comment (`#   key = value`) are examples.  README's
tables read like TOML: a row that starts with `[policy]` or `[[destination]]`
opens that table, and later rows belong to it; a default is a backticked
value, `-` (required) or `none` (empty; one `none` covers the row)."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pullsnap import config
from pullsnap.config import Destination, GrabberConfig, HostPolicy, InitiatorConfig
from pullsnap.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

# Which dataclass a table's keys go to, per role ("" is the top level).
TABLES: dict[str, dict[str, type]] = {
    "initiator": {"": InitiatorConfig, "[[destination]]": Destination},
    "grabber": {"": GrabberConfig, "[policy]": HostPolicy},
}
_HEADER_RE = re.compile(r"^#? ?(\[\[?[a-z_.0-9]+\]\]?)\s*(?:#.*)?$")
_SETTING_RE = re.compile(r"^(?:# )?([a-z_]+) = (.+)$")


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if "conv" in f.metadata}


def _required(cls: type) -> set[str]:
    """Keys without which the parser refuses the file, asked of the parser."""
    needed = {name for name, f in _fields(cls).items() if f.default is dataclasses.MISSING}
    if cls is Destination:
        # Fields with a default that initiator_from_dict still insists on.
        minimal = {"name": "vault", "host": "vault", "sources": ["/etc"]}
        for key in minimal:
            less = {k: v for k, v in minimal.items() if k != key}
            try:
                config.initiator_from_dict({"destination": [less]})
            except ConfigError as e:
                needed |= {key} if str(e).endswith(f"{key}: is required") else set()
    return needed


def _convert(cls: type, key: str, value: Any) -> Any:
    return _fields(cls)[key].metadata["conv"](value)


def _default(cls: type, key: str) -> Any:
    return _fields(cls)[key].default


def sample_settings(text: str, tables: dict[str, type]) -> Iterator[tuple[str, str, Any]]:
    """(table, key, value) for each setting line of a sample file."""
    table = ""
    for line in text.splitlines():
        header = _HEADER_RE.match(line)
        if header:
            table = header.group(1)
            continue
        setting = _SETTING_RE.match(line)
        if setting and table in tables:
            toml = line.removeprefix("# ")
            (key, value), *_ = tomllib.loads(toml).items()
            yield table, key, value


@pytest.mark.parametrize("role", sorted(TABLES))
def test_every_key_is_in_the_sample_once_with_the_codes_default(role: str) -> None:
    tables = TABLES[role]
    text = (ROOT / "config" / f"{role}.toml").read_text()
    seen: dict[tuple[str, str], Any] = {}
    for table, key, value in sample_settings(text, tables):
        cls = tables[table]
        assert key in _fields(cls), f"{role}.toml: {table or 'top level'}: {key} is not a key"
        assert (table, key) not in seen, f"{role}.toml: {key} is set twice"
        seen[(table, key)] = value
    for table, cls in tables.items():
        required = _required(cls)
        for key in _fields(cls):
            where = f"config/{role}.toml {table or 'top level'}: {key}"
            assert (table, key) in seen, f"{where} is missing"
            if key not in required:
                assert _convert(cls, key, seen[(table, key)]) == _default(cls, key), where
    # And the whole sample is a configuration the parser takes as it is.
    load = config.load_initiator if role == "initiator" else config.load_grabber
    load(str(ROOT / "config" / f"{role}.toml"))


def readme_rows(role: str) -> Iterator[tuple[str, list[str], str]]:
    """(table, keys, default cell) for each row of README's table for `role`."""
    start = README.index(f"\n{role.capitalize()} (`/etc/pullsnap/{role}.toml`):\n")
    lines = README[start:].split("\n\n", 2)[1].splitlines()
    table = ""
    for line in lines[2:]:
        first, defaults = line.split(" | ")[:2]
        marker = re.match(r"^\| `(\[\[?[a-z_]+\]\]?)`", first)
        table = marker.group(1) if marker else table
        keys = [k for k in re.findall(r"`([a-z_]+)`", first)]
        yield table, keys, defaults


def readme_value(item: str) -> tuple[str, Any]:
    """("value", v) for a backticked literal, ("required", None) for -,
    ("empty", None) for none."""
    if item == "-":
        return "required", None
    if item == "none":
        return "empty", None
    literal = item.strip("`")
    try:
        return "value", tomllib.loads(f"v = {literal}")["v"]
    except tomllib.TOMLDecodeError:
        return "value", literal  # a bare word: pullsnap, 20s, /usr/bin/rsync


@pytest.mark.parametrize("role", sorted(TABLES))
def test_readmes_configuration_table_has_the_codes_defaults(role: str) -> None:
    tables = TABLES[role]
    seen = set()
    for table, keys, cell in readme_rows(role):
        cls = tables[table]
        items = re.findall(r"(?:^|, )(`[^`]*`|-|none)", cell)
        items = items * len(keys) if items == ["none"] else items  # "none" for all of them
        assert len(items) == len(keys), f"README {role}: {keys} has defaults {cell!r}"
        for key, item in zip(keys, items, strict=True):
            where = f"README {role} {table or 'top level'}: {key}"
            assert key in _fields(cls), f"{where} is not a key"
            assert (table, key) not in seen, f"{where} is listed twice"
            seen.add((table, key))
            kind, value = readme_value(item)
            if kind == "required":
                assert key in _required(cls), f"{where} has a default"
            elif kind == "empty":
                assert not _default(cls, key), f"{where}: the default is not empty"
            else:
                assert _convert(cls, key, value) == _default(cls, key), where
    missing = {(t, k) for t, cls in tables.items() for k in _fields(cls)} - seen
    assert not missing, f"README {role} table lacks {sorted(missing)}"


def test_the_readers_of_samples_and_readme_see_what_is_there() -> None:
    """The parsers above on a small example each, so a format drift fails here."""
    text = 'a = 1\n# b = "2s"    # why\n#   c = 3\n[policy]\n# d = true\n# [hosts.x]\ne = 4\n'
    tables = {"": GrabberConfig, "[policy]": HostPolicy}
    assert list(sample_settings(text, tables)) == [("", "a", 1), ("", "b", "2s"),
                                                   ("[policy]", "d", True)]  # fmt: skip
    assert readme_value("`2m`") == ("value", "2m")
    assert readme_value('`""`') == ("value", "")
    assert readme_value("`[]`") == ("value", [])
    assert readme_value("`2.0`") == ("value", 2.0)
    assert readme_value("-") == ("required", None)
    assert _required(Destination) == {"name", "host", "sources"}
    assert _required(GrabberConfig) == set()
