"""key=value log lines: every line splits back into the pairs it was made of."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pullsnap import logfmt

KEYS = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
VALUES = st.one_of(st.text(max_size=40), st.integers(), st.booleans())


def test_plain_values_stay_bare_and_others_are_quoted() -> None:
    pairs = [("dest", "vault"), ("exit", 0), ("seconds", 1.25), ("ok", True),
             ("message", 'said "no" = bad'), ("empty", ""), ("skipped", None)]  # fmt: skip
    line = logfmt.line(pairs)
    assert line == 'dest=vault exit=0 seconds=1.25 ok=true message="said \\"no\\" = bad" empty=""'


@given(st.dictionaries(KEYS, VALUES, max_size=8))
def test_round_trip(pairs: dict) -> None:
    line = logfmt.line(pairs.items())
    assert "\n" not in line and line.isprintable(), "a terminal shows it as text"
    expected = {k: logfmt.value_text(v).strip('"') if not isinstance(v, str) else v
                for k, v in pairs.items()}  # fmt: skip
    assert logfmt.parse(line) == expected


def test_controls_json_leaves_raw_are_escaped_too() -> None:
    """JSON escapes only U+0000-001F: DEL, C1 controls (U+009B is CSI) and
    invisible format characters would reach a terminal as they are."""
    value = "a\x7fb\x9b1Ac\u202ed\U000e0001é"
    line = logfmt.line([("message", value)])
    assert line == 'message="a\\u007fb\\u009b1Ac\\u202ed\\udb40\\udc01é"'
    assert logfmt.parse(line) == {"message": value}


@pytest.mark.parametrize("bad", ["Dest=x", "a b", "", "1x"])
def test_bad_keys_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        logfmt.line([(bad, "v")])


def test_garbage_is_not_parsed() -> None:
    with pytest.raises(ValueError):
        logfmt.parse('dest=x "dangling')
