"""The handoff codec: exact round trips, and a refusal for everything else.

The grabber acts on this message before it knows anything else about the
caller, so every field is checked; each refusal is a `HandoffError` whose
message says what was wrong.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pullsnap import handoff
from pullsnap.errors import REFUSED, HandoffError
from pullsnap.handoff import Handoff

# DESIGN.md security properties: `./test.sh -m security` runs these.
pytestmark = pytest.mark.security

# --- real keys -------------------------------------------------------------------


@pytest.fixture(scope="session")
def ssh_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(private key text, "ssh-ed25519 AAAA..." without comment) from ssh-keygen."""
    path = tmp_path_factory.mktemp("handoff-key") / "k"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    private = path.read_text(encoding="ascii")
    kind, blob, _comment = Path(f"{path}.pub").read_text(encoding="ascii").split()
    return private, f"{kind} {blob}"


@pytest.fixture
def valid(ssh_key: tuple[str, str]) -> Handoff:
    private, public = ssh_key
    return Handoff(
        client_key=private,
        host_key=public,
        port=40022,
        user="backup",
        paths=("/etc", "/home"),
        excludes=(".cache/", "*.tmp"),
    )


def body_fields(h: Handoff) -> dict:
    """The JSON object `encode` puts on the wire, as a dict to tamper with."""
    data = handoff.encode(h)
    return json.loads(data.split(b"\n", 1)[1])


def wire(fields: object) -> bytes:
    body = json.dumps(fields).encode()
    return f"PULLSNAP-HANDOFF 1 {len(body)}\n".encode() + body


def refused(data: bytes, *words: str) -> HandoffError:
    with pytest.raises(HandoffError) as info:
        handoff.decode(data)
    message = str(info.value)
    assert message.startswith("bad handoff: ")
    for word in words:
        assert word in message, (word, message)
    assert info.value.exit_code == REFUSED
    return info.value


# --- round trips -------------------------------------------------------------------

_SEGMENT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc"),
        blacklist_characters="/*?[\x7f",
    ),
    min_size=1,
    max_size=20,
).filter(lambda s: s not in (".", ".."))
_PATH = st.lists(_SEGMENT, min_size=0, max_size=6).map(lambda parts: "/" + "/".join(parts))


def _plain_exclude(pattern: str) -> bool:
    """What an ordinary exclude looks like: no rule prefix, no merge-rule lookalike."""
    if pattern[0] in "+-!":
        return False
    first = pattern.replace(",", " ").replace("_", " ").split(" ", 1)[0]
    return first not in ("merge", "dir-merge", ".", ":")


_EXCLUDE = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x7f"),
    min_size=1,
    max_size=40,
).filter(_plain_exclude)
_USER = st.from_regex(r"[a-z_][a-z0-9_-]{0,31}", fullmatch=True)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    paths=st.lists(_PATH, min_size=1, max_size=8),
    excludes=st.lists(_EXCLUDE, max_size=8),
    port=st.integers(1, 65535),
    user=_USER,
    probe=st.booleans(),
)
def test_random_valid_handoffs_round_trip_exactly(
    ssh_key: tuple[str, str],
    paths: list[str],
    excludes: list[str],
    port: int,
    user: str,
    probe: bool,
) -> None:
    private, public = ssh_key
    original = Handoff(private, public, port, user, tuple(paths), tuple(excludes), probe)
    data = handoff.encode(original)
    header, body = data.split(b"\n", 1)
    assert header == f"PULLSNAP-HANDOFF 1 {len(body)}".encode()
    assert handoff.decode(data) == original
    # The stream reader's path: header first, then exactly the announced body.
    assert handoff.decode_header(header + b"\n") == len(body)
    assert handoff.decode_body(body) == original


def test_probe_needs_no_paths(valid: Handoff) -> None:
    probe = replace(valid, paths=(), probe=True)
    assert handoff.decode(handoff.encode(probe)) == probe
    with pytest.raises(HandoffError, match="no source paths"):
        handoff.encode(replace(valid, paths=(), probe=False))


