"""May this host run now (admission.py): when the last snapshot began, and
an operator's one-time allowance.  The interval itself: test_flooding."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from pullsnap import errors
from pullsnap.grabber.run import admission
from pullsnap.grabber.store.repository import HostRepo, classify

T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def test_the_last_start_is_the_newest_run_that_made_a_snapshot() -> None:
    attempts = [
        classify("2026-11-24T120000Z", {"state": "complete", "begin": "2026-11-24T12:00:05Z"},
                 True, False),
        classify("2026-11-25T110000Z", {"state": "failed"}, False, True),  # made nothing
        classify("2026-11-25T113000Z", {"state": "partial", "begin": "garbled"}, True, False),
    ]  # fmt: skip
    assert admission.last_snapshot_start(attempts) == T0 - dt.timedelta(minutes=30)  # the name
    assert admission.last_snapshot_start(attempts[:2]) == dt.datetime(
        2026, 11, 24, 12, 0, 5, tzinfo=dt.UTC
    )
    assert admission.last_snapshot_start([]) is None


def test_too_soon_is_refused_once_allowed_then_refused_again(tmp_path) -> None:
    host = HostRepo(str(tmp_path), "web1")
    host.ensure()
    os.mkdir(host.tree("2026-11-25T113000Z"))
    host.write_record("2026-11-25T113000Z", {"state": "complete"})
    with pytest.raises(errors.TooSoon, match="grabber allow-run web1") as refused:
        admission.admit(host, T0, 3600)
    assert refused.value.exit_code == errors.TOO_SOON
    admission.allow_one_run(host)
    assert admission.admit(host, T0, 3600) == (
        "the minimum interval was lifted once by `grabber allow-run`"
    )
    with pytest.raises(errors.TooSoon):
        admission.admit(host, T0, 3600)
    assert admission.admit(host, T0 + dt.timedelta(hours=1), 3600) is None
