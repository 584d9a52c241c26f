"""The gate lets through only a read-only rsync sender inside the roots.

DESIGN "Security properties" 3.  The command lines under test come from the
installed rsync client itself: a fake remote shell records what the client
would have asked sshd to run.  Tests act as the ssh transport by setting
SSH_ORIGINAL_COMMAND themselves, as support/rrsync's tests do.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pullsnap.errors import GateRefused
from pullsnap.initiator import gate, gatecmd
from pullsnap.initiator.gate import GatePolicy, common_root, parse

# DESIGN.md security properties: `./test.sh -m security` runs these.
pytestmark = pytest.mark.security

REPO = Path(__file__).resolve().parents[2]
RSYNC = shutil.which("rsync") or "/usr/bin/rsync"
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
WEIRD = "x$y;z&|<>(){}\"'`!~#=,%+@^\\q é"

# rsync's client options we support, as the grabber and probes use them.
ACCEPTED_OPTIONS = [
    ["-a"],
    ["-aHAX"],
    ["-az"],
    ["-a", "--numeric-ids"],
    ["-aHAX", "--numeric-ids", "--inplace", "--delete", "--delete-excluded"],
    ["-a", "--timeout=300"],
    ["-a", "--bwlimit=100"],
    ["-a", "--bwlimit=1.5m"],
    ["-aR"],
    ["-an"],
    ["-ax"],
    ["-axx"],
    ["-ac"],
    ["-aW"],
    ["-aS"],
    ["-av"],
    ["-avv"],
    ["-r"],
    ["-aHAXRxz", "--numeric-ids", "--timeout=300", "--bwlimit=100"],
    ["-az", "--zc=zstd", "--zl=3"],
    ["-az", "--zc=zstd", "--zl=-5"],
    ["-azz"],
    ["-a", "--old-compress"],
    ["-ac", "--cc=xxh128"],
    ["-ac", "--cc=xxh64,md5"],
]
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


def escape(path: str) -> str:
    """Escape a file name the way rsync's client does (options.c safe_arg())."""
    return "".join("\\" + c if c in "!\"#$&'();<>`{|} \t\n\\" else c for c in path)


def sender(options: str, *paths: str) -> str:
    return f"rsync --server --sender {options} . " + " ".join(escape(p) for p in paths)


@pytest.fixture(scope="session")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """<base>/root (the source root) and <base>/outside, with links between."""
    base = tmp_path_factory.mktemp("gate")
    root, outside = base / "root", base / "outside"
    for d in (root / "etc", root / "home" / "a b", root / WEIRD, outside, base / "root2"):
        d.mkdir(parents=True)
    (root / "etc" / "hosts").write_text("hosts\n")
    (root / WEIRD / "f").write_text("weird\n")
    (outside / "secret").write_text("secret\n")
    (root / "escape").symlink_to(outside)
    (root / "inner").symlink_to(root / "etc")
    return base


@pytest.fixture(scope="session")
def root(tree: Path) -> str:
    return str(tree / "root")


@pytest.fixture(scope="session")
def policy(root: str) -> GatePolicy:
    return GatePolicy(roots=(root,))


@pytest.fixture(scope="session")
def client_line(tree: Path):
    """Run the real rsync client; return the command it asks the remote shell for."""
    fake = tree / "fake-ssh"
    fake.write_text(
        "#!/bin/sh\n"
        "# rsync runs: SHELL [-l USER] HOST rsync --server ...; keep the remote command.\n"
        'while [ $# -gt 0 ] && [ "$1" != rsync ]; do shift; done\n'
        'printf \'%s\' "$*" > "$CAPTURE"\n'
        "exit 1\n"
    )
    fake.chmod(0o755)
    capture = tree / "captured"

    def run(options: list[str], *paths: str) -> str:
        sources = [f"u@h:{paths[0]}", *(f":{p}" for p in paths[1:])]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CAPTURE": str(capture)}
        capture.unlink(missing_ok=True)
        argv = [RSYNC, *options, "-e", str(fake), *sources, str(tree / "dest")]
        subprocess.run(argv, env=env, capture_output=True, timeout=30, check=False)
        return capture.read_text()

    return run