def test_the_body_is_plain_ascii_json(valid: Handoff) -> None:
    h = replace(valid, paths=("/srv/données",))
    body = handoff.encode(h).split(b"\n", 1)[1]
    body.decode("ascii")
    assert json.loads(body)["paths"] == ["/srv/données"]


# --- framing -----------------------------------------------------------------------


def test_truncated_body_is_refused(valid: Handoff) -> None:
    data = handoff.encode(valid)
    refused(data[:-10], "announced", "arrived")


def test_header_that_lies_about_the_length_is_refused(valid: Handoff) -> None:
    data = handoff.encode(valid)
    header, body = data.split(b"\n", 1)
    refused(f"PULLSNAP-HANDOFF 1 {len(body) - 1}\n".encode() + body, "announced")
    refused(f"PULLSNAP-HANDOFF 1 {len(body) + 1}\n".encode() + body, "announced")
    assert handoff.decode(header + b"\n" + body) == valid


def test_oversized_length_is_refused_from_the_header_alone() -> None:
    too_big = handoff.MAX_BODY + 1
    with pytest.raises(HandoffError, match=f"{too_big} bytes is over"):
        handoff.decode_header(f"PULLSNAP-HANDOFF 1 {too_big}\n".encode())
    with pytest.raises(HandoffError):
        handoff.decode_header(b"PULLSNAP-HANDOFF 1 999999999\n")
    # Ten digits do not even parse as a header.
    with pytest.raises(HandoffError, match="not a pullsnap handoff header"):
        handoff.decode_header(b"PULLSNAP-HANDOFF 1 9999999999\n")
    assert handoff.decode_header(f"PULLSNAP-HANDOFF 1 {handoff.MAX_BODY}\n".encode()) == (
        handoff.MAX_BODY
    )


def test_wrong_version_is_refused(valid: Handoff) -> None:
    body = handoff.encode(valid).split(b"\n", 1)[1]
    refused(f"PULLSNAP-HANDOFF 2 {len(body)}\n".encode() + body, "version 2", "not supported")
    with pytest.raises(HandoffError, match="version 0"):
        handoff.decode_header(b"PULLSNAP-HANDOFF 0 10\n")


@pytest.mark.parametrize(
    "header",
    [
        b"PULLSNAP-HANDOF 1 10\n",
        b"pullsnap-handoff 1 10\n",
        b"SSH-2.0-OpenSSH_9.2\n",
        b"PULLSNAP-HANDOFF  1 10\n",
        b"PULLSNAP-HANDOFF 1 10\r\n",
        b"PULLSNAP-HANDOFF 1 -10\n",
        b"PULLSNAP-HANDOFF 1 10",
        b"",
    ],
)
def test_wrong_magic_or_malformed_header_is_refused(header: bytes) -> None:
    with pytest.raises(HandoffError, match="not a pullsnap handoff header"):
        handoff.decode_header(header)


def test_header_without_newline_in_reach_is_refused() -> None:
    refused(b"X" * 200 + b"\n{}", "not a pullsnap handoff header")


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"[]", b'"text"', b"null"])
def test_body_that_is_not_a_json_object_is_refused(body: bytes) -> None:
    data = f"PULLSNAP-HANDOFF 1 {len(body)}\n".encode() + body
    refused(data, "body is not")


# --- fields and types ----------------------------------------------------------------


def test_extra_field_is_refused(valid: Handoff) -> None:
    fields = body_fields(valid)
    fields["command"] = "rm -rf /"
    refused(wire(fields), "unknown field 'command'")


