"""Converters for configuration values (pure): each takes what TOML gave and
returns the checked value or raises `Invalid` with the problem in words;
`pullsnap.config` adds the file and key.  A dataclass field names its
converter with `conv(...)`.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pullsnap import ioprio, sources

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_DURATION_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(s|m|h|d|w)?$")
_SIZE_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]?)(i?B)?$", re.IGNORECASE)
_DURATION_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


class Invalid(ValueError):
    """A converter's complaint; `_build` adds file and key."""


# --- converters --------------------------------------------------------------


def a_string(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(f"must be a string, not {type(value).__name__}")
    if "\0" in value or "\n" in value:
        raise Invalid("must not contain NUL or newline")
    return value


def abspath(value: Any) -> str:
    text = a_string(value)
    if not text.startswith("/"):
        raise Invalid(f"{text!r} must be an absolute path")
    return os.path.normpath(text)


def optional_abspath(value: Any) -> str:
    return "" if value == "" else abspath(value)


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("must be true or false")
    return value


def integer(low: int, high: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid("must be an integer")
        if not low <= value <= high:
            raise Invalid(f"must be between {low} and {high}")
        return value

    return convert


def number(low: float, high: float) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid("must be a number")
        if not low <= value <= high:
            raise Invalid(f"must be between {low} and {high}")
        return float(value)

    return convert


def parse_duration(value: Any) -> float:
    """Seconds from 90, 1.5, "90s", "5m", "36h", "7d", "2w"."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION_RE.match(value.strip())):
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise Invalid(f"{value!r} is not a duration (use seconds or e.g. '90s', '5m', '36h')")
    if not math.isfinite(seconds):
        raise Invalid(f"{value!r} is not a duration (every wait needs a finite deadline)")
    if seconds < 0:
        raise Invalid("must not be negative")
    return seconds


def positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise Invalid("must be more than zero")
    return seconds


def parse_size(value: Any) -> int:
    """Bytes from 1024, "512M", "10G", "1.5TiB"."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and (match := _SIZE_RE.match(value.strip())):
        return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])
    raise Invalid(f"{value!r} is not a size (use bytes or e.g. '512M', '10G')")


@dataclass(frozen=True)
class Threshold:
    """An amount, or a percentage of a whole ("10%"): a monitoring limit."""

    amount: float
    percent: bool = False

    def of(self, whole: int) -> int:
        return int(whole * self.amount / 100) if self.percent else int(self.amount)

    def __str__(self) -> str:
        return f"{self.amount:g}%" if self.percent else f"{int(self.amount):,}"


_PERCENT_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*%$")


def threshold(parse: Callable[[Any], int]) -> Callable[[Any], Threshold]:
    """A percentage ("5%", of the filesystem) or what `parse` reads."""

    def convert(value: Any) -> Threshold:
        if isinstance(value, str) and (match := _PERCENT_RE.match(value.strip())):
            percent = float(match.group(1))
            if percent > 100:
                raise Invalid(f"{value!r} is more than 100%")
            return Threshold(percent, True)
        try:
            return Threshold(parse(value))
        except Invalid:
            raise Invalid(f"{value!r} is neither a percentage ('5%') nor an amount") from None

    return convert


def host_label(value: Any) -> str:
    text = a_string(value)
    if not _NAME_RE.match(text):
        raise Invalid(f"{text!r} must be lowercase letters, digits, '-' or '_', at most 63")
    return text


_DNS_NAME_RE = re.compile(
    r"^(?=.{1,253}\.?\Z)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_][A-Za-z0-9_-]{0,62})*\.?\Z"
)


def host_name(value: Any) -> str:
    """A DNS name or an IP address: what ssh and the door may be given."""
    text = a_string(value)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not _DNS_NAME_RE.match(text):
        raise Invalid(f"{text!r} is not a host name or an IP address")
    return text


def user_name(value: Any) -> str:
    text = a_string(value)
    if not _USER_RE.match(text):
        raise Invalid(f"{text!r} is not a valid user name")
    return text


def ip_address(value: Any) -> str:
    text = a_string(value)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise Invalid(f"{text!r} is not an IP address") from None


def listen_address(value: Any) -> str:
    text = a_string(value)
    if text in ("", "*"):
        return ""
    return ip_address(text)


def choice(*choices: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = a_string(value)
        if text not in choices:
            raise Invalid(f"{text!r} must be one of {', '.join(choices)}")
        return text

    return convert


def ionice(value: Any) -> str:
    text = a_string(value)
    try:
        ioprio.ioprio_value(text)
    except ValueError:
        raise Invalid(f"{text!r} must be none, idle, best-effort[:0-7] or realtime[:0-7]") from None
    return text


def list_of(conv: Callable[[Any], Any], at_least: int = 0) -> Callable[[Any], tuple]:
    def convert(value: Any) -> tuple:
        if not isinstance(value, list):
            raise Invalid("must be a list")
        if len(value) < at_least:
            raise Invalid(f"needs at least {at_least} entr{'y' if at_least == 1 else 'ies'}")
        return tuple(conv(item) for item in value)

    return convert


def source_path(value: Any) -> str:
    text = a_string(value)
    bare = text.rstrip("/") or "/"  # a trailing slash is harmless
    if bare.startswith("/") and os.path.normpath(bare) != bare:
        raise Invalid(f"{text!r} is not normalised (write {os.path.normpath(bare)!r})")
    text = abspath(text)
    try:
        sources.check_source_path(text)
    except ValueError as e:
        raise Invalid(str(e)) from None
    return text


def exclude_pattern(value: Any) -> str:
    text = a_string(value)
    try:
        sources.check_exclude(text)
    except ValueError as e:
        raise Invalid(str(e)) from None
    return text


def hook_command(value: Any) -> tuple[str, ...]:
    """A hook command: a string runs with /bin/sh -c, a list is the argv itself."""
    if isinstance(value, str):
        text = a_string(value).strip()
        return ("/bin/sh", "-c", text) if text else ()
    words = list_of(a_string)(value)
    if words and not words[0]:
        raise Invalid("the program (first word) must not be empty")
    return words


def conv(conv: Callable[[Any], Any], **kwargs: Any) -> Any:
    return field(metadata={"conv": conv}, **kwargs)