@pytest.fixture(scope="session")
def real_lines(client_line, root: str) -> list[str]:
    paths = (f"{root}/etc", f"{root}/home/a b", f"{root}/{WEIRD}/")
    return [client_line(options, *paths) for options in ACCEPTED_OPTIONS]


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


# --- the runner (gatecmd) -----------------------------------------------------


def run_gate(command: str | None, *args: str, extra_env: dict | None = None):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **(extra_env or {})}
    if command is not None:
        env["SSH_ORIGINAL_COMMAND"] = command
    argv = [sys.executable, "-m", "pullsnap.initiator.gatecmd", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def test_dry_run_prints_the_argv_as_json(real_lines, root, policy):
    done = run_gate(real_lines[-1], "--dry-run", "--root", root)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == parse(real_lines[-1], policy)


@pytest.mark.parametrize(
    "command",
    [
        None,
        sender("-rs", "/etc"),
        "rsync --server --sender -r . /etc; id",
        "rsync --server -r . /etc",
    ],
)
def test_refusal_is_one_stderr_line_and_exit_1(root, command):
    done = run_gate(command, "--dry-run", "--root", root)
    assert done.returncode == 1
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("gate error: ")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--root", "etc"],
        ["--root", "/etc", "--nice", "20"],
        ["--root", "/", "--ionice", "idle:3"],
    ],
)
def test_bad_gate_arguments_are_usage_errors(args):
    assert run_gate("rsync", "--dry-run", *args).returncode == 2


@pytest.mark.parametrize(
    ("spec", "value"),
    [
        ("none", 0),
        ("idle", 3 << 13),
        ("best-effort", 2 << 13 | 4),
        ("best-effort:7", 2 << 13 | 7),
        ("realtime:0", 1 << 13),
        ("realtime", 1 << 13 | 4),
    ],
)
def test_ioprio_values(spec, value):
    assert gatecmd.ioprio_value(spec) == value


@pytest.mark.parametrize(
    "spec", ["idle:3", "none:0", "best-effort:8", "best-effort:", "rt", "best-effort:07"]
)
def test_bad_ioprio_specs(spec):
    with pytest.raises(ValueError):
        gatecmd.ioprio_value(spec)


def test_ioprio_syscall_numbers():
    got = {m: gatecmd.ioprio_syscall(m) for m in ("x86_64", "i686", "armv7l", "ppc64le", "mips")}
    assert got == {"x86_64": 251, "i686": 289, "armv7l": 314, "ppc64le": 273, "mips": None}