@pytest.mark.parametrize("name", ["client_key", "host_key", "port", "user", "paths", "excludes"])
def test_missing_field_is_refused(valid: Handoff, name: str) -> None:
    fields = body_fields(valid)
    del fields[name]
    refused(wire(fields), f"missing field {name!r}")


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("port", "40022", ("'port'", "int")),
        ("port", True, ("'port'", "int")),
        ("port", 40022.0, ("'port'", "int")),
        ("paths", "/etc", ("'paths'", "list")),
        ("paths", ["/etc", 7], ("'paths'", "list of strings")),
        ("excludes", ["*.tmp", None], ("'excludes'", "list of strings")),
        ("excludes", "*.tmp", ("'excludes'", "list")),
        ("user", ["backup"], ("'user'", "str")),
        ("client_key", None, ("'client_key'", "str")),
        ("probe", "false", ("'probe'", "bool")),
        ("probe", 0, ("'probe'", "bool")),
    ],
)
def test_wrong_types_are_refused(
    valid: Handoff, name: str, value: object, words: tuple[str, ...]
) -> None:
    fields = body_fields(valid)
    fields[name] = value
    refused(wire(fields), *words)


@pytest.mark.parametrize("port", [0, -1, 65536, 10**9])
def test_port_out_of_range_is_refused(valid: Handoff, port: int) -> None:
    fields = body_fields(valid)
    fields["port"] = port
    refused(wire(fields), f"port {port}", "out of range")


# --- keys ------------------------------------------------------------------------------

_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----\n"
_END = "-----END OPENSSH PRIVATE KEY-----\n"


def _armour(blob: bytes) -> str:
    text = base64.b64encode(blob).decode()
    lines = [text[i : i + 70] for i in range(0, len(text), 70)]
    return _BEGIN + "\n".join(lines) + "\n" + _END


def _bad_client_keys(private: str, public: str) -> list[str]:
    middle = private.splitlines()[1:-1]
    garbage = [*middle[:2], "this is not base64!", *middle[2:]]
    return [
        "",
        base64.b64encode(os.urandom(300)).decode(),
        _armour(os.urandom(300)),
        public,
        public + "\n",
        private.replace("OPENSSH PRIVATE KEY", "PRIVATE KEY"),
        _BEGIN + "\n".join(garbage) + "\n" + _END,
        _BEGIN + _END,
        private.replace("\n", "\r\n"),
        private + "trailing words\n",
        "junk\n" + private,
        _BEGIN + "\n".join(middle) + "\n" + _END.replace("OPENSSH", "RSA"),
        _armour(b"openssh-key-v1\0" + b"A" * 20000),
    ]


def test_real_private_key_is_accepted(ssh_key: tuple[str, str]) -> None:
    private, _public = ssh_key
    handoff.check_client_key(private)


def test_client_key_that_is_not_a_key_is_refused(valid: Handoff, ssh_key: tuple[str, str]) -> None:
    private, public = ssh_key
    for text in _bad_client_keys(private, public):
        fields = body_fields(valid)
        fields["client_key"] = text
        refused(wire(fields), "client_key is not an OpenSSH private key")


def test_host_key_must_be_one_bare_ed25519_key(valid: Handoff, ssh_key: tuple[str, str]) -> None:
    _private, public = ssh_key
    kind, blob = public.split()
    raw = base64.b64decode(blob)
    bad = [
        public + " comment@host",
        public + " ",
        " " + public,
        f"ssh-rsa {blob}",
        f"ecdsa-sha2-nistp256 {blob}",
        # right length, wrong algorithm name inside the blob
        f"{kind} " + base64.b64encode(raw.replace(b"ssh-ed25519", b"ssh-ed25518")).decode(),
        # a 31- and a 33-byte key
        f"{kind} " + base64.b64encode(raw[:-1]).decode(),
        f"{kind} " + base64.b64encode(raw + b"\0").decode(),
        f"{kind} {blob}\n",
        kind,
        "",
    ]
    for text in bad:
        fields = body_fields(valid)
        fields["host_key"] = text
        refused(wire(fields), "host_key is not an ssh-ed25519 public key")
    handoff.check_host_key(public)


