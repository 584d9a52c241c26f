"""The gate lets through only a read-only rsync sender inside the roots.

DESIGN "Security properties" 3.  The command lines under test come from the
installed rsync client itself: a fake remote shell records what the client
would have asked sshd to run.  Tests act as the ssh transport by setting
SSH_ORIGINAL_COMMAND themselves, as support/rrsync's tests do.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pullsnap.errors import GateRefused
from pullsnap.initiator import gate
from pullsnap.initiator.gate import GatePolicy, common_root, parse
from tests.initiator.gatelines import ACCEPTED_OPTIONS, RSYNC, WEIRD, sender

# DESIGN.md security properties: `./test.sh -m security` runs these.
pytestmark = pytest.mark.security

BLOB = "e.iLsfxCIvu"

# Kept apart from the module's tables on purpose: the tests state the policy
# on their own, so widening or shrinking it in gate.py fails here.
SAFE_LETTERS = frozenset("vnlogDtprHAXRxczWS")
DISABLED_LETTERS = "sLkKb"
_SAFE_LONG = """
    numeric-ids timeout bwlimit compress-choice compress-level new-compress old-compress
    checksum-choice inplace
"""
_DISABLED_LONG = """
    protect-args secluded-args copy-links copy-dirlinks keep-dirlinks backup copy-unsafe-links
    copy-devices write-devices remove-source-files remove-sent-files del delete delete-before
    delete-during delete-delay delete-after delete-excluded delete-missing-args log-file
    log-file-format files-from from0 rsync-path partial-dir temp-dir backup-dir link-dest
    compare-dest copy-dest mkpath daemon config debug iconv only-write-batch write-batch
    read-batch insecure-links confine-root
"""
SAFE_LONG = frozenset(_SAFE_LONG.split())
DISABLED_LONG = tuple(_DISABLED_LONG.split())

REFUSED_OPTIONS = [
    (["-s", "-a"], "option -s is not allowed"),
    (["-a", "--protect-args"], "option -s is not allowed"),
    (["-a", "--secluded-args"], "option -s is not allowed"),
    (["-aL"], "option -L is not allowed"),
    (["-ak"], "option -k is not allowed"),
    (["-a", "--backup", "--backup-dir=/x"], "option -b is not allowed"),
    (["-a", "--remove-source-files"], "option --remove-source-files is not allowed"),
    (["-a", "--copy-unsafe-links"], "option --copy-unsafe-links is not allowed"),
    (["-a", "--copy-devices"], "option --copy-devices is not allowed"),
    (["-a", "--iconv=utf8"], "option --iconv is not allowed"),
    (["-a", "-M--delete"], "option --delete is not allowed"),
    (["-a", "-M--log-file=/tmp/x"], "option --log-file is not allowed"),
    (["-a", "-M--confine-root=/"], "option --confine-root is not allowed"),
    (["-a", "--append"], "unknown option --append"),
    (["-a", "--info=stats2"], "unknown option --info"),
    (["-a", "--list-only"], "unknown option --list-only"),
    (["-a", "--block-size=1024"], "unknown option -B"),
    (["-a", "--checksum-seed=5"], "unknown option --checksum-seed"),
    (["-aU"], "unknown option -U"),
    (["-a", "--old-args"], "path b is not absolute"),
]


def assert_safe(argv: list[str], policy: GatePolicy) -> None:
    """What any accepted argv must look like, checked without the gate's code."""
    assert argv[:3] == [policy.rsync, "--server", "--sender"]
    end = argv.index("--")
    assert argv[end + 1] == "."
    options, paths = argv[3:end], argv[end + 2 :]
    assert paths
    confine = [o for o in options if o.startswith("--confine-root=")]
    assert confine == (
        [f"--confine-root={common_root(policy.roots)}"] if policy.confine_root else []
    )
    for option in options:
        if option.startswith("--"):
            name = option[2:].split("=", 1)[0]
            assert name in SAFE_LONG or option in confine
        else:
            # popt hands everything after `e` to -e: the capability string.
            assert set(option[1:].split("e", 1)[0]) <= SAFE_LETTERS
    roots = [os.path.realpath(r) for r in policy.roots]
    for path in paths:
        real = os.path.realpath(path)
        assert any(real == r or real.startswith(r + "/") for r in roots), path