def test_exec_gets_a_fixed_environment_and_the_log_a_line(tmp_path, root, policy, capsys):
    calls = []
    log = tmp_path / "gate.log"
    settings_ = gatecmd.GateSettings(policy, log=str(log))
    environ = {
        "SSH_ORIGINAL_COMMAND": sender("-r", f"{root}/etc"),
        "SSH_CONNECTION": "192.0.2.1 5555 192.0.2.2 22",
        "LD_PRELOAD": "/tmp/evil.so",
    }
    gatecmd.run(settings_, environ, execve=lambda *a: calls.append(a), confine=lambda p: None)
    [(path, argv, env)] = calls
    assert path == RSYNC and argv == parse(environ["SSH_ORIGINAL_COMMAND"], policy)
    assert env == {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    entry = json.loads(log.read_text())
    assert entry["ssh_connection"] == environ["SSH_CONNECTION"] and entry["argv"] == argv
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert capsys.readouterr().out == ""


def test_log_through_a_symlink_is_refused(tmp_path, root, policy, capsys):
    target = tmp_path / "authorized_keys"
    (tmp_path / "gate.log").symlink_to(target)
    settings_ = gatecmd.GateSettings(policy, log=str(tmp_path / "gate.log"))
    calls = []
    environ = {"SSH_ORIGINAL_COMMAND": sender("-r", f"{root}/etc")}
    run = gatecmd.run(settings_, environ, execve=lambda *a: calls.append(a), confine=lambda p: None)
    assert run == 1
    assert calls == [] and not target.exists()
    assert capsys.readouterr().err.startswith("gate error: cannot write log ")


def test_exec_applies_nice_ionice_and_confines(root, policy):
    """In a forked child: the priority is lowered and the confinement applied
    before exec; what the exec would get is reported back through a pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child plays the gate up to its exec
        os.close(read_end)
        confined = []

        def execve(path, argv, env):
            io = subprocess.run(["ionice", "-p", str(os.getpid())], capture_output=True, text=True)
            report = {"nice": os.getpriority(os.PRIO_PROCESS, 0), "io": io.stdout.strip(),
                      "confined": confined, "env": env}  # fmt: skip
            os.write(write_end, json.dumps(report).encode())
            os._exit(0)

        settings_ = gatecmd.GateSettings(policy, nice=7, ionice="idle")
        environ = {"SSH_ORIGINAL_COMMAND": sender("-r", f"{root}/etc"), "LEAK_ME": "1"}
        gatecmd.run(settings_, environ, execve=execve, confine=lambda p: confined.append(p.roots))
        os._exit(1)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        report = json.loads(f.read() or "null")
    os.waitpid(pid, 0)
    assert report is not None
    assert report["nice"] == 7 and report["io"] == "idle"
    assert report["confined"] == [list(policy.roots)]
    assert report["env"] == {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


@pytest.mark.e2e
@pytest.mark.security
def test_the_exec_is_confined_to_the_roots(tmp_path, root):
    """The sender's Landlock rules (what `confine_sender` applies before the
    exec) let it read inside the roots and nothing outside, root or not."""
    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n")
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import sys\n"
        "from pullsnap import landlock\n"
        "from pullsnap.initiator.senderpolicy import sender_confinement\n"
        f"landlock.restrict_self(sender_confinement([{root!r}], '/usr/bin/rsync'))\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        open(path).read(); print('read', path)\n"
        "    except OSError as e:\n"
        "        print('denied', path, e.errno)\n"
    )
    inside = f"{root}/etc/hosts"
    result = subprocess.run(
        [sys.executable, str(probe), inside, str(outside), "/etc/shadow"],
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert f"read {inside}" in lines
    assert f"denied {outside} 13" in lines and "denied /etc/shadow 13" in lines


# --- end to end: the gate as a real rsync server --------------------------------


@pytest.fixture
def remote_shell(tmp_path, root):
    """An `rsync -e` program that plays sshd: command line in, gate exec'd."""

    def make(*gate_args: str) -> str:
        script = tmp_path / f"rsh{len(list(tmp_path.glob('rsh*')))}"
        argv = [sys.executable, "-m", "pullsnap.initiator.gatecmd", "--root", root, *gate_args]
        script.write_text(
            "#!/bin/sh\n"
            "shift  # the host name\n"
            'SSH_ORIGINAL_COMMAND="$*"; export SSH_ORIGINAL_COMMAND\n'
            f"PYTHONPATH={shlex.quote(str(REPO))}; export PYTHONPATH\n"
            f"exec {' '.join(shlex.quote(a) for a in argv)}\n"
        )
        script.chmod(0o755)
        return str(script)

    return make


def rsync(*args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin"}
    return subprocess.run([RSYNC, *args], env=env, capture_output=True, text=True, timeout=60)


def listing(top: Path) -> dict[str, str]:
    return {
        str(p.relative_to(top)): p.read_text() if p.is_file() else ""
        for p in sorted(top.rglob("*"))
        if not p.is_symlink()
    }


@pytest.mark.e2e
def test_pull_through_the_gate_copies_the_files(tmp_path, root, remote_shell):
    rsh = remote_shell()
    dest = tmp_path / "dest"
    done = rsync("-aHAX", "--numeric-ids", "-e", rsh, f"x:{root}/{WEIRD}/", f"{dest}/")
    assert done.returncode == 0, done.stderr
    assert listing(dest) == listing(Path(root) / WEIRD) == {"f": "weird\n"}
    done = rsync("-aR", "-e", rsh, f"x:{root}/etc", f":{root}/home/a b", f"{dest}2/")
    assert done.returncode == 0, done.stderr
    assert (dest.parent / f"dest2{root}/etc/hosts").read_text() == "hosts\n"
    assert (dest.parent / f"dest2{root}/home/a b").is_dir()


@pytest.mark.e2e
def test_dry_run_probe_through_the_gate(tmp_path, root, remote_shell):
    done = rsync("-an", "-e", remote_shell(), f"x:{root}/etc/", f"{tmp_path}/probe/")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "probe" / "hosts").exists()