# --- user -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "user",
    [
        "",
        "a/b",
        "..",
        "../root",
        "Backup",
        "ROOT",
        "a" * 33,
        "-oProxyCommand",
        "1abc",
        "a b",
        "ü",
        "backup\n",
    ],
)
def test_bad_user_names_are_refused(valid: Handoff, user: str) -> None:
    fields = body_fields(valid)
    fields["user"] = user
    refused(wire(fields), "not a valid login name")


@pytest.mark.parametrize("user", ["a", "_x", "backup-1", "a" * 32, "pull_snap"])
def test_ordinary_user_names_are_accepted(valid: Handoff, user: str) -> None:
    h = replace(valid, user=user)
    assert handoff.decode(handoff.encode(h)).user == user


# --- source paths ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "word"),
    [
        ("etc", "not absolute"),
        ("", "not absolute"),
        ("./etc", "not absolute"),
        ("~/x", "not absolute"),
        ("/etc/../root", "not normalised"),
        ("/..", "not normalised"),
        ("/etc/.", "not normalised"),
        ("/./etc", "not normalised"),
        ("//etc", "not normalised"),
        ("/etc//passwd", "not normalised"),
        ("/etc/", "not normalised"),
        ("/home/*", "glob"),
        ("/home/?", "glob"),
        ("/home/[ab]", "glob"),
        ("/etc\0/x", "control"),
        ("/etc\n/x", "control"),
        ("/etc\r", "control"),
        ("/etc\x1b[2J", "control"),
        ("/etc\x7f", "control"),
        ("/etc\tx", "control"),
        ("/" + "a" * handoff.MAX_PATH_LEN, "longer than"),
    ],
)
def test_bad_source_paths_are_refused(valid: Handoff, path: str, word: str) -> None:
    fields = body_fields(valid)
    fields["paths"] = ["/srv", path]
    error = refused(wire(fields), "source path", word)
    if len(path) < 100:
        assert repr(path) in str(error)


def test_too_many_paths_are_refused(valid: Handoff) -> None:
    fields = body_fields(valid)
    fields["paths"] = [f"/srv/{i}" for i in range(handoff.MAX_PATHS + 1)]
    refused(wire(fields), f"more than {handoff.MAX_PATHS} source paths")


@pytest.mark.parametrize("path", ["/", "/etc", "/home/user name", "/srv/o'brien", "/a.b/.hidden"])
def test_ordinary_source_paths_are_accepted(valid: Handoff, path: str) -> None:
    h = replace(valid, paths=(path,))
    assert handoff.decode(handoff.encode(h)).paths == (path,)


# --- excludes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        "+ /etc/shadow",
        "- *",
        "-",
        "!",
        "!x",
        "+",
        "merge /etc/rules",
        "merge,- rules",
        "dir-merge .rsync-filter",
        "dir-merge",
        ". /etc/rules",
        ".",
        ": .rsync-filter",
        ":",
        "--delete",
        "--include=*",
        "-f",
    ],
)
def test_rule_prefixes_and_options_are_refused_as_excludes(valid: Handoff, pattern: str) -> None:
    fields = body_fields(valid)
    fields["excludes"] = ["*.tmp", pattern]
    refused(wire(fields), "looks like an rsync option or filter rule")


@pytest.mark.parametrize("pattern", ["a\0b", "a\nb", "*.tmp\n+ /etc", "\r", "x\x7f"])
def test_excludes_with_control_bytes_are_refused(valid: Handoff, pattern: str) -> None:
    fields = body_fields(valid)
    fields["excludes"] = [pattern]
    refused(wire(fields), "control characters")


