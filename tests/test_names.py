"""Host names and addresses that become paths (names.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pullsnap import errors
from pullsnap.names import check_host_name, normalise_address


@pytest.mark.parametrize("name", ["web1", "db-2.example.org", "a", "0", "a" * 63])
def test_safe_names_pass(name: str) -> None:
    assert check_host_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "Web1", "-web", "web-", ".web", "web.", "a..b", "../etc", "a/b", "latest", "lock",
     "trash", "a" * 64, "web 1", "web\n", "wéb", None, 1],
)  # fmt: skip
def test_unsafe_names_are_refused_with_the_rule(name) -> None:
    with pytest.raises(errors.BindingError, match="lowercase letters"):
        check_host_name(name)


@given(st.text(max_size=70))
def test_a_passed_name_is_always_one_plain_path_component(name: str) -> None:
    try:
        check_host_name(name)
    except errors.BindingError:
        return
    assert "/" not in name and name not in (".", "..") and not name.startswith(("-", "."))


@pytest.mark.parametrize(
    "address, canonical",
    [("127.0.0.1", "127.0.0.1"), ("::ffff:192.0.2.7", "192.0.2.7"), ("fe80::1%eth0", "fe80::1"),
     ("2001:DB8:0:0::1", "2001:db8::1")],
)  # fmt: skip
def test_addresses_are_canonical(address: str, canonical: str) -> None:
    assert normalise_address(address) == canonical


def test_an_address_that_is_not_one_raises_value_error() -> None:
    with pytest.raises(ValueError):
        normalise_address("vault")
