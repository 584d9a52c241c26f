"""Removing a tree whatever its modes and depth (removal.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pullsnap.grabber.store import removal
from tests.trees import deep_tree


def test_remove_tree_handles_unreadable_directories(tmp_path: Path) -> None:
    top = tmp_path / "t"
    (top / "a" / "b").mkdir(parents=True)
    (top / "a" / "b" / "f").write_text("x")
    (top / "a" / "b").chmod(0o000)
    (top / "a").chmod(0o500)
    removal.remove_tree(str(top))
    assert not top.exists()


def test_remove_tree_removes_a_tree_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    """A backed-up host picks its tree's depth (rsync sends about 1024 levels);
    a snapshot that cannot be deleted blocks retention and the space guard."""
    top = tmp_path / "deep"
    deep_tree(top, 1100)
    try:
        removal.remove_tree(str(top))
        assert not os.path.lexists(top)
    finally:
        subprocess.run(["rm", "-rf", str(top)], check=True)


_DEEP_UNDER_A_LOW_LIMIT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
from pullsnap.grabber import cli
from pullsnap.grabber.store import removal
cli.enough_descriptors()
removal.remove_tree(sys.argv[1])
"""


def test_the_grabber_has_descriptors_for_the_deepest_tree(tmp_path: Path) -> None:
    """The walks hold a descriptor per directory level; a soft limit below the
    depth (1024 is the usual one) is raised towards the hard limit first."""
    top = tmp_path / "deep"
    deep_tree(top, 600)
    try:
        done = subprocess.run([sys.executable, "-c", _DEEP_UNDER_A_LOW_LIMIT, str(top)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr[-500:]
        assert not os.path.lexists(top)
    finally:
        subprocess.run(["rm", "-rf", str(top)], check=True)