def test_empty_too_long_or_too_many_excludes_are_refused(valid: Handoff) -> None:
    for patterns, word in [
        ([""], "empty or too long"),
        (["x" * (handoff.MAX_EXCLUDE_LEN + 1)], "empty or too long"),
        (["*.tmp"] * (handoff.MAX_EXCLUDES + 1), f"more than {handoff.MAX_EXCLUDES}"),
    ]:
        fields = body_fields(valid)
        fields["excludes"] = patterns
        refused(wire(fields), word)


@pytest.mark.parametrize(
    "pattern",
    [
        ".cache/",
        "*.tmp",
        "/home/*/Downloads",
        ".git",
        "node_modules/",
        "*~",
        "**/tmp/**",
        "lost+found",
        "[Cc]ache",
        "a - b",
        "merged/",
        ".mergerc",
        "dir-merged",
    ],
)
def test_ordinary_excludes_are_accepted(valid: Handoff, pattern: str) -> None:
    h = replace(valid, excludes=(pattern,))
    assert handoff.decode(handoff.encode(h)).excludes == (pattern,)


def test_encode_refuses_what_decode_would_refuse(valid: Handoff) -> None:
    for bad in [
        replace(valid, paths=("relative",)),
        replace(valid, excludes=("+ /etc/shadow",)),
        replace(valid, user="Root"),
        replace(valid, port=0),
        replace(valid, host_key=valid.host_key + " comment"),
    ]:
        with pytest.raises(HandoffError):
            handoff.encode(bad)


def test_body_over_the_limit_is_refused_by_encode(valid: Handoff) -> None:
    long_paths = tuple(f"/{i:02d}" + "/x" * 1000 for i in range(40))
    with pytest.raises(HandoffError, match="over the"):
        handoff.encode(replace(valid, paths=long_paths))


# --- hostile bodies: a HandoffError, never another exception ---------------------------

# Text as JSON can spell it: any character, lone surrogates (U+D800..U+DFFF) often.
_ANY_TEXT = st.lists(
    st.one_of(st.characters(blacklist_categories=()), st.integers(0xD800, 0xDFFF).map(chr)),
    max_size=12,
).map("".join)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)


def _decoded_or_refused(data: bytes) -> Handoff | None:
    """decode's whole contract: a valid Handoff, or a HandoffError."""
    try:
        h = handoff.decode(data)
    except HandoffError as e:
        assert str(e).startswith("bad handoff: ")
        str(e).encode("utf-8")  # the refusal itself can be printed and sent
        return None
    handoff.validate(h)
    for text in (h.client_key, h.host_key, h.user, *h.paths, *h.excludes):
        text.encode("utf-8")
    return h


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("paths", ["/srv/\ud800"]),
        ("paths", ["/srv", "/home/\udcff"]),
        ("excludes", ["*.\ud800"]),
        ("excludes", ["\udfff"]),
    ],
)
def test_lone_surrogates_are_refused(valid: Handoff, name: str, value: list[str]) -> None:
    fields = body_fields(valid)
    fields[name] = value
    data = wire(fields)
    assert b"\\ud" in data.lower()  # json.dumps escapes them: valid UTF-8 on the wire
    refused(data, "not UTF-8 text", "lone surrogate")
    with pytest.raises(HandoffError, match="lone surrogate"):
        handoff.encode(replace(valid, **{name: tuple(value)}))


def test_a_surrogate_pair_is_one_character_and_accepted(valid: Handoff) -> None:
    fields = body_fields(valid)
    fields["paths"] = ["/srv/\U0001f600"]
    body = json.dumps(fields).encode()  # spelled "\ud83d\ude00"
    assert b"\\ud83d\\ude00" in body
    h = handoff.decode(f"PULLSNAP-HANDOFF 1 {len(body)}\n".encode() + body)
    assert h.paths == ("/srv/\U0001f600",)


@pytest.mark.parametrize("body", [b"[" * 60000, b'{"a":' * 12000, b"[{" * 30000 + b"]"])
def test_deep_nesting_is_refused_without_recursion(body: bytes) -> None:
    refused(b"PULLSNAP-HANDOFF 1 %d\n" % len(body) + body, "nests deeper")


