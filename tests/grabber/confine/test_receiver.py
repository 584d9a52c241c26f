"""The receiving rsync's mode and confinement (confine/receiver.py): when
--super is used, refused or traded for --fake-super, and what the child is
given."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from pullsnap import caps, errors
from pullsnap.config import GrabberConfig
from pullsnap.grabber.confine import mounts, receiver, rootview
from pullsnap.grabber.confine.receiver import Confined, Namespace
from tests.forked import in_child

SUPER = caps.RECEIVER_SUPER_CAPS
LAUNCHER = caps.GRABBER_LAUNCHER_CAPS


def _cfg(**changes) -> GrabberConfig:
    return dataclasses.replace(GrabberConfig(), **changes)


@pytest.fixture
def unsafe_mount(monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository's filesystem lacks nosuid,nodev."""
    monkeypatch.setattr(mounts, "missing_safety_options", lambda path: ["nosuid", "nodev"])
    monkeypatch.setattr(mounts, "mount_of", lambda path: mounts.Mount("/srv", "ext4", frozenset()))


@pytest.fixture
def safe_mount(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mounts, "missing_safety_options", lambda path: [])


@pytest.mark.parametrize(
    "wanted, held, mode",
    [("auto", (), "fake-super"), ("auto", SUPER[:-1], "fake-super"), ("auto", SUPER, "super"),
     ("fake-super", LAUNCHER, "fake-super"), ("super", SUPER, "super")],
)  # fmt: skip
def test_the_mode_follows_the_held_capabilities(safe_mount, wanted, held, mode) -> None:
    assert receiver.receiver_mode(_cfg(super=wanted), held) == mode


def test_super_demanded_without_the_capabilities_is_refused(safe_mount) -> None:
    with pytest.raises(errors.RunFailed, match="install the launcher"):
        receiver.receiver_mode(_cfg(super="super"), SUPER[1:])


def test_an_unsafe_filesystem_refuses_super_with_the_fix(unsafe_mount) -> None:
    """With the launcher's capabilities, "auto" as well as "super": a silent
    --fake-super snapshot would be restored as the wrong kind."""
    for wanted in ("auto", "super"):
        with pytest.raises(errors.RunFailed) as refused:
            receiver.receiver_mode(_cfg(super=wanted), SUPER)
        assert str(refused.value).startswith(
            "refusing rsync --super: the repository's filesystem (/srv) is mounted without "
            "nosuid,nodev: remount it with -o nosuid,nodev (or set allow_suid_repository = true); "
            'or set super = "fake-super" -- fix: mount --bind -o nosuid,nodev'
        )
    assert receiver.receiver_mode(_cfg(super="fake-super"), SUPER) == "fake-super"
    allowed = _cfg(super="super", allow_suid_repository=True)
    assert receiver.suid_risk(allowed) is None
    assert receiver.receiver_mode(allowed, SUPER) == "super"


def test_without_cap_sys_admin_super_needs_the_operators_consent() -> None:
    with pytest.raises(errors.RunFailed, match="allow_unconfined_super = true"):
        receiver.namespace_kind(_cfg(), "super", SUPER, print)
    warned: list[str] = []
    allowed = _cfg(allow_unconfined_super=True)
    assert receiver.namespace_kind(allowed, "super", SUPER, warned.append) is None
    assert warned and warned[0].startswith("warning: no read-only mount namespace")


@pytest.mark.root  # a user namespace of one's own: the suite's machine allows it
def test_fake_super_gets_a_user_namespace_of_its_own_and_drops_its_caps(tmp_path: Path) -> None:
    host, private = tmp_path / "web1", tmp_path / "private"
    host.mkdir()
    private.mkdir()
    fake = receiver.confine(_cfg(), "fake-super", (), str(host), str(private), 2222, print)
    try:
        ns = fake.namespace
        assert ns is not None and ns.own_user and ns.view.writable == (str(host),)
        assert ns.view.etc == str(private / "etc") and Path(ns.view.etc, "passwd").is_file()
        assert ns.view.root == str(private / "root") and (private / "root").is_dir()
        assert set(ns.drop) == set(caps.kernel_cap_names())
    finally:
        fake.close()
    assert receiver.namespace_kind(_cfg(), "super", LAUNCHER, print) is False


def test_the_root_shows_what_the_landlock_rules_name(tmp_path: Path) -> None:
    host, private = tmp_path / "web1", tmp_path / "private"
    host.mkdir()
    private.mkdir()
    jail = receiver.confine(_cfg(rsync="/usr/bin/rsync"), "fake-super", (), str(host),
                            str(private), 2222, print)  # fmt: skip
    try:
        assert jail.namespace is not None
        bound = {path for path, _ in jail.namespace.view.binds}
        assert {str(private), "/usr/lib", os.path.realpath("/usr/bin/rsync")} <= bound
        assert not {"/", "/etc", "/home", "/usr", str(tmp_path)} & bound
    finally:
        jail.close()


@pytest.mark.root
def test_the_btrfs_store_shows_only_the_new_tree_writable(tmp_path: Path) -> None:
    host, private = tmp_path / "web1", tmp_path / "private"
    (host / "new").mkdir(parents=True)
    private.mkdir()
    jail = receiver.confine(_cfg(), "fake-super", (), str(host), str(private), 2222, print,
                            write_dirs=[str(host / "new")], only_write_dirs=True)  # fmt: skip
    try:
        assert jail.namespace is not None
        assert jail.namespace.view.writable == (str(host / "new"),)
    finally:
        jail.close()


@pytest.mark.root
def test_confine_gives_the_receiver_only_its_capabilities(tmp_path: Path) -> None:
    host, private = tmp_path / "web1", tmp_path / "private"
    host.mkdir()
    private.mkdir()
    jail = receiver.confine(_cfg(), "super", LAUNCHER, str(host), str(private), 2222, print)
    try:
        assert set(jail.ambient) == set(SUPER) and receiver.NAMESPACE_CAP not in jail.ambient
        assert jail.namespace is not None and not jail.namespace.own_user
    finally:
        jail.close()
    fake = receiver.confine(_cfg(), "fake-super", (), str(host), str(private), 2222, print)
    try:
        assert fake.ambient == () and fake.namespace is not None and fake.namespace.own_user
    finally:
        fake.close()


def test_a_failed_confinement_says_why_on_stderr_and_stops_the_child(tmp_path: Path) -> None:
    """subprocess reports only "Exception occurred in preexec_fn"; the
    child's stderr (rsync's pipe) gets our one line."""
    view = rootview.View(str(tmp_path / "missing-root"), (), (), (), ("/nonexistent/host",),
                         str(tmp_path))  # fmt: skip
    jail = Confined(None, (), Namespace(view, own_user=True))
    log = tmp_path / "stderr"

    def body() -> dict[str, object]:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT, 0o600)
        os.dup2(fd, 2)
        try:
            jail.preexec()()
        except errors.PullsnapError as e:
            return {"raised": type(e).__name__}
        return {"raised": None}

    said = in_child(body)
    assert said == {"raised": "MountNamespaceError"}
    assert log.read_text().startswith("mount namespace: ")
    assert log.read_text().count("\n") == 1
