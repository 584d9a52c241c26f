"""`grabber check`, the part that looks at files: the repository and authorized_keys.

repository        owner and 0700, hardlinks, nosuid,nodev, free space vs the guard
authorized_keys   modes sshd accepts, readable by the user, lines well-formed and bound
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import tempfile
from collections.abc import Iterator

from pullsnap.config import GrabberConfig
from pullsnap.findings import Finding
from pullsnap.grabber import hints
from pullsnap.grabber.confine import mounts
from pullsnap.grabber.retention import guard
from pullsnap.grabber.setup import keyfile
from pullsnap.grabber.store import storekind
from pullsnap.grabber.store.base import store_of
from pullsnap.grabber.store.repository import HostRepo, hosts
from pullsnap.grabber.store.space import free_space, show


def remount_fix(path: str, mount_point: str | None) -> str:
    """How to get nosuid,nodev under `path` without touching anything else (pure).

    A filesystem of its own is remounted; a repository inside a larger one
    (often /) becomes a bind mount of itself with the options, which
    mount(8) applies in one go since util-linux 2.27."""
    if mount_point is not None and mount_point.rstrip("/") == path.rstrip("/"):
        return (f"mount -o remount,nosuid,nodev {path}, and add nosuid,nodev to its options "
                "in /etc/fstab")  # fmt: skip
    return (f"mount --bind -o nosuid,nodev {path} {path}, and in /etc/fstab: "
            f"{path} {path} none bind,nosuid,nodev 0 0")  # fmt: skip


def remount_fix_for(path: str) -> str:
    mount = mounts.mount_of(path)
    return remount_fix(os.path.realpath(path), mount.mount_point if mount else None)


def check_repository(
    cfg: GrabberConfig, user: pwd.struct_passwd, launcher: bool
) -> Iterator[Finding]:
    """Owner and mode, hardlinks, mount options (a note without the launcher), free guard."""
    root, name = cfg.repository, user.pw_name
    group = grp.getgrgid(user.pw_gid).gr_name
    try:
        st = os.stat(root)
    except FileNotFoundError:
        yield Finding(
            False,
            f"repository {root} does not exist",
            f"install -d -o {name} -g {group} -m 0700 {root}",
        )
        return
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != user.pw_uid or mode != 0o700:
        owner = pwd.getpwuid(st.st_uid).pw_name if _uid_known(st.st_uid) else str(st.st_uid)
        yield Finding(
            False,
            f"repository {root} is {owner}'s, mode {mode:04o}; it must be {name}'s, mode 0700",
            f"chown {name}:{group} {root} && chmod 0700 {root}",
        )
    else:
        yield Finding(True, f"repository {root} ({name}'s, 0700)")
    yield from _check_hardlinks(root)
    if cfg.super == "fake-super" or not launcher:
        missing = mounts.missing_safety_options(root)
        if missing:
            yield Finding(
                True,
                f"repository filesystem lacks {','.join(missing)}",
                f"needed for --super: {remount_fix_for(root)}",
                note=True,
            )
    yield from check_store(cfg, launcher)
    yield from _check_space(cfg)


def check_store(cfg: GrabberConfig, launcher: bool) -> Iterator[Finding]:
    """Which store new hosts get and each host has, and why (storekind.choose);
    store = "btrfs" where it cannot work is a problem, with the fix."""
    kind, options = storekind.mount_of(cfg.repository)
    fs = storekind.Filesystem(kind == "btrfs", launcher, "user_subvol_rm_allowed" in options)
    new = storekind.choose(cfg.store, fs, None)
    works = new.kind == "hardlink" or storekind.impossible(fs) is None
    yield Finding(works, f"store for a new host: {new.kind} ({new.why})", new.fix)
    for name in hosts(cfg.repository):
        host = HostRepo(cfg.repository, name)
        choice = storekind.choose(cfg.store, fs, storekind.existing_kind(host))
        fix = choice.fix.replace("HOST", name)
        yield Finding(True, f"store of {name}: {choice.kind} ({choice.why})", fix, note=bool(fix))


def _uid_known(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def _check_hardlinks(root: str) -> Iterator[Finding]:
    if not os.access(root, os.W_OK | os.X_OK):
        yield Finding(True, "hardlinks: not tested (run as root or the grabber user)", note=True)
        return
    probe = tempfile.mkdtemp(prefix=".pullsnap-check-", dir=root)
    try:
        first = os.path.join(probe, "a")
        with open(first, "w", encoding="ascii") as f:
            f.write("x")
        os.link(first, os.path.join(probe, "b"))
        linked = os.stat(first).st_nlink == 2
    except OSError as e:
        linked = False
        yield Finding(
            False,
            f"hardlinks fail in {root}: {e.strerror}",
            "put the repository on a filesystem with hardlinks (ext4, xfs, btrfs)",
        )
    finally:
        for entry in ("a", "b"):
            if os.path.lexists(os.path.join(probe, entry)):
                os.unlink(os.path.join(probe, entry))
        os.rmdir(probe)
    if linked:
        yield Finding(True, "hardlinks work in the repository (unchanged files cost nothing)")


def _check_space(cfg: GrabberConfig) -> Iterator[Finding]:
    """Free bytes and inodes against what the free-space guard asks for."""
    reserve = {h: guard.reservation(cfg, store_of(cfg, h))
               for h in hosts(cfg.repository)}  # fmt: skip
    need = guard.largest_need(cfg, reserve)
    free = free_space(cfg.repository)
    if free.covers(need):
        yield Finding(True, f"free space {show(free)}; the guard needs up to {show(need)}")
    else:
        yield Finding(
            False,
            f"free space {show(free)}, below the {show(need)} the guard needs for a run with the "
            "other hosts' reservations: runs that do not fit prune what retention removes "
            "anyway, or their own older snapshots while their host holds more than its "
            "share, or are refused with no-space",
            "add space (or inodes: a filesystem made with more), or lower min_free_abs / "
            f"min_free_inodes / min_free_avg in {cfg.path}",
        )


def permits(st: os.stat_result, uid: int, gids: set[int], bits: int) -> bool:
    """Whether the mode grants `bits` (4 read, 1 search) to uid/gids (pure;
    the owner, group and other classes as path_resolution(7), no ACLs)."""
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == uid:
        return (mode >> 6) & bits == bits
    if st.st_gid in gids:
        return (mode >> 3) & bits == bits
    return mode & bits == bits


def check_authorized_keys(user: pwd.struct_passwd, config: str = "") -> Iterator[Finding]:
    """Modes and owners sshd accepts, and each line bound to a host under `config`."""
    more = () if user.pw_name == "pullsnap" else ("--user", user.pw_name)
    ssh_dir = os.path.join(user.pw_dir, ".ssh")
    path = os.path.join(ssh_dir, "authorized_keys")
    if not os.path.exists(path):
        yield Finding(
            True,
            f"{path}: no host authorized yet",
            f"{hints.authorize(config, 'HOST', 'ssh-ed25519 ...', *more)}, "
            "the line initiator setup prints",
            note=True,
        )
        return
    # sshd StrictModes: the file and its directories must not be writable by
    # others and must be the user's or root's (sshd_config(5) StrictModes);
    # and sshd opens the file as the user, who must reach and read it.
    gids = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for where, need in ((user.pw_dir, 1), (ssh_dir, 1), (path, 4)):
        st = os.stat(where)
        if st.st_uid not in (0, user.pw_uid) or stat.S_IMODE(st.st_mode) & 0o022:
            yield Finding(
                False,
                f"{where}: owner or mode makes sshd ignore the keys (StrictModes)",
                f"chown {user.pw_name} {where} && chmod go-w {where}",
            )
        elif not permits(st, user.pw_uid, gids, need):
            yield Finding(
                False,
                f"{where}: sshd reads the keys as {user.pw_name}, who cannot "
                + ("enter it" if need == 1 else "read it"),
                f"chown {user.pw_name}: {where}",
            )
    with open(path, encoding="utf-8", errors="replace") as f:
        verdicts = keyfile.audit(f.read(), path, os.path.abspath(config) if config else "",
                                 user.pw_name if more else "")  # fmt: skip
    for v in verdicts:
        if v.problem:
            yield Finding(False, f"{path} line {v.line}: {v.problem}", v.fix)
        else:
            yield Finding(True, f"authorized: {v.host} ({v.detail})")
    if not verdicts:
        yield Finding(True, f"{path}: no host authorized yet", note=True)
