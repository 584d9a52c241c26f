"""flock(2) without waiting (flock.py)."""

from __future__ import annotations

import os

import pytest

from pullsnap.flock import try_flock


def test_a_second_holder_is_told_no_and_may_take_it_once_free(tmp_path) -> None:
    path = str(tmp_path / "lock")
    first = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    second = os.open(path, os.O_RDWR)  # its own open file description
    try:
        assert try_flock(first)
        assert not try_flock(second)
        assert not try_flock(second, shared=True)
        os.close(first)
        first = -1
        assert try_flock(second, shared=True)
    finally:
        for fd in (first, second):
            if fd >= 0:
                os.close(fd)


def test_other_failures_are_raised(tmp_path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY)
    os.close(fd)  # a closed descriptor: EBADF, not "held by another"
    with pytest.raises(OSError):
        try_flock(fd)