@pytest.mark.e2e
@pytest.mark.security
def test_remove_source_files_is_refused_and_the_source_stays(tmp_path, root, remote_shell):
    before = listing(Path(root))
    done = rsync(
        "-a", "--remove-source-files", "-e", remote_shell(), f"x:{root}/etc/", f"{tmp_path}/d/"
    )
    assert done.returncode != 0
    assert "gate error: option --remove-source-files is not allowed" in done.stderr
    assert listing(Path(root)) == before and (Path(root) / "etc" / "hosts").exists()


@pytest.mark.e2e
@pytest.mark.security
def test_merge_file_outside_the_roots_is_not_read(tmp_path, tree, root, remote_shell):
    # A per-directory merge rule travels in the protocol, not in argv.  With
    # the "-" modifier every line of the named file is an exclude pattern, so
    # the client could read an outside file off which names go missing.  (The
    # sender reads "../rules" beside the root; a name with a further slash it
    # does not resolve that way.)
    (tree / "rules").write_text("hosts\n")
    rule = "--filter=:- ../rules"
    confined = rsync("-a", rule, "-e", remote_shell(), f"x:{root}/", f"{tmp_path}/c/")
    assert confined.returncode == 0, confined.stderr
    assert (tmp_path / "c" / "etc" / "hosts").exists()
    # Landlock alone (no --confine-root) keeps the outside file unread too.
    landlocked = rsync(
        "-a", rule, "-e", remote_shell("--no-confine-root"), f"x:{root}/", f"{tmp_path}/l/"
    )
    assert landlocked.returncode == 0, landlocked.stderr
    assert (tmp_path / "l" / "etc" / "hosts").exists()
    # The control: a plain rsync server, no gate, reads it and the
    # client loses `hosts`, so the attack is real.
    plain = tmp_path / "plain-rsh"
    plain.write_text('#!/bin/sh\nshift\nexec "$@"\n')
    plain.chmod(0o755)
    loose = rsync("-a", rule, "-e", str(plain), f"x:{root}/", f"{tmp_path}/p/")
    assert loose.returncode == 0, loose.stderr
    assert (tmp_path / "p" / "etc").is_dir() and not (tmp_path / "p" / "etc" / "hosts").exists()


def test_a_door_runs_the_gate_once(tmp_path, root, policy, capsys):
    """A second session over the one connection (sshd's MaxSessions counts
    only open ones) is refused before its command is even read."""
    settings_ = gatecmd.GateSettings(policy, once=str(tmp_path / "gate.once"))
    environ = {"SSH_ORIGINAL_COMMAND": sender("-r", f"{root}/etc")}
    calls = []

    def session() -> int:
        return gatecmd.run(settings_, environ, execve=lambda *a: calls.append(a),
                           confine=lambda p: None)  # fmt: skip

    session()
    assert len(calls) == 1 and capsys.readouterr().err == ""
    assert session() == 1 and len(calls) == 1
    assert capsys.readouterr().err == "gate error: this door has run its one session already\n"
    assert gatecmd.settings_from(["--root", root, "--once", "/run/x/gate.once"]).once == (
        "/run/x/gate.once"
    )


def test_gate_help_says_how_to_try_a_command_line():
    text = gatecmd._parser().format_help()
    assert "SSH_ORIGINAL_COMMAND=" in text and "initiator gate --dry-run --root /etc" in text
    for words in ("a source the sender may read", "the rsync to exec", "nice level",
                  "I/O class", "one JSON line per command"):  # fmt: skip
        assert words in " ".join(text.split())
