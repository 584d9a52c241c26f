"""The repository's room in `grabber status` (views/repospace.py, pure)."""

from __future__ import annotations

from pullsnap.config import grabber_from_dict
from pullsnap.grabber.store.space import UNLIMITED, Filesystem, Space
from pullsnap.grabber.views import repospace

GIB = 1 << 30
DEFAULTS = grabber_from_dict({})
LIMITS = repospace.Limits(DEFAULTS.free_warn, DEFAULTS.free_crit, DEFAULTS.free_inodes_warn,
                          DEFAULTS.free_inodes_crit)  # fmt: skip


def test_plenty_is_ok() -> None:
    room = repospace.assess(Filesystem(Space(50 * GIB, 500_000), Space(100 * GIB, 1 << 20)), LIMITS)
    assert room.level == repospace.OK and room.problems == ()
    assert (
        room.text == "50.0 GiB of 100.0 GiB free (50.0%), 500,000 of 1,048,576 inodes free (47.7%)"
    )
    assert repospace.render(room, "/srv/pullsnap").startswith("repository /srv/pullsnap: ok: 50.0")


def test_few_inodes_with_plenty_of_bytes_is_critical() -> None:
    """What `df` does not show: the filesystem of issue 15, bytes free, inodes gone."""
    room = repospace.assess(Filesystem(Space(379 << 20, 12), Space(400 << 20, 4096)), LIMITS)
    assert room.level == repospace.CRITICAL
    assert room.problems == ("12 inodes free, below 5%",)
    line = repospace.render(room, "/srv/pullsnap")
    assert line.startswith("repository /srv/pullsnap: CRITICAL: 379.0 MiB of 400.0 MiB free")
    assert "12 of 4,096 inodes free (0.3%); 12 inodes free, below 5%" in line


def test_the_worse_side_decides_and_amounts_work_too() -> None:
    cfg = grabber_from_dict({"free_warn": "20G", "free_crit": "1G", "free_inodes_warn": 1000,
                             "free_inodes_crit": "1%"})  # fmt: skip
    limits = repospace.Limits(cfg.free_warn, cfg.free_crit, cfg.free_inodes_warn,
                              cfg.free_inodes_crit)  # fmt: skip
    room = repospace.assess(Filesystem(Space(10 * GIB, 900), Space(100 * GIB, 50_000)), limits)
    assert room.level == repospace.WARNING
    assert room.problems == ("10.0 GiB free, below 20.0 GiB", "900 inodes free, below 1,000")


def test_a_filesystem_that_makes_inodes_as_needed_has_no_inode_side() -> None:
    room = repospace.assess(Filesystem(Space(50 * GIB, UNLIMITED), Space(100 * GIB, 0)), LIMITS)
    assert room.level == repospace.OK and "inodes" not in room.text