def test_brackets_inside_strings_do_not_count_as_nesting(valid: Handoff) -> None:
    deep = "[" * 500 + '\\"{' * 100
    h = replace(valid, excludes=(deep,))
    assert handoff.decode(handoff.encode(h)).excludes == (deep,)
    fields = body_fields(valid)
    fields["paths"] = [[[["/etc"]]]]  # shallow enough to be named by its type
    refused(wire(fields), "'paths'", "list of strings")


def test_a_repeated_field_is_refused(valid: Handoff) -> None:
    """Parsers disagree on which of two values counts; none does here."""
    body = json.dumps(body_fields(valid))[:-1] + ', "paths": ["/root"]}'
    refused(wire_text(body), "field 'paths' appears twice")
    nested = json.dumps(body_fields(valid))[:-1] + ', "x": {"k": 1, "k": 2}}'
    refused(wire_text(nested), "appears twice")


def wire_text(body: str) -> bytes:
    data = body.encode()
    return f"PULLSNAP-HANDOFF 1 {len(data)}\n".encode() + data


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe{}",
        b'{"user": "\xc3"}',
        b'{"user": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8 bytes: invalid
        b"{\x00}",
        b'{"port": NaN}',
        b'{"port": Infinity}',
        b'{"port": 1' + b"0" * 5000 + b"}",
        b"\x00" * 100,
    ],
)
def test_bytes_that_are_not_a_json_object_of_text_are_refused(body: bytes) -> None:
    refused(b"PULLSNAP-HANDOFF 1 %d\n" % len(body) + body, "body is not")


def test_validate_checks_types_for_encode_too(valid: Handoff) -> None:
    for bad in [
        replace(valid, port="22"),
        replace(valid, paths=("/etc", 7)),
        replace(valid, paths="/etc"),
        replace(valid, excludes=(None,)),
        replace(valid, probe=1),
        replace(valid, user=b"backup"),
    ]:
        with pytest.raises(HandoffError, match="field '"):
            handoff.encode(bad)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(handoff.Handoff.__dataclass_fields__)), value=_JSON)
def test_any_value_in_any_field_is_decoded_or_refused(valid: Handoff, name: str, value) -> None:
    fields = body_fields(valid)
    fields[name] = value
    h = _decoded_or_refused(wire(fields))
    if h is not None:
        assert getattr(h, name) == (tuple(value) if isinstance(value, list) else value)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    which=st.sampled_from(["paths", "excludes"]),
    items=st.lists(st.one_of(_ANY_TEXT, _JSON), min_size=1, max_size=4),
)
def test_any_list_items_are_decoded_or_refused(valid: Handoff, which: str, items: list) -> None:
    fields = body_fields(valid)
    fields[which] = ["/srv" if which == "paths" else "*.tmp", *items]
    _decoded_or_refused(wire(fields))


@settings(max_examples=200)
@given(body=_JSON)
def test_any_json_body_is_decoded_or_refused(body) -> None:
    assert _decoded_or_refused(wire(body)) is None


@settings(max_examples=200)
@given(depth=st.integers(1, 5000), opener=st.sampled_from(["[", '{"k":', '{"paths":[']))
def test_any_nesting_is_decoded_or_refused(depth: int, opener: str) -> None:
    closer = {"[": "]", '{"k":': "}", '{"paths":[': "]}"}[opener]
    assert _decoded_or_refused(wire_text(opener * depth + "0" + closer * depth)) is None


@settings(max_examples=300)
@given(data=st.binary(max_size=300))
def test_any_bytes_are_decoded_or_refused(data: bytes) -> None:
    assert _decoded_or_refused(data) is None
    assert _decoded_or_refused(b"PULLSNAP-HANDOFF 1 %d\n" % len(data) + data) is None
