"""Removing a snapshot tree the grabber made, whoever its files belong to.

rmtree that first makes read-only directories of ours writable, and uses
the receiver's capabilities (held by the grabber, not effective) for
root's directories in a --super snapshot.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import Any

from pullsnap import caps


def remove_tree(path: str) -> None:
    """rmtree that first makes read-only directories of ours writable."""

    def fix(func: Any, failed: str, info: Any) -> None:
        if isinstance(info[1], FileNotFoundError):
            return  # someone else emptying the same trash got there first
        if not isinstance(info[1], PermissionError):
            raise info[1]
        for directory in (os.path.dirname(failed), failed):
            with contextlib.suppress(OSError):
                if os.path.isdir(directory) and not os.path.islink(directory):
                    os.chmod(directory, 0o700)
        if func is os.open or func is os.scandir:
            # Could not list a directory: retry the whole subtree now it is readable.
            shutil.rmtree(failed, onerror=fix)
        else:
            func(failed)

    # A --super snapshot has root's read-only directories in it: unlinking
    # there needs CAP_DAC_OVERRIDE (and CAP_FOWNER in sticky ones), which the
    # grabber holds, not effective, when started through its launcher.
    # rmtree walks by file descriptor and follows no symlink (shutil docs).
    with caps.effective_while(("dac_override", "fowner")), contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path, onerror=fix)
