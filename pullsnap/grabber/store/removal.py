"""Removing a snapshot tree the grabber made, whoever its files belong to.

Depth first by directory descriptors, following no symlink; directories of
ours that are read-only or unreadable are given back u+rwx first, and the
receiver's capabilities (held by the grabber, not effective) are used for
root's directories in a --super snapshot.  An explicit stack, not
recursion: a backed-up host decides how deep its tree goes (rsync sends
about 1024 levels; Python 3.11's shutil.rmtree recurses and fails there).
"""

from __future__ import annotations

import contextlib
import os
import stat

from pullsnap import caps

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: str) -> None:
    """Remove `path` and everything below it (a symlink itself, never its target)."""
    parent, name = os.path.split(os.path.abspath(path))
    # A --super snapshot has root's read-only directories in it: unlinking
    # there needs CAP_DAC_OVERRIDE (and CAP_FOWNER in sticky ones), which the
    # grabber holds, not effective, when started through its launcher.
    with caps.effective_while(("dac_override", "fowner")):
        try:
            parent_fd = os.open(parent, _DIRECTORY)
        except FileNotFoundError:
            return
        try:
            _remove_below(parent_fd, name)
        finally:
            os.close(parent_fd)


def _remove_below(parent_fd: int, name: str) -> None:
    try:
        top = _open_directory(parent_fd, name, fix_parent=False)
    except FileNotFoundError:
        return  # someone else emptying the same trash got there first
    except OSError as e:
        # A symlink (ELOOP under O_NOFOLLOW) or a file: unlink that, nothing else.
        if not isinstance(e, NotADirectoryError) and not _is_link(parent_fd, name):
            raise
        _unlink(parent_fd, name, directory=False, fix_parent=False)
        return
    # (descriptor, name in its parent, subdirectories still to remove); a
    # descriptor is on the stack before its listing, so `finally` closes it.
    stack: list[tuple[int, str, list[str]]] = [(top, name, [])]
    try:
        stack[-1] = (top, name, _remove_files(top))
        while stack:
            fd, own_name, subdirs = stack[-1]
            if subdirs:
                sub = subdirs.pop()
                try:
                    child = _open_directory(fd, sub)
                except FileNotFoundError:
                    continue
                stack.append((child, sub, []))
                stack[-1] = (child, sub, _remove_files(child))
                continue
            stack.pop()
            os.close(fd)
            if stack:
                _unlink(stack[-1][0], own_name, directory=True)
            else:
                _unlink(parent_fd, own_name, directory=True, fix_parent=False)
    finally:
        for fd, _, _ in stack:
            os.close(fd)


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_directory(parent_fd: int, name: str, fix_parent: bool = True) -> int:
    """Open a directory of the tree; one of ours that is unreadable (0000,
    0300) or under one without search permission is given back u+rwx."""
    try:
        return os.open(name, _DIRECTORY, dir_fd=parent_fd)
    except PermissionError as denied:
        try:
            if fix_parent:
                os.fchmod(parent_fd, 0o700)
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                os.chmod(name, 0o700, dir_fd=parent_fd)
        except OSError:
            raise denied from None  # not ours (root's, in a --super snapshot)
    return os.open(name, _DIRECTORY, dir_fd=parent_fd)


def _remove_files(dir_fd: int) -> list[str]:
    """Unlink everything in the directory but its subdirectories; return those."""
    with os.scandir(dir_fd) as it:
        entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
    subdirs = []
    for name, is_dir in entries:
        if is_dir:
            subdirs.append(name)
        else:
            _unlink(dir_fd, name, directory=False)
    return subdirs


def _unlink(dir_fd: int, name: str, directory: bool, fix_parent: bool = True) -> None:
    remove = os.rmdir if directory else os.unlink
    try:
        remove(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return  # someone else emptying the same trash got there first
    except PermissionError as denied:
        if not fix_parent:
            raise
        # A read-only directory of ours (a tree copied from a 0555 "/").
        try:
            os.fchmod(dir_fd, 0o700)
        except OSError:
            raise denied from None  # not ours (root's, in a --super snapshot)
        with contextlib.suppress(FileNotFoundError):
            remove(name, dir_fd=dir_fd)
