"""A backed-up host plants a symlink in one snapshot to make the next run's
--link-dest lookup leave the repository: `evil -> <a directory on the backup
host>`, then a real `evil/secret` with the size and time of a file there.

rsync follows the planted link (with --super the link is root's, which its
own defensive walk trusts too; pullsnap skips that walk, see pull.py) and
finds the outside file matching by size and time.  Were it allowed to open
it, it would hardlink that file into the new snapshot, and a later restore
would hand it to the backed-up host.  Landlock keeps the receiver inside its
snapshots: the open is refused, the run reports the path (exit 3), and the
snapshot holds what the host sent.
"""

from __future__ import annotations

import os
import shutil

import pytest

from pullsnap import errors
from tests.labfixtures import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.security]


def test_a_planted_symlink_cannot_pull_an_outside_file_into_a_snapshot(super_site: Site) -> None:
    site = super_site
    site.regrab(policy={"suspect_drop": 0})  # the tree is tiny: any change is a big one
    outside = os.path.join(site.root, "backup-host-secrets")
    os.makedirs(outside, mode=0o700)
    secret = os.path.join(outside, "secret")
    with open(secret, "wb") as f:
        f.write(b"the backup host's own secret\n")
    os.chmod(secret, 0o600)  # root's; the receiver holds DAC_OVERRIDE
    st = os.stat(secret)

    os.makedirs(site.src)
    os.symlink(outside, os.path.join(site.src, "evil"))
    assert site.run().returncode == errors.OK
    [first] = site.snapshots()
    assert os.path.islink(os.path.join(site.in_snapshot(first), "evil"))

    # The next night "evil" is a directory with a look-alike of the secret.
    os.unlink(os.path.join(site.src, "evil"))
    os.makedirs(os.path.join(site.src, "evil"))
    lookalike = os.path.join(site.src, "evil", "secret")
    with open(lookalike, "wb") as f:
        f.write(b"X" * st.st_size)
    os.utime(lookalike, ns=(st.st_atime_ns, st.st_mtime_ns))
    done = site.run("-v")
    # rsync follows the planted link, sees a match by size and time, and is
    # refused by Landlock when it opens the outside file: the run says so.
    assert done.returncode == errors.PARTIAL, done.stderr
    assert 'evil/secret": Permission denied' in done.stderr
    [_, second] = site.snapshots()
    copied = os.path.join(site.in_snapshot(second), "evil", "secret")
    assert os.stat(copied).st_ino != st.st_ino
    with open(copied, "rb") as f:
        assert f.read() == b"X" * st.st_size
    with open(secret, "rb") as f:
        assert f.read() == b"the backup host's own secret\n"
    shutil.rmtree(outside)
