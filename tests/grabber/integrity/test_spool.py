"""The spool: records in any order, back sorted, on disk past its limit."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pullsnap.grabber.integrity import spool
from pullsnap.grabber.integrity.spool import Spool

# Paths and values never hold a NUL (the record separator).
names = st.binary(max_size=40).map(lambda b: b.replace(b"\0", b"\1"))


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(names, names), max_size=300), st.integers(min_value=150, max_value=4000))
def test_records_come_back_sorted_whatever_the_order_and_the_limit(
    records: list[tuple[bytes, bytes]], limit: int
) -> None:
    held = Spool(limit=limit)
    try:
        for key, value in records:
            held.add(key, value)
        assert list(held.items()) == sorted(records)
        assert list(held.items()) == sorted(records), "read again, the same"
        assert list(held) == sorted(key for key, _ in records)
        assert len(held) == len(records)
    finally:
        held.close()


def test_past_its_limit_a_spool_holds_runs_in_unnamed_files_of_its_directory(
    tmp_path: Path,
) -> None:
    before = _open_fds()
    held = Spool(str(tmp_path), limit=4096)
    keys = [f"dir{i % 97:03d}/file{i:06d}".encode() for i in range(20_000)]
    random.Random(5).shuffle(keys)
    for key in keys:
        held.add(key, b"v" + key[-3:])
    assert len(held._chunk) * (spool.OVERHEAD + 20) < 4096 + 200, "memory stays near the limit"
    assert os.listdir(tmp_path) == [], "runs have no names"
    # Many more runs were written than stay open: FAN of a level merge into one.
    assert len(held._runs) < 3 * spool.FAN
    out = list(held.items())
    assert [key for key, _ in out] == sorted(keys)
    assert all(value == b"v" + key[-3:] for key, value in out)
    held.close()
    assert _open_fds() == before, "closing frees every run"


def test_records_in_order_go_to_one_run_and_are_not_sorted_again(tmp_path: Path) -> None:
    held = Spool(str(tmp_path), limit=2048)
    keys = [f"a/{i:07d}".encode() for i in range(10_000)]
    for key in keys:
        held.add(key)
    assert len(held._runs) == 1
    assert list(held) == keys
    held.close()


def test_a_run_that_cannot_be_written_fails_the_reader_not_the_writer(tmp_path: Path) -> None:
    held = Spool(str(tmp_path / "gone"), limit=1024)
    for i in range(1000):  # the spill fails; adding goes on quietly
        held.add(b"%06d" % (1000 - i))
    assert isinstance(held.error, FileNotFoundError)
    with pytest.raises(FileNotFoundError):
        list(held.items())
    held.close()