# --- accepted command lines ---------------------------------------------------


@pytest.mark.parametrize("options", ACCEPTED_OPTIONS, ids=" ".join)
def test_real_client_lines_are_accepted_and_rebuilt(client_line, root, policy, options):
    paths = (f"{root}/etc", f"{root}/home/a b", f"{root}/{WEIRD}/", f"{root}/inner/")
    line = client_line(options, *paths)
    assert line.startswith("rsync --server --sender -") and "\\ " in line and "\\$" in line
    words = line.split(" . ", 1)[0].split(" ")[3:]
    assert parse(line, policy) == [
        RSYNC,
        "--server",
        "--sender",
        *words,
        f"--confine-root={root}",
        "--",
        ".",
        *paths,
    ]


def test_literal_lines_from_the_grabber():
    policy = GatePolicy(roots=("/etc", "/home"))
    line = (
        "rsync --server --sender -lHogDtpAXrRe.iLsfxCIvu --timeout=300 --numeric-ids"
        r" . /etc /home/a\ b"
    )
    assert parse(line, policy) == [
        "/usr/bin/rsync",
        "--server",
        "--sender",
        "-lHogDtpAXrRe.iLsfxCIvu",
        "--timeout=300",
        "--numeric-ids",
        "--",
        ".",
        "/etc",
        "/home/a b",
    ]
    line = "rsync --server --sender -lHogDtpAXrRze.iLsfxCIvu --bwlimit=100 --numeric-ids . /etc"
    assert parse(line, policy)[3:6] == [
        "-lHogDtpAXrRze.iLsfxCIvu",
        "--bwlimit=100",
        "--numeric-ids",
    ]
    assert parse("rsync --server --sender -nlogDtpre.iLsfxCIvu . /etc/", policy)[-3:] == [
        "--",
        ".",
        "/etc/",
    ]


def test_confine_root_is_the_common_root_and_can_be_turned_off(root):
    two = GatePolicy(roots=(f"{root}/etc", f"{root}/home/"))
    assert f"--confine-root={root}" in parse(sender(f"-r{BLOB}", f"{root}/etc"), two)
    off = GatePolicy(roots=(root,), confine_root=False)
    assert not any(a.startswith("--confine") for a in parse(sender("-r", f"{root}/etc"), off))
    assert common_root(["/etc", "/home"]) == "/"
    assert common_root([f"{root}/inner", f"{root}/home"]) == root


def test_symlink_inside_the_root_to_inside_is_accepted(root, policy):
    assert parse(sender("-r", f"{root}/inner/hosts"), policy)[-1] == f"{root}/inner/hosts"


def test_policy_needs_absolute_roots():
    for roots in ((), ("etc",), ("/etc", "home")):
        with pytest.raises(ValueError):
            GatePolicy(roots=roots)


def test_tables_are_consistent():
    assert not set(gate.SHORT_ALLOWED) & set(gate.SHORT_DISABLED)
    words = {n for n, k in gate.LONG_OPTIONS.items() if k is gate.Kind.WORD}
    assert words == set(gate.WORD_PATTERNS)
    assert set(gate.SHORT_ALLOWED) == SAFE_LETTERS
    assert set(gate.SHORT_DISABLED) == set(DISABLED_LETTERS)
    disabled = {n for n, k in gate.LONG_OPTIONS.items() if k is gate.Kind.DISABLED}
    assert set(gate.LONG_OPTIONS) - disabled == SAFE_LONG
    assert disabled == set(DISABLED_LONG)


# --- refusals -----------------------------------------------------------------


def refused(command: str | None, policy: GatePolicy) -> str:
    with pytest.raises(GateRefused) as e:
        parse(command, policy)
    return str(e.value)


