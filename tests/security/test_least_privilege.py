"""Property 7, measured: during a real --super run, every process of the chain
holds exactly the capabilities its role needs (read from /proc/PID/status).

    initiator (python)        holds CAP_DAC_READ_SEARCH, none of it effective
    one-shot sshd, session    CAP_DAC_READ_SEARCH only (ambient), no_new_privs
    gate -> sender rsync      CAP_DAC_READ_SEARCH only, no_new_privs
    grabber (python)          receiver caps + CAP_SYS_ADMIN permitted, none effective
    receiver rsync            exactly the --super set, never CAP_SYS_ADMIN, no_new_privs
    its ssh                   nothing
    subvolume deletion        (btrfs store) a forked child of the grabber: CAP_SYS_ADMIN,
                              CAP_DAC_OVERRIDE, CAP_FOWNER, nothing else, no_new_privs
"""

from __future__ import annotations

import os
import time

import pytest

from pullsnap import caps, errors
from pullsnap.grabber.integrity import prehash
from pullsnap.grabber.store import subvoldelete
from tests.labfixtures import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.security]

DAC = frozenset(caps.INITIATOR_CAPS)
SUPER = frozenset(caps.RECEIVER_SUPER_CAPS)


def _snapshot_processes(uids: set[int]) -> dict[int, tuple[str, caps.CapState, int]]:
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                status = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        uid = int(caps.status_fields(status)["Uid"].split()[0])
        if uid in uids and cmdline:
            found[int(entry)] = (cmdline, caps.parse_proc_status(status), uid)
    return found


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(caps.status_fields(f.read())["PPid"])
    except (OSError, KeyError, ValueError):
        return 0


def _role(cmdline: str, uid: int, lab) -> str:
    initiator = uid == lab.initiator_pw().pw_uid
    if initiator and "bin/initiator" in cmdline:
        return "initiator"
    if cmdline.startswith(("/usr/sbin/sshd", "sshd:")):
        # The backup host's own sshd runs the grabber user's session.
        return "backup-sshd" if lab.grabber_user in cmdline or not initiator else "sshd"
    if initiator and "gatecmd" in cmdline:
        return "gate"
    if initiator and cmdline.startswith("/usr/bin/rsync --server --sender"):
        return "sender"
    if initiator and cmdline.startswith(("/usr/bin/ssh ", "/usr/bin/ssh-keygen ")):
        return "initiator-tool"
    if not initiator and cmdline.startswith(prehash.TITLE):
        return "hasher"
    if not initiator and cmdline.startswith(subvoldelete.TITLE):
        return "subvolume-delete"
    if not initiator and "pullsnap.grabber." in cmdline:
        return "grabber"
    if not initiator and cmdline.startswith("/usr/bin/rsync -a"):
        return "receiver"
    if not initiator and cmdline.startswith("/usr/bin/ssh "):
        return "receiver-ssh"
    return "other"


