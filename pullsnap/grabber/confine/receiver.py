"""The receiving rsync's privileges and confinement.

    grabber (login shell, via the launcher: receiver caps permitted, not effective)
      fork ── child: pdeathsig, mount namespace with a root of its own (only
              what its Landlock rules name, its own /etc, <repo>/<host>/
              writable and nosymfollow), Landlock (write only the new
              snapshot and its bases), caps ambient
              exec rsync --super ...      (ambient caps survive no_new_privs)
              └─ exec ssh (same confinement, connect only to the handoff's port)

Without the launcher the grabber holds nothing and rsync uses --fake-super;
the namespace (built in a user namespace of its own) and Landlock still
apply, because a sender that subverts the receiver would otherwise reach
every other host's snapshots (they belong to the same user).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import prctl

from pullsnap import caps
from pullsnap.config import GrabberConfig
from pullsnap.errors import PullsnapError, RunFailed

if TYPE_CHECKING:
    from pullsnap import landlock
    from pullsnap.grabber.confine import rootview

# The login shell imports this module early; what only a pull needs (rsync's
# driver, Landlock, mount namespaces) is imported when used, while ssh-agent
# and the rsync version probe start (session/early.py).


def _in(cfg: GrabberConfig) -> str:
    """` in FILE`: where a setting a message names is set."""
    return f" in {cfg.path}" if cfg.path and not cfg.path.startswith("<") else ""


def suid_risk(cfg: GrabberConfig) -> str | None:
    """Why --super is unsafe on this repository's filesystem, or None.

    --super recreates setuid-root files, file capabilities and device nodes
    exactly; on a filesystem without nosuid,nodev they would work for anyone
    who reaches them (mount(8)).
    """
    from pullsnap.grabber.confine import mounts

    missing = mounts.missing_safety_options(cfg.repository)
    if not missing or cfg.allow_suid_repository:
        return None
    mount = mounts.mount_of(cfg.repository)
    point = mount.mount_point if mount else cfg.repository
    return (
        f"the repository's filesystem ({point}) is mounted without {','.join(missing)}: "
        f"remount it with -o nosuid,nodev (or set allow_suid_repository = true{_in(cfg)})"
    )


def receiver_mode(
    cfg: GrabberConfig, held: tuple[str, ...], warn: Callable[[str], None] = lambda text: None
) -> str:
    """`super` when the receiver capabilities are held (or demanded) and the
    repository is mounted nosuid,nodev; else `fake-super`."""
    complete = all(c in held for c in caps.RECEIVER_SUPER_CAPS)
    if cfg.super == "super" and not complete:
        raise RunFailed(
            'super = "super" but the receiver capabilities are missing: install the launcher '
            f'(see README "--super") or set super = "auto"{_in(cfg)}'
        )
    if cfg.super == "fake-super" or not complete:
        return "fake-super"
    risk = suid_risk(cfg)
    if risk is None:
        return "super"
    # With the launcher installed the operator expects --super snapshots
    # (exact owners, `cp -a` restores); a silent --fake-super one would be
    # restored wrongly, so the run stops with the fix `grabber check` names.
    from pullsnap.grabber.setup.filechecks import remount_fix_for

    raise RunFailed(
        f'refusing rsync --super: {risk}; or set super = "fake-super"{_in(cfg)} -- fix: '
        f"{remount_fix_for(cfg.repository)}"
    )


# Held by the grabber only to set up the read-only mount namespace; the
# receiving rsync never gets it (with it, rsync could remount rw).
NAMESPACE_CAP = "sys_admin"


@dataclass(frozen=True)
class Namespace:
    """The receiver's mount namespace: a root of its own (rootview.py)
    showing `view`, read-only but for the host's directory, with the run's
    own /etc (etcview.py), built with CAP_SYS_ADMIN or, without it, in a
    user namespace of its own (userns.py)."""

    view: rootview.View
    own_user: bool
    drop: tuple[str, ...] = ()  # what the user namespace gave, dropped before exec


@dataclass(frozen=True)
class Confined:
    """What the rsync child does between fork and exec, in this order:
    parent-death signal, mount namespace (then CAP_SYS_ADMIN, or every
    capability of its own user namespace, is dropped for good), Landlock
    (sets no_new_privs), receiver caps ambient."""

    prepared: landlock.Prepared | None
    ambient: tuple[str, ...]
    namespace: Namespace | None = None

    def preexec(self) -> Callable[[], None]:
        prepared, ambient, ns = self.prepared, self.ambient, self.namespace

        from pullsnap import landlock
        from pullsnap.grabber.confine import mountns

        def confine_self() -> None:
            # SIGTERM lets rsync remove its temporary file before it goes.
            prctl.set_pdeathsig(signal.SIGTERM)
            if ns is not None and ns.own_user:
                mountns.own_root(ns.view, own_user_namespace=True)
                caps.drop_entirely(ns.drop)
            elif ns is not None:
                caps.set_effective([NAMESPACE_CAP], True)
                mountns.own_root(ns.view, own_user_namespace=False)
                caps.drop_entirely([NAMESPACE_CAP])
            if prepared is not None:
                landlock.enforce(prepared)  # sets no_new_privs first
            if ambient:
                caps.raise_ambient(ambient)

        def run_in_child() -> None:
            try:
                confine_self()
            except PullsnapError as e:
                # subprocess only says "Exception occurred in preexec_fn";
                # stderr is already rsync's pipe (piperun.py reads it).
                os.write(2, f"{e}\n".encode(errors="replace"))
                raise

        return run_in_child

    def close(self) -> None:
        if self.prepared is not None:
            self.prepared.close()


def namespace_kind(cfg: GrabberConfig, mode: str, held: tuple[str, ...],
                   warn: Callable[[str], None]) -> bool | None:  # fmt: skip
    """Whether the receiver's mount namespace is built in a user namespace of
    its own (True) or with CAP_SYS_ADMIN (False); None for an unconfined
    --super the operator allowed.  Refuses when neither can build it."""
    from pullsnap.grabber.confine import userns

    own_user = NAMESPACE_CAP not in held
    if own_user and mode == "super":
        if not cfg.allow_unconfined_super:
            raise RunFailed(
                "the launcher grants no CAP_SYS_ADMIN, so the receiving rsync cannot be put in a "
                "read-only mount namespace: reinstall it (grabber install-launcher) or set "
                f"allow_unconfined_super = true{_in(cfg)} to accept the risk"
            )
        warn("warning: no read-only mount namespace: chmod/chown outside the host directory "
             "are not prevented, and old snapshots' symlinks are followed")  # fmt: skip
        return None
    if own_user:
        problem = userns.why_unavailable(userns.read_switches())
        if problem is not None:
            what, fix = problem
            raise RunFailed(
                f"the receiving rsync needs a mount namespace and {what}: {fix}, or install "
                "the launcher (grabber install-launcher), which builds it with CAP_SYS_ADMIN"
            )
    return own_user


def shown(rules: landlock.Confinement) -> tuple[str, ...]:
    """Every path the receiver's Landlock rules name: what its root shows."""
    return (*rules.read_only, *rules.executable, *rules.read_write)