@pytest.mark.parametrize(("options", "message"), REFUSED_OPTIONS, ids=str)
def test_real_client_lines_are_refused(client_line, root, policy, options, message):
    line = client_line(options, f"{root}/etc", f"{root}/home/a b")
    assert refused(line, policy) == message


@pytest.mark.parametrize("letter", DISABLED_LETTERS)
def test_disabled_letters_anywhere_in_a_cluster(real_lines, policy, letter):
    for line in real_lines:
        cluster = line.split(" ")[3]
        letters = cluster[1:].index("e") + 1
        for at in range(1, letters + 1):
            bad = line.replace(cluster, cluster[:at] + letter + cluster[at:], 1)
            assert refused(bad, policy) == f"option -{letter} is not allowed"


@pytest.mark.parametrize("name", DISABLED_LONG)
def test_disabled_long_options(root, policy, name):
    for word in (f"--{name}", f"--{name}=/tmp/x", f"--{name}=1"):
        line = sender(f"-r{BLOB} {word}", f"{root}/etc")
        assert refused(line, policy) == f"option --{name} is not allowed"


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ("--foo", "unknown option --foo"),
        ("--foo=1", "unknown option --foo"),
        ("--Timeout=5", "unknown option --Timeout"),
        ("--", "unknown option --"),
        ("-", "unknown option -"),
        ("-q", "unknown option -q"),
        ("-B1024", "unknown option -B"),
        ("-f-_x", "unknown option -f"),
        ("--server", "unknown option --server"),
        ("--sender", "unknown option --sender"),
        ("-re", "bad capability string in '-re'"),
        ("-re.iL-s", "bad capability string in '-re.iL-s'"),
        ("--timeout 300", "option --timeout needs its value as --timeout=VALUE"),
        ("--bwlimit 100", "option --bwlimit needs its value as --bwlimit=VALUE"),
        ("--numeric-ids=1", "option --numeric-ids takes no value"),
        ("--timeout=", "bad value '' for option --timeout"),
        ("--timeout=-1", "bad value '-1' for option --timeout"),
        ("--timeout=1e3", "bad value '1e3' for option --timeout"),
        ("--compress-choice=../x", "bad value '../x' for option --compress-choice"),
        ("--bwlimit=1\\ 0", "bad value '1\\\\ 0' for option --bwlimit"),
    ],
)
def test_bad_options(root, policy, words, message):
    assert refused(sender(f"-r{BLOB} {words}", f"{root}/etc"), policy) == message


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (None, "no command was given"),
        ("", "no command was given"),
        ("   ", "not an rsync sender command: nothing where 'rsync' belongs"),
        ("true", "not an rsync sender command: 'true' where 'rsync' belongs"),
        ("rsync", "not an rsync sender command: nothing where '--server' belongs"),
        ("sh -c id", "not an rsync sender command: 'sh' where 'rsync' belongs"),
        (
            "/usr/bin/rsync --server --sender -r . /x",
            "not an rsync sender command: '/usr/bin/rsync' where 'rsync' belongs",
        ),
        (
            "rsync --server -logDtpr . /x",
            "not an rsync sender command: '-logDtpr' where '--sender' belongs",
        ),
        (
            "rsync --sender --server -r . /x",
            "not an rsync sender command: '--sender' where '--server' belongs",
        ),
        (
            "rsync --server --sender -r /x",
            "unexpected word '/x' before the '.' that ends the options",
        ),
        ("rsync --server --sender -r", "no '.' ends the options"),
        ("rsync --server --sender -r .", "no source path after '.'"),
        ("rsync --server --sender -r . /x\\", "command line ends in a lone backslash"),
    ],
)
def test_not_a_sender_command(policy, command, message):
    assert refused(command, policy) == message


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/etc/shadow", "is outside the source roots"),
        ("{root}2/x", "is outside the source roots"),
        ("{root}/../outside", "has a '.' or '..' component"),
        ("{root}/etc/..", "has a '.' or '..' component"),
        ("{root}/./etc", "has a '.' or '..' component"),
        ("{root}/etc/.", "has a '.' or '..' component"),
        ("etc", "is not absolute"),
        (".", "is not absolute"),
        ("~/x", "is not absolute"),
        ("-x", "is not absolute"),
        ("{root}/*", "contains a glob character"),
        ("{root}/e?c", "contains a glob character"),
        ("{root}/[e]tc", "contains a glob character"),
        ("{root}/escape", "is outside the source roots"),
        ("{root}/escape/", "is outside the source roots"),
        ("{root}/escape/secret", "is outside the source roots"),
    ],
)
def test_paths_outside_the_roots(root, policy, path, message):
    path = path.format(root=root)
    assert refused(sender(f"-r{BLOB}", f"{root}/etc", path), policy) == f"path {path} {message}"