def test_every_process_holds_only_what_its_role_needs(super_site: Site) -> None:
    site = super_site
    os.makedirs(site.src)
    with open(os.path.join(site.src, "big"), "wb") as f:
        f.write(os.urandom(400 * 1024 * 1024))
    site.configure()
    uids = {site.lab.initiator_pw().pw_uid, site.lab.grabber_pw().pw_uid}
    proc = site.lab.initiator_background("-c", site.initiator_config, "--now")
    seen: dict[tuple[int, str], tuple[str, caps.CapState, int]] = {}
    # The last sight of each (pid, program): its steady state.  (A process is
    # caught between setresuid and no_new_privs in drop_to_user, or the
    # grabber between the launcher's exec and hold_quietly, if sampled early;
    # both are before either reads a byte from the other side.)  The
    # grabber's is taken while the receiver runs: after the pull it raises
    # CAP_DAC_OVERRIDE and CAP_FOWNER for moments to delete trees (removal.py),
    # and it may be last seen there.
    grabber_last: dict[int, caps.CapState] = {}
    while proc.poll() is None:
        found_now = _snapshot_processes(uids)
        receiving = any(c.startswith("/usr/bin/rsync -a") for c, _, _ in found_now.values())
        for pid, found in found_now.items():
            if "pullsnap.grabber." not in found[0] or receiving:
                seen[(pid, found[0])] = found
            if "pullsnap.grabber." in found[0]:
                grabber_last[pid] = found[1]
        time.sleep(0.002)
    _, err = proc.communicate()
    assert proc.returncode == errors.OK, err
    roles: dict[str, list[caps.CapState]] = {}
    for cmdline, state, uid in seen.values():
        roles.setdefault(_role(cmdline, uid, site.lab), []).append(state)
    for role in ("initiator", "sshd", "sender", "grabber", "receiver", "receiver-ssh",
                 "initiator-tool", "hasher"):  # fmt: skip
        assert role in roles, f"never saw the {role}: {sorted(roles)}"

    for state in roles["initiator"]:
        assert state.effective == frozenset() and state.permitted == DAC
        assert state.bounding == DAC and state.no_new_privs
    for role in ("sshd", "sender", *(("gate",) if "gate" in roles else ())):
        for state in roles[role]:
            assert state.effective == state.permitted == state.ambient == DAC, (role, state)
            assert state.bounding == DAC and state.no_new_privs, (role, state)
    for state in roles["grabber"]:
        assert state.effective == frozenset() and state.ambient == frozenset()
        assert state.permitted == frozenset(caps.GRABBER_LAUNCHER_CAPS)
    for state in roles["hasher"]:  # reads the new snapshot, as root's files need
        assert state.effective == state.permitted == {"dac_override"}, state
        assert state.ambient == frozenset() and state.no_new_privs, state  # no exec gains more
    # The grabber's last sighting: at worst mid-deletion, never more.
    grabbers = {pid for (pid, _), (c, _, u) in seen.items() if _role(c, u, site.lab) == "grabber"}
    for state in (s for pid, s in grabber_last.items() if pid in grabbers):
        assert state.effective <= {"dac_override", "fowner"} and state.ambient == frozenset()
    for state in roles["receiver"]:
        assert state.effective == state.ambient == SUPER, state
        assert "sys_admin" not in state.permitted and state.no_new_privs
    # ssh and ssh-keygen get nothing, not even inheritable (children.with_pdeathsig).
    for role in ("receiver-ssh", "backup-sshd", "initiator-tool"):
        for state in roles.get(role, []):
            assert state.effective == state.permitted == state.ambient == frozenset(), state
            if role == "initiator-tool":
                assert state.inheritable == frozenset(), state


def test_btrfs_deletions_hold_cap_sys_admin_only_in_their_own_child(btrfs_site: Site) -> None:
    """A btrfs run whose retention deletes a read-only subvolume: no process
    of the grabber user but the deletion child ever holds CAP_SYS_ADMIN
    effective, and that child holds nothing else but CAP_DAC_OVERRIDE and
    CAP_FOWNER."""
    site = btrfs_site
    rules = {"keep_within": 0, "keep_daily": 1, "keep_weekly": 0, "keep_monthly": 0,
             "keep_yearly": 0, "suspect_drop": 0}  # fmt: skip
    site.regrab(min_keep=1, policy=rules)
    os.makedirs(site.src)
    with open(os.path.join(site.src, "big"), "wb") as f:
        f.write(os.urandom(64 * 1024 * 1024))
    uid = site.lab.grabber_pw().pw_uid
    with site.super_mode():
        for _ in range(2):
            assert site.run().returncode == errors.OK
        first = site.snapshots()[0]
        site.configure()
        proc = site.lab.initiator_background("-c", site.initiator_config, "--now")
        seen: dict[int, tuple[str, caps.CapState, int]] = {}
        while proc.poll() is None:
            for pid, found in _snapshot_processes({uid}).items():
                if found[1].effective or pid not in seen:
                    seen[pid] = found  # every sighting with something effective counts
                roles = _role(found[0], found[2], site.lab)
                starting = found[1].effective == frozenset(caps.GRABBER_LAUNCHER_CAPS)
                if starting and roles == "grabber":
                    continue  # the launcher's exec, before hold_quietly (SECURITY.md)
                if "sys_admin" in found[1].effective and roles != "subvolume-delete":
                    # Only the receiver-to-be, between fork and exec, building
                    # its mount namespace (confine/receiver.py): that alone.
                    assert roles == "grabber" and found[1].effective == {"sys_admin"}, found
                    assert _parent(pid) in seen and _parent(pid) != 1, found
                if roles == "subvolume-delete":
                    assert found[1].effective <= set(subvoldelete.KEEP), found
                    assert found[1].no_new_privs, found
                if roles == "receiver":
                    assert "sys_admin" not in found[1].permitted, found
            time.sleep(0.001)
        _, err = proc.communicate()
    assert proc.returncode == errors.OK, err
    assert first not in site.snapshots()
    assert not os.path.exists(os.path.join(site.host_dir(), first))
    assert {_role(c, u, site.lab) for c, _, u in seen.values()} >= {"grabber", "receiver"}
