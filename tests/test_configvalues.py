"""Configuration value converters (configvalues.py): what each accepts, what
each refuses and in which words."""

from __future__ import annotations

import math

import pytest

from pullsnap import configvalues as cv
from pullsnap.configvalues import Invalid, Threshold


@pytest.mark.parametrize("bad", [1, None, b"x", "a\0b", "a\nb"])
def test_a_string_refuses_other_types_nul_and_newline(bad) -> None:
    with pytest.raises(Invalid):
        cv.a_string(bad)


def test_abspath_normalises_and_refuses_relative_paths() -> None:
    assert cv.abspath("/srv//pullsnap/./x/") == "/srv/pullsnap/x"
    with pytest.raises(Invalid, match="must be an absolute path"):
        cv.abspath("srv/pullsnap")
    assert cv.optional_abspath("") == ""
    assert cv.optional_abspath("/a/../b") == "/b"


def test_boolean_is_strict() -> None:
    assert cv.boolean(True) is True
    for bad in (1, 0, "true", None):
        with pytest.raises(Invalid, match="true or false"):
            cv.boolean(bad)


def test_integer_refuses_bools_floats_and_out_of_range() -> None:
    convert = cv.integer(1, 10)
    assert convert(1) == 1 and convert(10) == 10
    for bad in (True, 2.0, "3"):
        with pytest.raises(Invalid, match="must be an integer"):
            convert(bad)
    with pytest.raises(Invalid, match="between 1 and 10"):
        convert(11)


def test_number_takes_ints_and_floats_as_floats() -> None:
    convert = cv.number(0, 1)
    assert convert(1) == 1.0 and isinstance(convert(1), float)
    assert convert(0.25) == 0.25
    with pytest.raises(Invalid, match="must be a number"):
        convert(False)
    with pytest.raises(Invalid, match="between 0 and 1"):
        convert(1.5)


@pytest.mark.parametrize(
    "value, seconds",
    [(90, 90.0), (1.5, 1.5), ("90s", 90.0), ("5m", 300.0), ("36h", 129600.0),
     ("7d", 604800.0), ("2w", 1209600.0), (" 10 ", 10.0), ("0.5m", 30.0), (0, 0.0)],
)  # fmt: skip
def test_durations(value, seconds: float) -> None:
    assert cv.parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value, problem",
    [("5 minutes", "not a duration"), ("1y", "not a duration"), (True, "not a duration"),
     (math.inf, "finite deadline"), (math.nan, "finite deadline"), (-1, "negative"),
     ("", "not a duration"), (None, "not a duration")],
)  # fmt: skip
def test_bad_durations_say_what_is_wrong(value, problem: str) -> None:
    with pytest.raises(Invalid, match=problem):
        cv.parse_duration(value)


def test_a_positive_duration_is_more_than_zero() -> None:
    assert cv.positive_duration("1s") == 1.0
    with pytest.raises(Invalid, match="more than zero"):
        cv.positive_duration(0)


@pytest.mark.parametrize(
    "value, size",
    [(1024, 1024), (0, 0), ("512M", 512 << 20), ("10G", 10 << 30), ("1.5TiB", 3 << 39),
     ("2k", 2048), ("100", 100), ("4 GB", 4 << 30)],
)  # fmt: skip
def test_sizes(value, size: int) -> None:
    assert cv.parse_size(value) == size


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10X", "G", "", "-5M", None])
def test_bad_sizes_are_refused(bad) -> None:
    with pytest.raises(Invalid, match="not a size"):
        cv.parse_size(bad)


def test_a_threshold_is_a_percentage_or_an_amount() -> None:
    convert = cv.threshold(cv.parse_size)
    assert convert("5%") == Threshold(5.0, True)
    assert convert("5%").of(1000) == 50
    assert convert("1G") == Threshold(1 << 30)
    assert convert("1G").of(10) == 1 << 30  # an amount ignores the whole
    assert str(Threshold(12.5, True)) == "12.5%"
    assert str(Threshold(1234567)) == "1,234,567"
    with pytest.raises(Invalid, match="more than 100%"):
        convert("101%")
    with pytest.raises(Invalid, match="neither a percentage"):
        convert("lots")


@pytest.mark.parametrize("good", ["web1", "db-2", "a_b", "0"])
def test_host_labels(good: str) -> None:
    assert cv.host_label(good) == good


@pytest.mark.parametrize("bad", ["Web1", "-web", "", "a" * 64, "web.1", "../x"])
def test_bad_host_labels(bad: str) -> None:
    with pytest.raises(Invalid, match="lowercase"):
        cv.host_label(bad)


def test_host_name_takes_dns_names_and_canonical_addresses() -> None:
    assert cv.host_name("vault.example.org") == "vault.example.org"
    assert cv.host_name("vault.example.org.") == "vault.example.org."
    assert cv.host_name("::0001") == "::1"
    for bad in ("a b", "-x", "x..y", "a" * 64 + ".org", "x/y"):
        with pytest.raises(Invalid, match="not a host name"):
            cv.host_name(bad)


def test_user_names() -> None:
    assert cv.user_name("pullsnap") == "pullsnap"
    for bad in ("Root", "1user", "a" * 33, "a b", ""):
        with pytest.raises(Invalid, match="not a valid user name"):
            cv.user_name(bad)


def test_addresses() -> None:
    assert cv.ip_address("127.000.0.1".replace("000", "0")) == "127.0.0.1"
    assert cv.ip_address("2001:db8:0::1") == "2001:db8::1"
    with pytest.raises(Invalid, match="not an IP address"):
        cv.ip_address("localhost")
    assert cv.listen_address("") == "" and cv.listen_address("*") == ""
    assert cv.listen_address("::") == "::"


def test_choice() -> None:
    convert = cv.choice("super", "fake-super")
    assert convert("super") == "super"
    with pytest.raises(Invalid, match="one of super, fake-super"):
        convert("auto")


def test_list_of_converts_each_item_and_counts() -> None:
    convert = cv.list_of(cv.abspath, at_least=1)
    assert convert(["/a/", "/b"]) == ("/a", "/b")
    with pytest.raises(Invalid, match="must be a list"):
        convert("/a")
    with pytest.raises(Invalid, match="at least 1 entry"):
        convert([])
    with pytest.raises(Invalid, match="at least 2 entries"):
        cv.list_of(cv.a_string, at_least=2)(["x"])
    with pytest.raises(Invalid, match="absolute"):
        convert(["/a", "b"])


def test_a_source_path_must_be_written_normalised() -> None:
    assert cv.source_path("/etc/") == "/etc"
    assert cv.source_path("/") == "/"
    with pytest.raises(Invalid, match="write '/etc'"):
        cv.source_path("/var/../etc")
    with pytest.raises(Invalid, match="absolute"):
        cv.source_path("etc")


def test_hook_commands() -> None:
    assert cv.hook_command("  pg_dump x > y ") == ("/bin/sh", "-c", "pg_dump x > y")
    assert cv.hook_command("   ") == ()
    assert cv.hook_command(["/usr/bin/true", "a b"]) == ("/usr/bin/true", "a b")
    assert cv.hook_command([]) == ()
    with pytest.raises(Invalid, match="first word"):
        cv.hook_command(["", "x"])
    with pytest.raises(Invalid, match="must be a list"):
        cv.hook_command(3)


def test_conv_names_the_converter_in_the_field_metadata() -> None:
    f = cv.conv(cv.boolean, default=False)
    assert f.metadata["conv"] is cv.boolean and f.default is False