def test_escaped_glob_characters_are_refused_too(root, policy):
    line = f"rsync --server --sender -r . {root}/\\*"
    assert refused(line, policy) == f"path {root}/* contains a glob character"


@pytest.mark.parametrize("char", sorted(gate.SHELL_METACHARACTERS))
def test_unescaped_shell_metacharacters(root, policy, char):
    word = f"{root}/etc{char}id"
    line = f"rsync --server --sender -r . {word}"
    assert refused(line, policy) == f"unescaped shell metacharacter in {word!r}"
    assert refused(f"rsync --server --sender -r . {root}/etc {char}", policy).startswith(
        "unescaped shell metacharacter in "
    )
    # Escaped, the same character is only part of a file name.
    assert parse(sender("-r", f"{root}/etc{char}id"), policy)[-1] == f"{root}/etc{char}id"


@pytest.mark.parametrize("char", ["\x00", "\n", "\r", "\t", "\x1b", "\x7f", "\x01"])
def test_control_bytes(root, policy, char):
    for line in (
        sender("-r", f"{root}/e{char}tc"),
        f"rsync --server --sender -r . {root}/etc{char}",
    ):
        assert refused(line, policy) == f"control character {ord(char):#04x} in the command line"


def test_long_lines(root, policy):
    # Padding with slashes keeps the last path inside the root.
    line = sender("-r", f"{root}/etc").ljust(gate.MAX_COMMAND_BYTES, "/")
    assert len(line.encode()) == gate.MAX_COMMAND_BYTES
    assert parse(line, policy)[-1].startswith(f"{root}/etc/")
    assert refused(line + "/", policy) == "command line is longer than 65536 bytes"
    # Bytes, not characters: "é" is two bytes in UTF-8.
    line = sender("-r", f"{root}/" + "é" * (gate.MAX_COMMAND_BYTES // 2))
    assert refused(line, policy) == "command line is longer than 65536 bytes"


# --- properties -----------------------------------------------------------------

_WORDS = r"""
    . .. - -- -re.iLsfxCIvu -logDtpre.iLsfxCIvu -s -L -e.iLs -ee. -M--delete -f --numeric-ids
    --timeout=5 --bwlimit=1.5m --compress-choice=zstd /etc/shadow / \; ; $(id) \$HOME * \* ~ \~
"""
WORDS = [
    *gate.FIXED_WORDS,
    *_WORDS.split(),
    "--filter=merge\\ /etc/shadow",
    *(f"--{n}" for n in DISABLED_LONG),
    *(f"--{n}=/tmp/x" for n in DISABLED_LONG),
]


def path_words(root: str) -> st.SearchStrategy[str]:
    parts = ["etc", "home", "a\\ b", "escape", "inner", "..", ".", "", "x", "\\;", "*", "\\*"]
    inside = st.lists(st.sampled_from(parts), max_size=4).map(lambda p: "/".join([root, *p]))
    return st.one_of(inside, st.sampled_from(["/etc/shadow", "/", "etc", "-x", "\\~", "."]))


def option_words() -> st.SearchStrategy[str]:
    letters = st.text(alphabet="vnlogDtprHAXRxczWSsLkKbBdfMTu0@-", max_size=10)
    blob = st.sampled_from(["", BLOB, "e.", "e31.iLs", "e", "e.x;", "e.-s"])
    cluster = st.tuples(letters, blob).map(lambda t: "-" + t[0] + t[1])
    names = st.sampled_from([*gate.LONG_OPTIONS, "info", "server", "sender", "Timeout", ""])
    values = st.sampled_from(["", "=", "=5", "=-5", "=1.5m", "=zstd", "=xxh64,md5", "=/tmp/x"])
    longs = st.tuples(names, values).map(lambda t: f"--{t[0]}{t[1]}")
    return st.one_of(cluster, longs, st.sampled_from(WORDS))


def word_strategy(root: str) -> st.SearchStrategy[str]:
    return st.one_of(option_words(), path_words(root), st.text(max_size=8))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_string_is_refused_or_safe(root, policy, data):
    shaped = st.tuples(st.lists(option_words(), max_size=3), st.lists(path_words(root), max_size=3))
    sender_like = shaped.map(lambda t: " ".join([*gate.FIXED_WORDS, *t[0], ".", *t[1]]))
    command = data.draw(
        st.one_of(
            st.text(),
            st.binary().map(lambda b: b.decode("utf-8", "surrogateescape")),
            st.lists(word_strategy(root), max_size=10).map(" ".join),
            sender_like,
            sender_like,
        )
    )
    try:
        argv = parse(command, policy)
    except GateRefused as e:
        event(f"refused: {str(e).split(' ')[0]}")
        return
    event("accepted")
    assert_safe(argv, policy)


def mutate(line: str, ops: list[tuple[str, int, str]]) -> str:
    for op, at, payload in ops:
        words = line.split(" ")
        if op == "insert-char":
            line = line[: at % (len(line) + 1)] + payload + line[at % (len(line) + 1) :]
        elif op == "delete-chars":
            at %= len(line) + 1
            line = line[:at] + line[at + len(payload) :]
        elif op == "replace-char" and line:
            at %= len(line)
            line = line[:at] + payload + line[at + 1 :]
        elif op == "insert-word":
            words.insert(at % (len(words) + 1), payload)
            line = " ".join(words)
        elif op == "replace-word":
            words[at % len(words)] = payload
            line = " ".join(words)
        elif op == "delete-word":
            del words[at % len(words)]
            line = " ".join(words)
        elif op == "option-before-dot":
            line = line.replace(" . ", f" {payload} . ", 1)
        elif op == "letter-into-cluster":
            cluster = words[3] if len(words) > 3 else "-"
            cut = at % len(cluster) if len(cluster) > 1 else 1
            line = line.replace(cluster, cluster[:cut] + payload + cluster[cut:], 1)
    return line


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_real_lines_never_let_a_write_option_through(real_lines, root, policy, data):
    line = data.draw(st.sampled_from(real_lines))
    chars = st.sampled_from([*" \\;|&$`'\"()<>{}!#*?[.-/=eLksKbMf0\n\x00", "é"])
    op = st.one_of(
        st.tuples(st.sampled_from(["insert-char", "replace-char"]), st.integers(0, 500), chars),
        st.tuples(st.just("delete-chars"), st.integers(0, 500), st.text(max_size=6)),
        st.tuples(
            st.sampled_from(["insert-word", "replace-word", "delete-word"]),
            st.integers(0, 50),
            word_strategy(root),
        ),
        st.tuples(st.just("letter-into-cluster"), st.integers(0, 40), st.sampled_from("sLkKbfMT0")),
        st.tuples(
            st.just("option-before-dot"),
            st.just(0),
            st.sampled_from(DISABLED_LONG).flatmap(
                lambda n: st.sampled_from([f"--{n}", f"--{n}=/tmp/x", f"--{n}=1", f"--{n} /tmp"])
            ),
        ),
    )
    mutated = mutate(line, data.draw(st.lists(op, min_size=1, max_size=5)))
    try:
        argv = parse(mutated, policy)
    except GateRefused as e:
        event(f"refused: {str(e).split(' ')[0]}")
        return
    event("accepted")
    assert_safe(argv, policy)
