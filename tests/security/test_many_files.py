"""A backed-up host chooses how many files it has.  The grabber's memory
must not grow with their number (a 1,000,000-file host used to take it to
1 GB: the manifests, rsync's names and the digests, held whole).  Two sizes
of tree, end to end; what is compared is the grabber's and its hasher's own
high-water marks (proc(5) VmHWM), not times.  The 1,000,000-file figure is
`python -m bench memory` (bench/RESULTS.md)."""

from __future__ import annotations

import json
import os

import pytest

from lab.rss import PeakRss
from pullsnap import errors
from tests.labfixtures import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.security]

SMALL, LARGE = 20_000, 60_000
# bytes per file of growth allowed between the two sizes; the grabber used
# to grow by about 1,700 here (the manifests whole, rsync's names, the digests)
SLOPE = 150
MIB = 1 << 20


def _tree(root: str, files: int) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    for start in range(0, files, 1000):
        directory = os.path.join(root, f"d{start // 1000:03d}")
        os.makedirs(directory)
        for i in range(start, min(start + 1000, files)):
            os.close(os.open(os.path.join(directory, f"f{i:06d}"), flags, 0o644))


def _peak(site: Site) -> tuple[int, dict]:
    """One backup: the grabber's peak plus its hasher's (bytes), and the
    manifest step's numbers from the snapshot's record."""
    with PeakRss(site.lab.grabber_pw().pw_uid) as peak:
        done = site.run(timeout=600)
    assert done.returncode == errors.OK, done.stderr
    assert peak.own_peak("grabber") > 0, "the grabber was seen"
    latest = os.readlink(os.path.join(site.host_dir(), "latest"))
    with open(os.path.join(site.host_dir(), latest + ".json"), encoding="utf-8") as f:
        record = json.load(f)
    return peak.own_peak("grabber") + peak.own_peak("hasher"), record["manifest"]


def test_the_grabbers_memory_does_not_grow_with_the_number_of_files(site: Site) -> None:
    found: dict[int, tuple[int, int]] = {}
    for files in (SMALL, LARGE):
        src = os.path.join(site.root, f"src-{files}")
        _tree(src, files)
        site.configure(sources=[src])
        first, made = _peak(site)
        assert made["files"] == made["hashed"] == files
        nochange, made = _peak(site)
        assert made["files"] == made["carried"] == files, "the base's manifest, merged"
        found[files] = (first, nochange)
        # The next size from scratch: this host's snapshots out of the way.
        os.rename(site.host_dir(), os.path.join(site.root, f"done-{files}"))
    for i, run in enumerate(("first", "no change")):
        small, large = found[SMALL][i], found[LARGE][i]
        slope = (large - small) / (LARGE - SMALL)
        assert slope < SLOPE, (
            f"{run} backup: the grabber grew by {slope:.0f} bytes per file "
            f"({small / MIB:.1f} MiB at {SMALL:,} files, {large / MIB:.1f} MiB at {LARGE:,})"
        )
        assert large < 150 * MIB
