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
