"""versions.py: the tools' versions, probed while other work goes on."""

from __future__ import annotations

from pullsnap import versions


def test_a_started_probe_answers_once_and_a_missing_tool_is_unknown(tmp_path) -> None:
    probe = versions.start_probe(("/usr/bin/rsync", "--version"))
    found = probe()
    assert found is not None and found >= (3,) and probe() is found
    assert found == versions.rsync_version("/usr/bin/rsync")
    assert versions.start_probe((str(tmp_path / "absent"), "--version"))() is None
