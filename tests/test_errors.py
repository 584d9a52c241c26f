"""Typed errors (errors.py): a message template and an exit code per class."""

from __future__ import annotations

import pytest

from pullsnap import errors


@pytest.mark.parametrize(
    "error, text, code",
    [(errors.ConfigError("/etc/pullsnap/grabber.toml", "repository: must be absolute"),
      "/etc/pullsnap/grabber.toml: repository: must be absolute", errors.USAGE),
     (errors.ClientKeyError("is encrypted"), "bad handoff: client_key is encrypted",
      errors.REFUSED),
     (errors.HandoffTimeout(), "the handoff did not arrive in time", errors.TIMEOUT),
     (errors.NoSuchHost("web9", "/srv/pullsnap", "grabber list"),
      "no host 'web9' in /srv/pullsnap (see: grabber list)", errors.USAGE),
     (errors.NotOurSnapshot("/srv/pullsnap/web1", "x"),
      "/srv/pullsnap/web1/x does not look like a pullsnap snapshot", errors.FAILED),
     (errors.Unreadable("/srv/x", "Permission denied"), "cannot read /srv/x: Permission denied",
      errors.FAILED)],
)  # fmt: skip
def test_the_template_makes_the_one_line_and_the_class_the_exit_code(
    error: errors.PullsnapError, text: str, code: int
) -> None:
    assert str(error) == text and error.exit_code == code


def test_every_exit_code_has_a_name() -> None:
    codes = {v for k, v in vars(errors).items() if k.isupper() and isinstance(v, int)}
    assert codes == set(errors.EXIT_NAMES)
    assert len(set(errors.EXIT_NAMES.values())) == len(errors.EXIT_NAMES)


def test_a_deletion_refusal_is_one_kind_of_error() -> None:
    for cls in (errors.NotOurSnapshot, errors.NewestGood, errors.NotADirectory):
        assert issubclass(cls, errors.DeletionRefused)


# --- the two tiers the module's docstring describes ----------------------------------

import inspect  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

PACKAGE = Path(errors.__file__).parent
KINDS = {"PullsnapError", "UsageError", "RunFailed", "Refused", "GateRefused", "BindingError",
         "Unreachable", "Timeout", "Locked", "NoSpace", "TooSoon", "DeletionRefused"}  # fmt: skip


def _classes() -> dict[str, type[errors.PullsnapError]]:
    return {name: cls for name, cls in vars(errors).items()
            if inspect.isclass(cls) and issubclass(cls, errors.PullsnapError)}  # fmt: skip


def test_kinds_have_the_open_template_and_specific_errors_a_real_one() -> None:
    for name, cls in _classes().items():
        template = (cls.__doc__ or "").strip()
        assert (template == "{}") is (name in KINDS), name
        assert cls.exit_code in errors.EXIT_NAMES, name


def _raises() -> list[tuple[str, str, str]]:
    """(module, class named, the text up to the closing parenthesis) per raise."""
    found = []
    for module in PACKAGE.rglob("*.py"):
        text = module.read_text()
        for match in re.finditer(r"raise (?:errors\.)?(\w+)\(((?:[^()]|\([^()]*\))*)\)", text):
            found.append((str(module.relative_to(PACKAGE)), match.group(1), match.group(2)))
    return found


def test_nothing_raises_the_base_class() -> None:
    assert [m for m, cls, _ in _raises() if cls == "PullsnapError"] == []


def test_a_kind_is_not_raised_with_the_words_of_a_specific_error() -> None:
    """Where a specific error fits it is used: its template's words do not
    appear in a raise of its kind."""
    clashes = []
    for name, cls in _classes().items():
        if name in KINDS:
            continue
        words = max(re.split(r"\{[^}]*\}", (cls.__doc__ or "").strip()), key=len).strip()
        if len(words) < 10:
            continue
        kinds = {k.__name__ for k in cls.__mro__ if k.__name__ in KINDS}
        clashes += [(module, kind, words) for module, kind, args in _raises()
                    if kind in kinds and words in args]  # fmt: skip
    assert clashes == []


def test_no_such_snapshot_names_the_host_twice() -> None:
    e = errors.NoSuchSnapshot("web1", "2026-01-01T000000Z")
    assert str(e) == "web1 has no snapshot '2026-01-01T000000Z' (see: grabber list web1)"
    assert e.exit_code == errors.USAGE and isinstance(e, errors.UsageError)
