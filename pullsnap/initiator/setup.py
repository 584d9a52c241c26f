"""`initiator setup`: make a host ready to be backed up, once, as root.

    creates what is missing                    checks what exists
    ─────────────────────                      ──────────────────
    the key directory (0755)                   the login key's owner and mode
    runtime_dir, if set (0700, the user's)     its type (ed25519 expected)
    each destination's login key:              the runtime directory
      ssh-keygen -t ed25519 -N '' (0600, the user's; .pub 0644)

then prints, per backup host, the exact command its operator runs there
(and how to run it when that host's grabber configuration is elsewhere):

    grabber authorize web1 'ssh-ed25519 AAAA... pullsnap@web1'

and runs `initiator check`.  Nothing that exists is changed: a wrong owner
or mode is a problem line with the command that fixes it.
"""

from __future__ import annotations

import os
import pwd
import socket
import sys
from collections.abc import Iterator

from pullsnap import errors, findings, oneshot
from pullsnap.config import Destination, InitiatorConfig
from pullsnap.findings import Finding
from pullsnap.initiator import advice, check
from pullsnap.names import check_host_name


def default_host_name(hostname: str) -> str:
    """The repository name for this host: its short name, lowercased (pure)."""
    return hostname.split(".", 1)[0].lower()


def _ensure_dir(path: str, mode: int, owner: pwd.struct_passwd | None) -> Iterator[Finding]:
    if os.path.isdir(path):
        return
    os.makedirs(path, mode=mode)
    os.chmod(path, mode)
    if owner is not None and os.geteuid() == 0:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    whose = f", {owner.pw_name}'s" if owner is not None else ""
    yield Finding(True, f"created {path} (mode {mode:04o}{whose})")


def _make_key(cfg: InitiatorConfig, path: str, host: str, user: pwd.struct_passwd) -> Finding:
    done = oneshot.run(
        [cfg.ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", f"pullsnap@{host}", "-f", path]
    )
    if not done.ok:
        return Finding(False, f"ssh-keygen failed: {done.stderr.strip()}", f"check {path}")
    for name, mode in ((path, 0o600), (path + ".pub", 0o644)):
        os.chmod(name, mode)
        if os.geteuid() == 0:
            os.chown(name, user.pw_uid, user.pw_gid)
    return Finding(True, f"created login key {path} (ed25519, {user.pw_name}'s, 0600)")


def _public_key(cfg: InitiatorConfig, path: str) -> str:
    try:
        with open(path + ".pub", encoding="ascii") as f:
            return f.read().strip()
    except FileNotFoundError:
        # ssh-keygen -y derives it from the private key (ssh-keygen(1)).
        done = oneshot.run([cfg.ssh_keygen, "-y", "-f", path])
        if not done.ok:
            raise errors.Unreadable(f"the public half of {path}", done.stderr.strip()) from None
        return done.stdout.strip()


def prepare(cfg: InitiatorConfig, host: str, out: list[str]) -> Iterator[Finding]:
    """Create what is missing; append the authorize commands to `out`."""
    try:
        user = pwd.getpwnam(check.run_user(cfg))
    except KeyError:
        yield Finding(False, f"user {check.run_user(cfg)!r} does not exist",
                      f"useradd --system --user-group --shell /bin/sh --password '*' "
                      f"--home-dir /var/lib/pullsnap --create-home {cfg.user}")  # fmt: skip
        return
    if cfg.runtime_dir:
        yield from _ensure_dir(cfg.runtime_dir, 0o700, user)
    keys: dict[str, list[Destination]] = {}
    for dest in cfg.destinations:
        keys.setdefault(dest.identity_file, []).append(dest)
    for path, dests in keys.items():
        yield from _ensure_dir(os.path.dirname(path), 0o755, None)
        if not os.path.exists(path):
            made = _make_key(cfg, path, host, user)
            yield made
            if not made.ok:
                continue
        public = _public_key(cfg, path)
        if not public.startswith("ssh-ed25519 "):
            yield Finding(True, f"login key {path} is {public.split()[0]}, not ed25519",
                          "fine for ssh; setup makes ed25519 keys", note=True)  # fmt: skip
        for dest in dests:
            out.append(f"# on {dest.host} (destination {dest.name}), as root:")
            out.extend(advice.grabber_authorize(host, public, dest.user))


def run(cfg: InitiatorConfig, name: str | None) -> int:
    try:
        host = check_host_name(name or default_host_name(socket.gethostname()))
    except errors.BindingError as e:
        raise errors.UsageError(f"{e}: pass --name NAME") from None
    lines: list[str] = []
    problems = findings.print_all(
        findings.guarded(lambda: prepare(cfg, host, lines), "setup"), sys.stdout
    )
    if lines:
        print("\nBind this host's login key to the name", repr(host), "on each backup host:\n")
        for line in lines:
            print(f"    {line}")
        print("\nOnce that line was run there, check end to end from here: "
              f"{advice.initiator(cfg, 'check', '--probe')}\n")  # fmt: skip
    print(f"{advice.initiator(cfg, 'check')}:")
    checked = check.run(cfg)
    return errors.FAILED if problems else checked
