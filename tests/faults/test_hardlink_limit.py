"""A file whose snapshot copy is at the filesystem's maximum link count (ext4:
65000) is still backed up: rsync's --link-dest link(2) fails with EMLINK and
rsync copies the file instead, without a word in its itemized output (the
manifest's inode check hashes it anyway)."""

from __future__ import annotations

import os

import pytest

from pullsnap import errors
from tests.faults.conftest import ext4_repository, record
from tests.labfixtures import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.faults]

EXT4_LINK_MAX = 65000  # fs/ext4/ext4.h


def test_a_file_at_the_link_limit_is_copied(site: Site) -> None:
    os.makedirs(site.src)
    for name in ("crowded", "calm"):
        with open(os.path.join(site.src, name), "w") as f:
            f.write(f"{name}\n" * 1000)
    with ext4_repository(site, 64):
        site.configure()
        assert site.run().returncode == errors.OK
        [first] = site.snapshots()
        crowded = os.path.join(site.in_snapshot(first), "crowded")
        links = os.path.join(site.host_dir(), ".links")
        os.mkdir(links)
        for i in range(EXT4_LINK_MAX - 1):
            os.link(crowded, os.path.join(links, str(i)))
        assert os.stat(crowded).st_nlink == EXT4_LINK_MAX
        with pytest.raises(OSError, match="Too many links"):
            os.link(crowded, os.path.join(links, "one-more"))

        done = site.run()
        assert done.returncode == errors.OK, done.stderr
        _, second = site.snapshots()
        copy = os.path.join(site.in_snapshot(second), "crowded")
        assert os.stat(copy).st_ino != os.stat(crowded).st_ino and os.stat(copy).st_nlink == 1
        with open(copy) as a, open(crowded) as b:
            assert a.read() == b.read()
        calm = [os.stat(os.path.join(site.in_snapshot(n), "calm")) for n in (first, second)]
        assert calm[0].st_ino == calm[1].st_ino  # the rest is still linked
        stats = record(site, second)
        assert stats["stats"]["transferred_size"] == 0  # copied locally, not fetched
        assert stats["manifest"]["unlisted_new"] == 1 and stats["manifest"]["hashed"] == 1
        verified = site.lab.grabber("--config", site.grabber_config, "verify", "web1")
        assert verified.returncode == 0, verified.stdout + verified.stderr
