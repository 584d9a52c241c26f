"""What the initiator's sending rsync may touch (Landlock).

The gate's rsync holds CAP_DAC_READ_SEARCH, so without confinement it could
read any file.  The gate checks the paths it is asked for, but filter rules
travel inside the rsync protocol: a grabber can name a merge file outside
the roots and learn its lines from which files go missing (rsync(1)
--confine-root), and a local user could race a symlink into a checked
path.  Landlock bounds both: the sender reads only the roots and what rsync
itself needs to start, writes nothing but /dev/null and opens no socket.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from pullsnap.landlock import ELF_INTERPRETERS, RUNTIME_READ_ONLY, Confinement, absolute


def sender_confinement(roots: Sequence[str], rsync: str) -> Confinement:
    """Read only the source roots (resolved), execute only rsync, no network."""
    absolute(*roots, rsync)
    return Confinement(
        read_only=(*RUNTIME_READ_ONLY, *(os.path.realpath(r) for r in roots)),
        read_write=("/dev/null",),
        executable=(rsync, os.path.realpath(rsync), *ELF_INTERPRETERS),
        connect_tcp_ports=(),
    )
