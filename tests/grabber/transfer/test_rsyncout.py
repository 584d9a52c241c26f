"""Reading what rsync writes (transfer/rsyncout.py, pure): --stats, the
itemized names of what it stored, its per-file error lines."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pullsnap.grabber.transfer import rsyncout

# rsync 3.2 --stats, as it prints it (main.c output_summary).
STATS = """
Number of files: 1,234 (reg: 1,000, dir: 234)
Number of created files: 12 (reg: 12)
Number of deleted files: 0
Number of regular files transferred: 15
Total file size: 98,765,432 bytes
Total transferred file size: 1,048,576 bytes
Literal data: 524,288 bytes
Matched data: 524,288 bytes
File list size: 40,000
File list generation time: 0.001 seconds
Total bytes sent: 1,234
Total bytes received: 600,000

sent 1,234 bytes  received 600,000 bytes  400,822.67 bytes/sec
"""


def test_stats_lines_become_numbers() -> None:
    assert rsyncout.parse_stats(STATS.splitlines()) == {
        "files": 1234, "created_files": 12, "deleted_files": 0, "transferred_files": 15,
        "total_size": 98765432, "transferred_size": 1048576, "literal_data": 524288,
        "matched_data": 524288, "file_list_size": 40000, "bytes_sent": 1234,
        "bytes_received": 600000,
    }  # fmt: skip


def test_lines_that_are_not_stats_are_ignored() -> None:
    lines = ["Number of cats: 3", "etc/hosts", "Total file size: lots", "rsync: error"]
    assert rsyncout.parse_stats(lines) == {}


@pytest.mark.parametrize(
    "line, parsed",
    [("pullsnap-item >f+++++++++ 0 etc/hosts", (">f+++++++++", b"etc/hosts")),
     ("pullsnap-item cf..p...... 0 /etc/with space", ("cf..p......", b"etc/with space")),
     ("pullsnap-item >f+++++++++ 0 a\\#012b", (">f+++++++++", b"a\nb")),
     ("pullsnap-item >f+++++++++ 0 \\#377", (">f+++++++++", b"\xff")),
     ("pullsnap-item >f+++++++++ 0 back\\#134#slash", (">f+++++++++", b"back\\#slash")),
     ("etc/hosts", None), ("pullsnap-item", None), ("pullsnap-item >f", None),
     ("pullsnap-item x etc", None), ("pullsnap-item >f ", None),
     ("pullsnap-item >f+++++++++ 1,024 big", (">f+++++++++", b"big")),
     # The byte count is not optional: a line without one is not ours.
     ("pullsnap-item >f+++++++++ etc/hosts", None),
     ("pullsnap-item >f+++++++++ 12x name", None)],
)  # fmt: skip
def test_item_lines(line: str, parsed) -> None:
    assert rsyncout.parse_item(line) == parsed


@given(st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b))
def test_any_name_escaped_as_rsync_does_comes_back_whole(name: bytes) -> None:
    # rsync's --8-bit-output off: bytes outside printable ASCII and a
    # backslash that precedes '#' become \#ooo (log.c, escape()).
    out = bytearray()
    for i, byte in enumerate(name):
        before_hash = byte == 0x5C and name[i + 1 : i + 2] == b"#"
        escaped = byte < 32 or byte > 126 or before_hash
        out += f"\\#{byte:03o}".encode() if escaped else bytes([byte])
    assert rsyncout.unescape_name(out.decode("ascii")) == name


@pytest.mark.parametrize(
    "code, new",
    [(">f+++++++++", True), ("cf..p......", True), ("hf+++++++++", True), (".f..t......", False),
     ("cd+++++++++", False), (">d", False), ("cL+++++++++", False)],
)  # fmt: skip
def test_which_items_are_stored_anew(code: str, new: bool) -> None:
    assert rsyncout.is_new_file(code) is new


@pytest.mark.parametrize(
    "line, found",
    [('rsync: [sender] send_files failed to open "/etc/shadow": Permission denied (13)',
      {"path": "/etc/shadow", "error": "send_files failed to open: Permission denied (13)"}),
     ('rsync: [sender] opendir "/root" failed: Permission denied (13)',
      {"path": "/root", "error": "opendir: Permission denied (13)"}),
     ('rsync: readlink_stat("/proc/1/cwd") failed: Permission denied (13)',
      {"path": "/proc/1/cwd", "error": "readlink_stat: Permission denied (13)"}),
     ("rsync error: some files/attrs were not transferred (code 23)", None),
     ("sent 100 bytes  received 10 bytes", None)],
)  # fmt: skip
def test_failed_paths(line: str, found) -> None:
    assert rsyncout.failed_path(line) == found