def confine(
    cfg: GrabberConfig, mode: str, held: tuple[str, ...], host_dir: str, private_dir: str,
    port: int, warn: Callable[[str], None], write_dirs: Sequence[str] = (),
    only_write_dirs: bool = False,
) -> Confined:  # fmt: skip
    """Prepare the child's confinement, or refuse --super without one.

    The mount namespace shows the receiver only what its Landlock rules name
    and `host_dir`, the one writable path, where no symlink is followed.
    Landlock narrows further when `write_dirs` are given: the new snapshot's
    directory and its --link-dest trees, so a subverted receiver cannot touch
    records, `latest`, manifests or older snapshots of the same host.  (Files
    hardlinked from the link-dest trees share their inodes: those it could
    still write through; `grabber verify` finds such changes.)
    `only_write_dirs` (the btrfs store): the mount namespace, too, shows
    only `write_dirs` (writable, nosymfollow), not `host_dir`: btrfs's subvolume ioctls
    (clearing a read-only flag, deleting a subvolume) are not Landlock's to
    refuse, and need a writable mount.
    """
    from pullsnap import connectfd, landlock
    from pullsnap.grabber.confine import etcview, mountns, receiverpolicy, rootview
    from pullsnap.grabber.transfer import pull

    ambient = tuple(c for c in held if c != NAMESPACE_CAP) if mode == "super" else ()
    own_user = namespace_kind(cfg, mode, held, warn)
    etc = None
    writable = tuple(write_dirs) if only_write_dirs and write_dirs else (host_dir,)
    if own_user is not None:
        etc = etcview.write_etc(private_dir)
        mountns.check_paths(writable, etc)
    programs = (cfg.rsync, cfg.ssh) + ((pull.SETPRIV,) if mode == "super" else ())
    # ssh's ProxyCommand (connectfd.py): sh, then Python's own binary
    # reading its standard library (under /usr/lib) and that one script.
    helper = connectfd.helper_files()
    first, *more = write_dirs or (host_dir,)
    rules = receiverpolicy.receiver_confinement(
        first, private_dir, extra_read=helper.read, port=port,
        programs=programs + helper.run, also_writable=more, etc=etc,
    )  # fmt: skip
    ns = None
    if own_user is not None and etc is not None:
        os.makedirs(os.path.join(private_dir, rootview.ROOT), 0o700, exist_ok=True)
        view = rootview.plan(shown(rules), writable, etc, private_dir, rootview.inspect_host)
        ns = Namespace(view, own_user, caps.kernel_cap_names() if own_user else ())
    try:
        return Confined(landlock.prepare(rules), ambient, ns)
    except landlock.LandlockUnavailable as e:
        if mode == "super" and not cfg.allow_unconfined_super:
            raise RunFailed(
                f"Landlock is unavailable ({e}): refusing rsync --super unconfined; "
                f"set allow_unconfined_super = true{_in(cfg)} to accept the risk"
            ) from None
        warn(f"warning: Landlock is unavailable, the receiving rsync is not confined ({e})")
        return Confined(None, ambient, ns)
