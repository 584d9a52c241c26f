"""The backup host's key: ssh's refusal read back, fingerprints as OpenSSH
computes them, known_hosts lookups by ssh's rule, and the fix lines."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from pullsnap.config import Destination
from pullsnap.initiator import hostkeys
from pullsnap.initiator.hostkeys import HostKey

# What ssh 9.2 prints (LogLevel=ERROR, StrictHostKeyChecking=yes), verbatim.
CHANGED = """\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
SHA256:NJElZehE4adTQNmuTqCYXXpQBqTqSgh+hz5Z9KixLVg.
Please contact your system administrator.
Add correct host key in kh to get rid of this message.
Offending ED25519 key in kh:1
  remove with:
  ssh-keygen -f "kh" -R "[127.0.0.1]:24222"
Host key for [127.0.0.1]:24222 has changed and you have requested strict checking.
Host key verification failed.
"""
UNKNOWN = """\
No ED25519 host key is known for [127.0.0.1]:24222 and you have requested strict checking.
Host key verification failed.
"""


def _key(tmp_path: Path, name: str, kind: str = "ed25519") -> tuple[str, str]:
    """(public key line, fingerprint) from ssh-keygen itself."""
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)
    listed = subprocess.run(["ssh-keygen", "-lf", f"{path}.pub"], capture_output=True,
                            text=True, check=True).stdout.split()  # fmt: skip
    return " ".join((tmp_path / f"{name}.pub").read_text().split()[:2]), listed[1]


def test_the_refusal_is_read_from_what_ssh_prints() -> None:
    assert hostkeys.parse_refusal(CHANGED) == hostkeys.Refusal(
        "ED25519", "SHA256:NJElZehE4adTQNmuTqCYXXpQBqTqSgh+hz5Z9KixLVg", changed=True
    )
    assert hostkeys.parse_refusal(UNKNOWN) == hostkeys.Refusal("ED25519", "", changed=False)
    assert hostkeys.parse_refusal("ssh: connect to host x port 22: Connection refused\n") is None


def test_fingerprints_are_the_ones_ssh_keygen_shows(tmp_path: Path) -> None:
    for kind in ("ed25519", "ecdsa", "rsa"):
        public, fingerprint = _key(tmp_path, kind, kind)
        [key] = hostkeys.parse_lines(f"[h]:2222 {public}\n")
        assert key.key_type == kind.upper()
        assert key.fingerprint == fingerprint


def test_the_shown_key_is_the_first_of_a_pinned_type_else_the_first_offered() -> None:
    ed, ec, rsa = HostKey("ED25519", "AAAA1"), HostKey("ECDSA", "AAAA2"), HostKey("RSA", "AAAA3")
    assert hostkeys.accepted([ed], [rsa, ec, ed]) == (ed, True)
    assert hostkeys.accepted([rsa], [ed, rsa]) == (rsa, True)
    assert hostkeys.accepted([HostKey("ED25519", "other")], [ed, rsa]) == (ed, False)
    assert hostkeys.accepted([HostKey("DSA", "x")], [rsa, ed]) == (ed, False)
    assert hostkeys.accepted([ed], []) == (None, False)


def test_lookups_follow_ssh_for_port_and_bare_host_lines(tmp_path: Path) -> None:
    real, _ = _key(tmp_path, "real")
    other, _ = _key(tmp_path, "other")
    ecdsa, _ = _key(tmp_path, "ecdsa", "ecdsa")
    known = tmp_path / "known_hosts"
    dest = Destination(name="v", host="Vault.Example", port=2222, known_hosts=str(known),
                       sources=("/etc",))  # fmt: skip
    cases = [
        (f"vault.example {real}\n", [("ED25519", real, "vault.example")]),
        (f"[vault.example]:2222 {real}\n", [("ED25519", real, "[vault.example]:2222")]),
        # Any key under [host]:port, of any type, hides every bare host line.
        (f"[vault.example]:2222 {other}\nvault.example {real}\n",
         [("ED25519", other, "[vault.example]:2222")]),
        (f"[vault.example]:2222 {ecdsa}\nvault.example {real}\n",
         [("ECDSA", ecdsa, "[vault.example]:2222")]),
        (f"[vault.example]:2223 {real}\nother.example {real}\n", []),
    ]  # fmt: skip
    for text, expected in cases:
        known.write_text(text)
        found = hostkeys.pinned("ssh-keygen", dest)
        assert [(k.key_type, k.blob, k.name) for k in found] == [
            (kind, public.split()[1], name) for kind, public, name in expected
        ], text
    # Hashed names (HashKnownHosts) are found, and named by the lookup.
    known.write_text(f"[vault.example]:2222 {real}\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], capture_output=True, check=True)
    assert "vault.example" not in known.read_text()
    [key] = hostkeys.pinned("ssh-keygen", dest)
    assert (key.blob, key.name) == (real.split()[1], "[vault.example]:2222")


@pytest.mark.parametrize("port", [22, 2222])
def test_the_fix_compares_first_and_then_runs_as_printed(port: int) -> None:
    dest = Destination(name="v", host="vault.example", port=port,
                       known_hosts="/etc/pull snap/known_hosts", sources=("/etc",))  # fmt: skip
    fix = hostkeys.pin_fix(dest, "ED25519", "SHA256:abc", replace=True)
    compare, _, commands = fix.partition("; if they match: ")
    assert "SHA256:abc" in compare and "/etc/ssh/ssh_host_ed25519_key.pub" in compare
    forget, fetch = commands.split(" && ")
    name = "vault.example" if port == 22 else f"[vault.example]:{port}"
    assert shlex.split(forget) == ["ssh-keygen", "-R", name, "-f", "/etc/pull snap/known_hosts"]
    scan, target = fetch.split(" >> ")
    port_words = [] if port == 22 else ["-p", str(port)]
    assert shlex.split(scan) == ["ssh-keyscan", *port_words, "-t", "ed25519", "vault.example"]
    assert shlex.split(target) == ["/etc/pull snap/known_hosts"]
    message = hostkeys.refused_message(dest, hostkeys.parse_refusal(CHANGED))
    assert "SHA256:NJElZehE4adTQNmuTqCYXXpQBqTqSgh+hz5Z9KixLVg" in message and forget in message
    unknown = hostkeys.refused_message(dest, hostkeys.parse_refusal(UNKNOWN))
    assert "ssh-keygen -R" not in unknown and fetch in unknown
    # No fingerprint from ssh: the fix first shows it, without pinning anything.
    assert f"see its fingerprint: {scan} | ssh-keygen -lf -; compare it with `ssh-keygen" in (
        unknown
    )
