"""The receiver's own root (confine/mountns.py), built in a forked child:
only what the view names is there, only the writable paths can change and
follow no symlink, /etc is the run's own, nothing leaks back to this
process's view."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pullsnap.grabber.confine import mountns, rootview
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
    for name in ("host", "other", "etc", "private", "private/root"):
        (tmp_path / name).mkdir()
    (tmp_path / "other" / "secret").write_text("x")
    (tmp_path / "etc" / "pullsnap-marker").write_text("the run's own /etc\n")
    os.symlink(tmp_path / "other", tmp_path / "host" / "planted")
    return {k: str(tmp_path / k) for k in ("host", "other", "etc", "private")}


def _inside(layout: dict[str, str], own_user_namespace: bool) -> dict[str, object]:
    view = rootview.plan(["/dev/null"], [layout["host"]], layout["etc"], layout["private"],
                         rootview.inspect_host)  # fmt: skip

    def body() -> dict[str, object]:
        mountns.own_root(view, own_user_namespace=own_user_namespace)
        Path(layout["host"], "new").write_text("written")
        said: dict[str, object] = {"etc": Path("/etc/pullsnap-marker").read_text()}
        for what, change in (
            ("create", lambda: Path(layout["other"], "new").write_text("x")),
            ("chmod", lambda: os.chmod(Path(layout["other"], "secret"), 0o777)),
            ("chmod its /etc", lambda: os.chmod("/etc/pullsnap-marker", 0o777)),
            ("through a symlink", lambda: Path(layout["host"], "planted", "secret").read_text()),
        ):
            try:
                change()
                said[what] = 0
            except OSError as e:
                said[what] = e.errno
        said["root"] = sorted(os.listdir("/"))
        return said

    return in_child(body)


@pytest.mark.root
@pytest.mark.parametrize("own_user_namespace", [False, True])
def test_only_the_view_is_there_and_only_the_writable_path_changes(
    layout: dict[str, str], own_user_namespace: bool
) -> None:
    said = _inside(layout, own_user_namespace)
    top = layout["host"].split("/")[1]
    assert said == {
        "etc": "the run's own /etc\n",
        "create": errno.ENOENT,  # not in the view at all
        "chmod": errno.ENOENT,
        "chmod its /etc": errno.EROFS,  # in the view, read-only
        "through a symlink": errno.ELOOP,  # the writable path is nosymfollow
        "root": sorted({"dev", "etc", top}),
    }
    assert Path(layout["host"], "new").read_text() == "written"
    assert Path(layout["other"], "secret").stat().st_mode & 0o777 != 0o777
    # The namespace was the child's: this process still writes anywhere.
    Path(layout["other"], "after").write_text("fine")
    assert not Path("/etc/pullsnap-marker").exists()


@pytest.mark.root
def test_probe_as_root_finds_nothing_wrong() -> None:
    assert mountns.probe_as(os.getuid(), os.getgid()) is None
