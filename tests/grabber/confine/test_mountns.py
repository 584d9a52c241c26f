"""The receiver's read-only mount namespace (confine/mountns.py), built in
a forked child: only the writable paths can change, /etc is the run's own,
nothing leaks back to this process's view."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pullsnap.grabber.confine import mountns
from tests.forked import in_child


def test_check_paths_wants_absolute_existing_directories(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    mountns.check_paths((str(tmp_path),), "/etc")  # fine: no error
    for bad in ("relative/dir", str(tmp_path / "missing"), str(tmp_path / "file")):
        with pytest.raises(mountns.MountNamespaceError, match="is not an absolute directory"):
            mountns.check_paths((bad,), "/etc")
        with pytest.raises(mountns.MountNamespaceError, match="mount namespace: "):
            mountns.check_paths((str(tmp_path),), bad)


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "host").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "secret").write_text("x")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "pullsnap-marker").write_text("the run's own /etc\n")
    return {k: str(tmp_path / k) for k in ("host", "other", "etc")}


def _inside(layout: dict[str, str], own_user_namespace: bool) -> dict[str, object]:
    def body() -> dict[str, object]:
        mountns.read_only_except([layout["host"]], layout["etc"],
                                 own_user_namespace=own_user_namespace)  # fmt: skip
        Path(layout["host"], "new").write_text("written")
        said: dict[str, object] = {"etc": Path("/etc/pullsnap-marker").read_text()}
        for what, change in (
            ("create", lambda: Path(layout["other"], "new").write_text("x")),
            ("chmod", lambda: os.chmod(Path(layout["other"], "secret"), 0o777)),
        ):
            try:
                change()
                said[what] = 0
            except OSError as e:
                said[what] = e.errno
        return said

    return in_child(body)


@pytest.mark.root
@pytest.mark.parametrize("own_user_namespace", [False, True])
def test_only_the_writable_path_changes_and_etc_is_the_runs_own(
    layout: dict[str, str], own_user_namespace: bool
) -> None:
    said = _inside(layout, own_user_namespace)
    assert said == {"etc": "the run's own /etc\n", "create": errno.EROFS, "chmod": errno.EROFS}
    assert Path(layout["host"], "new").read_text() == "written"
    assert Path(layout["other"], "secret").stat().st_mode & 0o777 != 0o777
    # The namespace was the child's: this process still writes anywhere.
    Path(layout["other"], "after").write_text("fine")
    assert not Path("/etc/pullsnap-marker").exists()


@pytest.mark.root
def test_probe_as_root_finds_nothing_wrong() -> None:
    assert mountns.probe_as(os.getuid(), os.getgid()) is None
