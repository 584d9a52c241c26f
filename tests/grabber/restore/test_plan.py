"""What a restore runs (restore/plan.py): the flags each snapshot mode
needs, and what an itemized dry run says would be overwritten."""

from __future__ import annotations

import pytest

from pullsnap import errors
from pullsnap.grabber.restore import plan


def _copy(mode: str, to_host: str = "", progress: bool = False) -> plan.Copy:
    return plan.Copy(rsync="/usr/bin/rsync", mode=mode, source="/srv/p/web1/S/home/alice/",
                     target="/home/alice/", to_host=to_host, progress=progress)  # fmt: skip


def test_each_mode_gets_the_flags_that_restore_it() -> None:
    base = ["/usr/bin/rsync", "-aHAX", "--numeric-ids", "--modify-window=-1"]
    ends = ["--", "/srv/p/web1/S/home/alice/", "/home/alice/"]
    assert plan.rsync_argv(_copy("super")) == [*base, *ends]
    assert plan.rsync_argv(_copy("fake-super")) == [*base, "--fake-super", "-M--super", *ends]
    remote = plan.rsync_argv(_copy("fake-super", "root@web1"))
    assert remote == [*base, "--fake-super", "-e", "ssh", "--",
                      "/srv/p/web1/S/home/alice/", "root@web1:/home/alice/"]  # fmt: skip
    assert "--info=progress2" in plan.rsync_argv(_copy("super", progress=True))
    dry = plan.rsync_argv(_copy("super", progress=True), dry_run=True, checksum=True)
    assert "--info=progress2" not in dry
    assert {"--dry-run", "--itemize-changes", "--checksum"} <= set(dry)


def test_a_record_without_a_known_mode_is_refused() -> None:
    with pytest.raises(errors.UsageError, match="names no mode"):
        plan.rsync_argv(_copy(""))


def test_only_existing_non_directories_count_as_overwritten() -> None:
    lines = [
        ".d..t...... ./",
        "cd+++++++++ etc/",
        ">f+++++++++ etc/new",
        ">f.st...... etc/hosts",
        ".d..t...... home/",
        "cL+++++++++ link -> target",
        ".L..t...... old-link -> elsewhere",
        "hf+++++++++ etc/b => etc/new",
        "sending incremental file list",
    ]
    assert plan.overwrites(lines) == ["etc/hosts", "old-link"]
    assert plan.changed(lines[:1]) == [] and plan.changed(lines[3:4]) == ["etc/hosts"]


def test_a_refusal_names_the_first_few_and_counts_the_rest() -> None:
    text = plan.refusal(["a", "b", "c", "d", "e"], "/restore/")
    assert text == ("5 file(s) at /restore/ would be overwritten (a, b, c and 2 more): "
                    "pick an empty target, or add --force")  # fmt: skip
