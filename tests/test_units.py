"""Human-readable sizes and durations."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pullsnap.units import human_duration, human_size


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (10 * 1024**2, "10.0 MiB"),
        (3 * 1024**3 // 2, "1.5 GiB"),
        (2 * 1024**4, "2.0 TiB"),
        (5000 * 1024**4, "5000.0 TiB"),
    ],
)
def test_human_size(n: int, text: str) -> None:
    assert human_size(n) == text


@given(n=st.integers(0, 1023))
def test_small_sizes_stay_exact(n: int) -> None:
    assert human_size(n) == f"{n} B"


@given(n=st.integers(1024, 2**60))
def test_large_sizes_are_within_rounding(n: int) -> None:
    number, unit = human_size(n).split()
    scale = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}[unit]
    # One decimal: off by at most half of 0.1 (ties round to even, e.g. 12.25 -> 12.2).
    assert abs(float(number) * scale - n) <= 0.05 * scale * (1 + 1e-9)
    if unit != "TiB":
        assert 1.0 <= float(number) < 1024.05


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0.0 s"),
        (3.2, "3.2 s"),
        (59, "59.0 s"),
        (60, "1m00s"),
        (125, "2m05s"),
        (3599, "59m59s"),
        (3600, "1h00m"),
        (7300, "2h01m"),
        (47 * 3600 + 59 * 60, "47h59m"),
        (48 * 3600, "2d00h"),
        (9 * 86400 + 5 * 3600, "9d05h"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text
