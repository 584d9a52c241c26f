"""Reading authorized_keys back: bound lines pass, everything else is named."""

from __future__ import annotations

import base64
import struct

import pytest

from pullsnap.grabber.session.binding import authorized_keys_line
from pullsnap.grabber.setup import keyfile


def _key(kind: str = "ssh-ed25519", seed: bytes = b"k") -> str:
    blob = struct.pack(">I", len(kind)) + kind.encode() + struct.pack(">I", 32) + seed * 32
    return f"{kind} {base64.b64encode(blob).decode()}"


def _audit(*lines: str) -> list[keyfile.Verdict]:
    return keyfile.audit("".join(line if line.endswith("\n") else line + "\n" for line in lines),
                         "/home/pullsnap/.ssh/authorized_keys")  # fmt: skip


def test_bound_lines_pass_with_fingerprint() -> None:
    [verdict] = _audit("# comment", "", authorized_keys_line("web1", _key() + " c"))
    assert (verdict.line, verdict.host, verdict.problem) == (3, "web1", "")
    assert verdict.detail.startswith("ssh-ed25519 SHA256:")


def test_fingerprint_matches_ssh_keygen_format() -> None:
    line = keyfile.parse_line(1, _key())
    assert line is not None and line.fingerprint().startswith("SHA256:")
    assert "=" not in line.fingerprint()


def test_options_with_quoted_commas_and_escaped_quotes() -> None:
    options, rest = keyfile.split_options('restrict,command="a, \\"b\\" c",from="10.0.0.1" k v')
    assert options == ["restrict", 'command="a, \\"b\\" c"', 'from="10.0.0.1"'] and rest == "k v"
    line = keyfile.parse_line(1, f'restrict,command="x \\"y\\"" {_key()}')
    assert line is not None and line.option("command") == 'x "y"' and line.option("restrict") == ""
    assert line.option("from") is None


@pytest.mark.parametrize(
    "text, words",
    [
        (_key(), "is not bound to a host"),
        (f'command="sh" {_key()}', "not bound to a host (its authorized_keys line needs"),
        (f'restrict,command="pullsnap-grabber host=../x" {_key()}', "is not allowed"),
        (f'command="pullsnap-grabber host=web1" {_key()}', "no `restrict` option"),
        ("ssh-ed25519 !!!", "malformed: the key is not valid base64"),
        (f'restrict,command="unclosed {_key()}', "quotes are not closed"),
        ("ssh-rsa " + _key().split()[1], "the key says it is 'ssh-ed25519'"),
        ("from=x", "malformed: no key type"),
    ],
)  # fmt: skip
def test_unusable_lines_are_named_with_a_fix(text: str, words: str) -> None:
    [verdict] = _audit(text)
    assert words in verdict.problem and verdict.fix
    assert "line 1" in verdict.fix or "authorize" in verdict.fix


def test_the_same_key_bound_twice_only_counts_once() -> None:
    first = authorized_keys_line("web1", _key())
    second = authorized_keys_line("web2", _key())
    one, two = _audit(first, second)
    assert one.problem == "" and one.host == "web1"
    assert "bound on line 1 to web1 already" in two.problem


def test_a_line_bound_to_source_addresses_says_so() -> None:
    line = authorized_keys_line("web7", _key() + " c", sources=["10.7.0.17", "192.0.2.0/24"])
    [verdict] = _audit(line)
    assert (verdict.host, verdict.problem) == ("web7", "")
    assert verdict.detail.endswith(", only from 10.7.0.17,192.0.2.0/24")


def test_a_line_bound_to_another_configuration_is_a_problem_with_a_runnable_fix() -> None:
    """A line without `config=` reads the default file; with /srv/g.toml in
    use that host's backups would go elsewhere.  The fix names the file, binds
    it and carries the key itself, so it runs as printed."""
    text = authorized_keys_line("web1", _key()) + authorized_keys_line("web2", _key(seed=b"m"),
                                                                     "/srv/g.toml")  # fmt: skip
    first, second = keyfile.audit(text, "/k", "/srv/g.toml", "opsv")
    assert "web1 is bound to config the default /etc/pullsnap/grabber.toml" in first.problem
    assert first.fix == (
        f"grabber --config /srv/g.toml authorize --bind-config --user opsv web1 '{_key()}' "
        "rewrites it"
    )
    assert second.problem == "" and second.host == "web2"
    [default] = keyfile.audit(authorized_keys_line("web1", _key()), "/k",
                              "/etc/pullsnap/grabber.toml")  # fmt: skip
    assert default.problem == ""


def test_every_line_is_held_to_the_configuration_and_a_rewrite_keeps_its_addresses() -> None:
    ok = authorized_keys_line("web2", _key(seed=b"m"), "/srv/g.toml")
    other = authorized_keys_line("web1", _key(), sources=["10.7.0.17"])
    first, second = keyfile.audit(ok + other, "/k", "/srv/g.toml")
    assert first.problem == "" and "is bound to config the default" in second.problem
    assert second.fix == (f"grabber --config /srv/g.toml authorize --bind-config --from "
                          f"10.7.0.17 web1 '{_key()}' rewrites it")  # fmt: skip
