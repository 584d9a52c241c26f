"""What the grabber's receiving rsync and its ssh may touch (Landlock).

Found by tracing (strace -f) `rsync -aHAX --super --numeric-ids -e 'ssh -F
/dev/null -i KEY.pub -o IdentitiesOnly=yes -o UserKnownHostsFile=... -o
StrictHostKeyChecking=yes -o BatchMode=yes' USER@ADDR:SRC/ DEST/` with the
key in an ssh-agent, then removing entries until the pull broke.  ssh reads
no OpenSSL configuration, host name files or /dev/urandom (getrandom(2)),
and connect(2) to the agent's socket is not mediated by Landlock.  Denied
and harmless: /proc/filesystems and /proc/mounts (libselinux probing),
/etc/ssh/ssh_known_hosts (pass GlobalKnownHostsFile=/dev/null to say so),
/usr/share (messages stay untranslated, times are UTC).  A connect-back
to a host *name* would need /etc/hosts, /etc/resolv.conf, /etc/gai.conf
and /etc/host.conf in `extra_read`; the grabber uses the numeric address.
"""

from __future__ import annotations

from collections.abc import Sequence

from pullsnap.landlock import (
    ELF_INTERPRETERS,
    LIBRARIES,
    RUNTIME_READ_ONLY,
    Confinement,
    absolute,
)

# ssh opens /dev/null read-write for its unused descriptors; without write
# access it stops with "Couldn't open /dev/null".
READ_WRITE: tuple[str, ...] = ("/dev/null",)
PROGRAMS: tuple[str, ...] = ("/usr/bin/rsync", "/usr/bin/ssh")
# Without a mount namespace (an unconfined --super the operator allowed) ssh
# reads the backup host's own files: its passwd entry, as NSS is configured.
# Rules on single files follow their inodes; useradd renames a new passwd
# into place, and a rule taken before that denies the new one.
HOST_ETC: tuple[str, ...] = ("/etc/passwd", "/etc/group", "/etc/nsswitch.conf")


def receiver_confinement(
    host_dir: str,
    private_dir: str,
    extra_read: Sequence[str] = (),
    port: int | None = None,
    *,
    programs: Sequence[str] = PROGRAMS,
    also_writable: Sequence[str] = (),
    etc: str | None = None,
) -> Confinement:
    """What the grabber's `rsync --super` and its ssh may touch.

    `also_writable`: more directories with the same rights as `host_dir`
    (the grabber passes the new snapshot's directory as `host_dir` and the
    --link-dest trees here: a hard link may only go where the file gains no
    rights, landlock(7) LANDLOCK_ACCESS_FS_REFER, so they must match).

    Write access only to `host_dir` (this host's snapshots, also the
    --link-dest source).  Read access to `private_dir` (known_hosts, the
    public key file; the agent socket needs none) and to libraries, not to
    /etc as a whole nor to other hosts' snapshots: with CAP_DAC_OVERRIDE the
    receiver could otherwise read anything and send it over the connection.
    `port`: allow TCP connect to it only, and no bind.  `etc`: the run's own
    /etc (etcview.py), bound over /etc in the receiver's mount namespace; a
    rule on it holds there, because Landlock checks the directories a path
    walk passes through, and a bind mount's root is that very directory.
    None: no namespace, the backup host's own files (HOST_ETC).
    """
    start_up = (*LIBRARIES, etc) if etc is not None else (*RUNTIME_READ_ONLY, *HOST_ETC)
    absolute(host_dir, private_dir, *start_up, *extra_read, *programs, *also_writable)
    return Confinement(
        read_only=(*start_up, private_dir, *extra_read),
        read_write=(*READ_WRITE, host_dir, *also_writable),
        executable=(*programs, *ELF_INTERPRETERS),
        connect_tcp_ports=None if port is None else (port,),
    )
