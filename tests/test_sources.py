"""What may be backed up and left out (sources.py, pure).  The same words
reach an operator as a configuration error and a peer as a refused handoff."""

from __future__ import annotations

import pytest

from pullsnap import configvalues, errors, handoff, sources


@pytest.mark.parametrize(
    "path, problem",
    [("etc", "is not absolute"), ("/etc/*", "glob characters"), ("/etc\n", "control characters"),
     ("/etc//x", "not normalised"), ("/a/../b", "not normalised"),
     ("/" + "a" * sources.MAX_PATH_LEN, "longer than")],
)  # fmt: skip
def test_bad_source_paths(path: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        sources.check_source_path(path)
    with pytest.raises(errors.HandoffError, match=problem):
        handoff.check_source_path(path)


@pytest.mark.parametrize("path", ["/", "/etc", "/home/alice/.config", "/srv/with space"])
def test_good_source_paths(path: str) -> None:
    sources.check_source_path(path)
    handoff.check_source_path(path)


@pytest.mark.parametrize(
    "pattern, problem",
    [("", "empty or too long"), ("x" * (sources.MAX_EXCLUDE_LEN + 1), "empty or too long"),
     ("+ /etc", "filter rule"), ("!", "filter rule"), ("merge /x", "filter rule"),
     ("a\tb", "control characters")],
)  # fmt: skip
def test_bad_excludes(pattern: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        sources.check_exclude(pattern)
    with pytest.raises(configvalues.Invalid, match=problem):
        configvalues.exclude_pattern(pattern)


def test_the_configuration_says_the_problem_without_bad_handoff() -> None:
    with pytest.raises(configvalues.Invalid) as bad:
        configvalues.source_path("/etc/*")
    assert str(bad.value) == "source path '/etc/*' contains glob characters"
