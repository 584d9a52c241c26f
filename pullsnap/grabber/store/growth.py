"""What a new hardlinked snapshot took on disk: its "added" figure.

rsync's "Total transferred file size" is not it.  With --super a file whose
mode alone changed is stored again (the old inode's metadata must not
change, so rsync copies it locally, itemized `cf`), and nothing is
transferred; every directory is new in every snapshot and is never counted.
What the disk lost is every inode of the new tree none of whose links lies
outside it, with its blocks (st_blocks, as du(1) counts):

    directories   always: directories are never hardlinked (fstat of the
                  directory the manifest walk opened anyway)
    other inodes  new when all their links are inside the tree: st_nlink
                  equals the links met in the walk (lstat, once an inode)

The manifest walk shows the meter only what may be new: an entry whose
inode is the one the base snapshot's manifest has at that path is a hard
link into the base, and costs no system call.  A run that changed nothing
therefore costs one fstat per directory; a file it changed, one lstat.
"""

from __future__ import annotations

import os

from pullsnap.grabber.store.space import Space


class Tally:
    """The arithmetic of it (pure): inodes met, with their link counts."""

    def __init__(self) -> None:
        self.bytes = 0
        self.inodes = 0
        # inode -> [its links not met yet, its bytes]: found with st_nlink > 1
        self.pending: dict[int, list[int]] = {}

    def directory(self, nbytes: int) -> None:
        self.bytes += nbytes
        self.inodes += 1

    def met(self, inode: int) -> bool:
        """Another link of an inode already counted or pending."""
        slot = self.pending.get(inode)
        if slot is None:
            return False
        slot[0] -= 1
        return True

    def first(self, inode: int, nbytes: int, nlink: int) -> None:
        """The first link of an inode met in the tree."""
        if nlink <= 1:
            self.bytes += nbytes
            self.inodes += 1
        else:
            self.pending[inode] = [nlink - 1, nbytes]

    def result(self) -> Space:
        """Inodes whose every link was met are the tree's alone."""
        extra = [nbytes for left, nbytes in self.pending.values() if left <= 0]
        return Space(self.bytes + sum(extra), self.inodes + len(extra))


class HardlinkMeter:
    """The Meter (store.base) of the hardlink store."""

    def __init__(self) -> None:
        self.tally = Tally()

    def directory(self, fd: int) -> None:
        self.tally.directory(os.fstat(fd).st_blocks * 512)

    def entry(self, dir_fd: int, name: bytes, inode: int) -> None:
        if self.tally.met(inode):
            return
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            return  # gone meanwhile: it takes nothing
        self.tally.first(st.st_ino, st.st_blocks * 512, st.st_nlink)

    def result(self) -> Space:
        return self.tally.result()
