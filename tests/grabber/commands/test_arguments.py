"""Argument types of the command line (commands/arguments.py): a domain
converter's complaint becomes argparse's one-line usage error."""

from __future__ import annotations

import argparse

import pytest

from pullsnap.grabber.commands import arguments


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="grabber")
    p.add_argument("--max-age", type=arguments.duration)
    p.add_argument("--sample", type=arguments.fraction)
    p.add_argument("host", type=arguments.host)
    return p


def test_good_values_convert() -> None:
    args = _parser().parse_args(["--max-age", "36h", "--sample", "0.05", "web1"])
    assert (args.max_age, args.sample, args.host) == (36 * 3600.0, 0.05, "web1")


@pytest.mark.parametrize(
    "argv, complaint",
    [(["--max-age", "0", "web1"], "must be more than zero"),
     (["--max-age", "soon", "web1"], "is not a duration"),
     (["--sample", "2", "web1"], "at most 1"), (["--sample", "x", "web1"], "is not a number"),
     (["../etc"], "is not allowed")],
)  # fmt: skip
def test_bad_values_are_one_usage_line(argv: list[str], complaint: str, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        _parser().parse_args(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert complaint in err[-1] and err[-1].startswith("grabber: error: argument")
