"""Binding a backed-up host's login key to its name in authorized_keys.

grabber authorize HOST 'ssh-ed25519 AAAA...'   bind a host's login key
    [--from ADDR[,ADDR...]]                     only from these addresses or networks
grabber deauthorize HOST                        remove its lines
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Sequence

from pullsnap.errors import UsageError
from pullsnap.grabber.session import binding
from pullsnap.grabber.store import atomicfile


def authorized_keys_path(user: str) -> str:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise UsageError(f"no user {user!r}: create the grabber user first (README)") from None
    return os.path.join(entry.pw_dir, ".ssh", "authorized_keys")


def _host_of(line: str) -> str | None:
    """The host a pullsnap line binds, or None for any other line (pure)."""
    marker = f'command="{binding.FORCED_PREFIX} host='
    start = line.find(marker)
    if start < 0:
        return None
    rest = line[start + len(marker) :]
    return rest.split('"', 1)[0].split(" ", 1)[0]


def with_host(text: str, host: str, new_line: str | None) -> str:
    """authorized_keys text without `host`'s lines, plus `new_line` (pure)."""
    kept = [line for line in text.splitlines(keepends=True) if _host_of(line) != host]
    if kept and not kept[-1].endswith("\n"):
        kept[-1] += "\n"
    return "".join(kept) + (new_line or "")


def _replace(path: str, text: str, owner: tuple[int, int]) -> None:
    """Write atomically (atomicfile), 0600, the user's: sshd reads it as the user."""
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700)
        # sshd reads authorized_keys as the user (sshd(8) FILES): a ~/.ssh
        # that root made and kept would hide it.
        if os.geteuid() == 0:
            os.chown(directory, *owner)
    atomicfile.replace(path, text.encode("utf-8"), 0o600, owner)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def authorize(
    user: str, host: str, public_key: str, config: str | None = None, sources: Sequence[str] = ()
) -> str:
    """Bind `public_key` to `host` (replacing earlier lines for that host),
    usable only from `sources` when given."""
    line = binding.authorized_keys_line(host, public_key, config, sources)
    path = authorized_keys_path(user)
    entry = pwd.getpwnam(user)
    _replace(path, with_host(_read(path), host, line), (entry.pw_uid, entry.pw_gid))
    return line


def deauthorize(user: str, host: str) -> bool:
    binding.check_host_name(host)
    path = authorized_keys_path(user)
    before = _read(path)
    after = with_host(before, host, None)
    if after == before:
        return False
    entry = pwd.getpwnam(user)
    _replace(path, after, (entry.pw_uid, entry.pw_gid))
    return True
