"""The receiver's own root, as planned (rootview.py, pure)."""

from __future__ import annotations

import pytest

from pullsnap.grabber.confine import rootview
from pullsnap.grabber.confine.rootview import DIR, FILE, MISSING, SYMLINK

# A merged-/usr host, as Debian 12 lays it out.
HOST = {
    "/bin": (SYMLINK, "usr/bin"),
    "/lib": (SYMLINK, "usr/lib"),
    "/lib64": (SYMLINK, "usr/lib64"),
    "/usr": (DIR, ""),
    "/usr/bin": (DIR, ""),
    "/usr/bin/rsync": (FILE, ""),
    "/usr/bin/sh": (SYMLINK, "dash"),
    "/usr/bin/dash": (FILE, ""),
    "/usr/lib": (DIR, ""),
    "/usr/lib64": (DIR, ""),
    "/usr/lib64/ld-linux-x86-64.so.2": (SYMLINK, "../lib/x86_64-linux-gnu/ld.so"),
    "/usr/lib/x86_64-linux-gnu": (DIR, ""),
    "/usr/lib/x86_64-linux-gnu/ld.so": (FILE, ""),
    "/dev": (DIR, ""),
    "/dev/null": (FILE, ""),
    "/run": (DIR, ""),
    "/run/g": (DIR, ""),
    "/run/g/p": (DIR, ""),
    "/run/g/p/etc": (DIR, ""),
    "/srv": (SYMLINK, "/data"),
    "/data": (DIR, ""),
    "/data/repo": (DIR, ""),
    "/data/repo/web1": (DIR, ""),
    "/loop": (SYMLINK, "/loop"),
}


def inspect(path: str) -> tuple[str, str]:
    return HOST.get(path, (MISSING, ""))


def plan(shown: list[str], writable: tuple[str, ...] = ("/srv/repo/web1",)) -> rootview.View:
    return rootview.plan(shown, writable, "/run/g/p/etc", "/run/g/p", inspect)


def test_the_view_holds_the_named_paths_and_the_links_to_them() -> None:
    shown = ["/usr/bin/rsync", "/bin/sh", "/lib", "/lib64", "/usr/lib", "/usr/lib64",
             "/lib64/ld-linux-x86-64.so.2", "/dev/null", "/lib/ld-linux-aarch64.so.1"]  # fmt: skip
    view = plan(shown)
    binds = dict(view.binds)
    assert set(binds) == {"/run/g/p", "/usr/bin/rsync", "/usr/bin/dash", "/usr/lib",
                          "/usr/lib64", "/dev/null"}  # fmt: skip
    assert not binds["/run/g/p"].recursive  # the new root's mount point lies in it
    assert binds["/usr/lib"].directory and not binds["/usr/bin/dash"].directory
    assert dict(view.links) == {"/bin": "usr/bin", "/usr/bin/sh": "dash", "/lib": "usr/lib",
                                "/lib64": "usr/lib64", "/srv": "/data"}  # fmt: skip
    # Directories on the way only, none that a bind already shows.
    assert set(view.dirs) == {"/etc", "/usr", "/usr/bin", "/dev", "/run", "/run/g", "/data",
                              "/data/repo"}  # fmt: skip
    assert view.writable == ("/data/repo/web1",) and view.root == "/run/g/p/root"
    assert view.etc == "/run/g/p/etc"


def test_missing_paths_and_loops_are_left_out() -> None:
    view = plan(["/nowhere/x", "/loop/x", "/usr/bin/rsync/x"])
    assert dict(view.binds).keys() == {"/run/g/p"}


def test_a_writable_path_inside_a_shown_one_is_bound_on_its_own() -> None:
    view = plan(["/run/g/p"], writable=("/run/g/p/etc",))
    assert view.writable == ("/run/g/p/etc",)
    assert "/run/g/p/etc" not in view.dirs


def test_a_writable_path_must_be_a_directory() -> None:
    with pytest.raises(ValueError, match="not a directory"):
        plan([], writable=("/usr/bin/rsync",))
