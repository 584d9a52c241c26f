"""What the handlers share: the configuration, and argument types that turn
a domain converter's complaint into argparse's one-line usage error."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from pullsnap import errors
from pullsnap.config import GrabberConfig, load_grabber
from pullsnap.configvalues import positive_duration
from pullsnap.names import check_host_name

T = TypeVar("T")


def config(args: argparse.Namespace) -> GrabberConfig:
    """The grabber configuration `--config` names, loaded once per command."""
    return load_grabber(args.config)


def checked(convert: Callable[[str], T]) -> Callable[[str], T]:
    """argparse type= for a converter that raises ValueError or a PullsnapError."""

    def argument(text: str) -> T:
        try:
            return convert(text)
        except (ValueError, errors.PullsnapError) as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    argument.__name__ = convert.__name__
    return argument


host = checked(check_host_name)
duration = checked(positive_duration)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise ValueError("must be more than 0 and at most 1")
    return value


fraction = checked(_fraction)
