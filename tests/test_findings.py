"""What a check found and how it prints (findings.py)."""

from __future__ import annotations

import errno
import io

from pullsnap.findings import NOTE, OK, PROBLEM, Finding, guarded, print_all, render


def test_each_level_prints_its_own_way() -> None:
    assert render(Finding(True, "rsync 3.5.0")) == "ok: rsync 3.5.0"
    assert render(Finding(True, "fake-super", "--super needs root", note=True)) == (
        "note: fake-super (--super needs root)"
    )
    assert render(Finding(False, "repository is mode 0755", "chmod 0700 /srv")) == (
        "problem: repository is mode 0755 -- fix: chmod 0700 /srv"
    )
    assert render(Finding(False, "broken")) == "problem: broken"
    assert [Finding(True, "").level, Finding(True, "", note=True).level] == [OK, NOTE]
    assert Finding(False, "", note=True).level == PROBLEM  # not ok beats note


def test_print_all_counts_the_problems() -> None:
    out = io.StringIO()
    found = [Finding(True, "a"), Finding(False, "b", "do c"), Finding(False, "d")]
    assert print_all(found, out) == 2
    assert out.getvalue().splitlines() == ["ok: a", "problem: b -- fix: do c", "problem: d"]


def test_an_os_error_in_a_check_is_a_problem_after_what_it_found() -> None:
    def check():
        yield Finding(True, "first")
        raise OSError(errno.EACCES, "Permission denied", "/srv/pullsnap")

    found = list(guarded(check, "repository"))
    assert found[0] == Finding(True, "first")
    assert found[1] == Finding(
        False, "repository: Permission denied: /srv/pullsnap", "see the message"
    )


def test_an_os_error_without_a_file_name() -> None:
    def check():
        raise OSError("disk on fire")
        yield  # pragma: no cover - makes this a generator

    (found,) = guarded(check, "space")
    assert not found.ok and found.text == "space: disk on fire"
