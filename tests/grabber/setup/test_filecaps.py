"""security.capability decoding, against struct layouts and against setcap(8)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from pullsnap import caps
from pullsnap.grabber.setup import filecaps


def _raw(revision: int, permitted: int, inheritable: int = 0, effective: bool = False) -> bytes:
    magic = revision << 24 | int(effective)
    if revision == 1:
        return struct.pack("<III", magic, permitted, inheritable)
    body = struct.pack("<IIIII", magic, permitted & 0xFFFFFFFF, inheritable & 0xFFFFFFFF,
                       permitted >> 32, inheritable >> 32)  # fmt: skip
    return body + (struct.pack("<I", 0) if revision == 3 else b"")


@pytest.mark.parametrize("revision", [1, 2, 3])
def test_layouts(revision: int) -> None:
    wanted = {"chown", "dac_override", "fowner"}
    mask = sum(1 << caps.CAP_NUMBERS[c] for c in wanted)
    got = filecaps.parse(_raw(revision, mask, effective=True))
    assert got == filecaps.FileCaps(frozenset(wanted), frozenset(), True)


def test_high_capabilities_use_the_second_word() -> None:
    setfcap = caps.CAP_NUMBERS["setfcap"]  # 31, still the first word
    bpf = caps.CAP_NUMBERS["bpf"]  # 39, the second
    got = filecaps.parse(_raw(2, 1 << setfcap | 1 << bpf, inheritable=1 << bpf))
    assert got.permitted == {"setfcap", "bpf"} and got.inheritable == {"bpf"}


@pytest.mark.parametrize("raw", [b"", b"\x00\x00\x00\x02", _raw(2, 1)[:-1], _raw(1, 1) + b"\0"])
def test_malformed_values_are_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        filecaps.parse(raw)


@pytest.mark.root
def test_agrees_with_setcap(tmp_path: Path) -> None:
    program = tmp_path / "prog"
    shutil.copy("/bin/true", program)
    assert filecaps.read(str(program)) is None
    subprocess.run(["setcap", "cap_chown,cap_sys_admin,cap_setfcap=p", str(program)], check=True)
    got = filecaps.read(str(program))
    assert got == filecaps.FileCaps(frozenset({"chown", "sys_admin", "setfcap"}), frozenset(),
                                    False)  # fmt: skip
