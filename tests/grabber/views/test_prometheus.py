"""The node_exporter textfile (pure rendering) and the atomic file writer."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from pullsnap.grabber.store.repository import classify, parse_name, snapshot_name
from pullsnap.grabber.store.space import Filesystem, Space
from pullsnap.grabber.views import health, prometheus

NOW = dt.datetime(2026, 11, 25, 12, 0, 0, tzinfo=dt.UTC)
# Prometheus text format: metric name, optional labels, a value (exposition_formats.md).
SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-z_]+="(?:[^"\\\n]|\\.)*"\})? -?[0-9.e+]+$')


def _status(host: str, hours_ago: float | None, **kw) -> health.HostStatus:
    attempts = []
    if hours_ago is not None:
        name = snapshot_name(NOW - dt.timedelta(hours=hours_ago))
        stats = {"transferred_size": 300, "bytes_received": 420, "files": 9}
        record = {"state": "complete", "seconds": 12.5, "stats": stats}
        attempts.append(classify(name, record, True, False))
    return health.summarize(host, attempts, now=NOW, max_age=36 * 3600, **kw)


def test_samples_per_host() -> None:
    good = _status("web1", 2, used=4096)
    never = _status("web2", None)
    fs = Filesystem(free=Space(10**12, 5000), size=Space(4 * 10**12, 65536))
    text = prometheus.render([good, never], NOW, "/srv/pullsnap", fs)
    lines = text.splitlines()
    for line in lines:
        assert line.startswith("# ") or SAMPLE.match(line), line
    started = parse_name(good.last_good or "")
    assert started is not None
    assert (
        f'pullsnap_last_success_timestamp_seconds{{host="web1"}} {int(started.timestamp())}'
        in lines
    )
    assert 'pullsnap_last_success_timestamp_seconds{host="web2"} 0' in lines
    assert 'pullsnap_stale{host="web1"} 0' in lines and 'pullsnap_stale{host="web2"} 1' in lines
    assert 'pullsnap_last_run_duration_seconds{host="web1"} 12.5' in lines
    assert 'pullsnap_last_run_added_bytes{host="web1"} 300' in lines
    assert 'pullsnap_last_run_transferred_bytes{host="web1"} 420' in lines
    assert 'pullsnap_used_bytes{host="web1"} 4096' in lines
    assert 'pullsnap_partial{host="web1"} 0' in lines
    # A host that never ran has no last run: no sample rather than a made-up 0.
    assert not any(
        line.startswith('pullsnap_last_run_duration_seconds{host="web2"') for line in lines
    )
    assert 'pullsnap_repository_free_bytes{repository="/srv/pullsnap"} 1000000000000' in lines
    assert 'pullsnap_repository_free_inodes{repository="/srv/pullsnap"} 5000' in lines
    assert 'pullsnap_repository_inodes{repository="/srv/pullsnap"} 65536' in lines
    assert f"pullsnap_status_timestamp_seconds {int(NOW.timestamp())}" in lines
    types = [line.split()[2] for line in lines if line.startswith("# TYPE")]
    assert len(types) == len(set(types))


@pytest.mark.parametrize(
    ("raw", "escaped"), [('a"b', 'a\\"b'), ("a\\b", "a\\\\b"), ("a\nb", "a\\nb")]
)
def test_label_escaping(raw: str, escaped: str) -> None:
    assert prometheus.escape(raw) == escaped
