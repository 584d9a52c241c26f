"""An operator's deletion (retention/delete.py): who is named, what a line
records, and the store's rule kept: the newest good snapshot only with
force, `latest` following."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.grabber.retention import delete
from pullsnap.grabber.store.base import open_store
from pullsnap.grabber.store.repository import HostRepo, snapshot_name

NOW = dt.datetime(2026, 11, 25, 12, 0, 0, tzinfo=dt.UTC)


def test_who_names_the_user_and_who_ran_sudo() -> None:
    assert delete.who(0, {"SUDO_USER": "alice"}) == "root (sudo from alice)"
    assert delete.who(0, {}) == "root"
    assert delete.who(4242424, {"SUDO_USER": "alice"}) == "4242424"  # no such user, no sudo


def _host(tmp_path: Path, count: int) -> tuple[HostRepo, list[str]]:
    host = HostRepo(str(tmp_path), "web1")
    host.ensure()
    names = []
    for i in range(count):
        name = snapshot_name(NOW - dt.timedelta(days=count - i))
        Path(host.tree(name), "etc").mkdir(parents=True)
        host.write_record(name, {"state": "complete", "mode": "fake-super"})
        names.append(name)
    host.latest_follows()
    return host, names


def test_the_newest_good_goes_only_with_force_and_latest_follows(tmp_path: Path) -> None:
    host, (first, second) = _host(tmp_path, 2)
    store = open_store(host)
    with pytest.raises(errors.DeletionRefused, match=r"the newest good one.*: to delete it anyway"):
        delete.delete(store, second, force=False, by="root", now=NOW, hint="grabber delete ...")
    assert [a.name for a in host.good()] == [first, second]
    line = delete.delete(store, second, force=True, by="root", reason="leak", now=NOW)
    assert (line["snapshot"], line["forced"], line["state"], line["mode"]) == (
        second, True, "complete", "fake-super")  # fmt: skip
    assert [a.name for a in host.good()] == [first]
    assert os.readlink(os.path.join(host.path, "latest")) == first
    with pytest.raises(errors.DeletionRefused, match="its only good snapshot"):
        delete.delete(store, first, force=False, by="root", now=NOW)
    delete.delete(store, first, force=True, by="root", now=NOW)
    assert host.attempts() == [] and not os.path.lexists(os.path.join(host.path, "latest"))
    assert [d["snapshot"] for d in delete.deletions(host)] == [second, first]


def test_what_this_grabber_did_not_make_is_refused(tmp_path: Path) -> None:
    host, _ = _host(tmp_path, 1)
    os.mkdir(host.tree("2020-01-01T000000Z"))
    with pytest.raises(errors.NotOurSnapshot):
        delete.delete(open_store(host), "2020-01-01T000000Z", force=True, by="root", now=NOW)
    with pytest.raises(errors.NotOurSnapshot):
        delete.delete(open_store(host), "../web2", force=True, by="root", now=NOW)
