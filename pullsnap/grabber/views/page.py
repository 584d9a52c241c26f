"""`grabber report --html FILE`: one static page about every host.

Self-contained: styles inline, charts inline SVG, no scripts, no fonts or
images from elsewhere (a Content-Security-Policy of `default-src 'none'`
makes a browser refuse any that slip in).  Meant for a cron job or timer
that writes it where a web server serves it; it is replaced atomically.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Mapping, Sequence
from html import escape

from pullsnap import errors
from pullsnap.config import GrabberConfig
from pullsnap.grabber.store import atomicfile
from pullsnap.grabber.store.repository import HostRepo, iso
from pullsnap.grabber.views import chart, status
from pullsnap.grabber.views.health import HostStatus
from pullsnap.units import human_duration, human_size

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { padding: .35em .7em; border-bottom: 1px solid #ddd; text-align: left;
         vertical-align: middle; }
thead th { border-bottom: 2px solid #888; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.name, td.age, td.num { white-space: nowrap; }
tr.stale th, tr.stale td.age { background: #fbe3e0; }
.flag { font-weight: bold; color: #a01c10; }
.warn { color: #8a6d00; font-weight: bold; }
.note { color: #666; font-size: 90%; }
"""


def _age_cell(s: HostStatus) -> str:
    limit = f'<span class="note">max {escape(human_duration(s.max_age))}</span>'
    if s.age is None:
        return f'<span class="flag">STALE</span> never backed up {limit}'
    age = escape(human_duration(s.age))
    if s.stale:
        return f'<span class="flag">STALE</span> {age} {limit}'
    return f"{age} {limit}"


def _snapshots_cell(s: HostStatus) -> str:
    text = str(s.snapshots)
    if s.suspect:
        text += f' <span class="warn">+{len(s.suspect)} suspect</span>'
    if s.failed:
        text += f' <span class="note">{s.failed} failed</span>'
    for warning in s.warnings:
        text += f' <span class="warn" title="{escape(warning)}">partial</span>'
    return text


def _verify_cell(s: HostStatus) -> str:
    v = s.verify
    if v is None:
        return '<span class="note">never</span>'
    when = escape(v.time)
    if v.result == "ok":
        return f'ok <span class="note">{when}, {v.checked:,} checked</span>'
    return f'<span class="flag">MISMATCH</span> {v.mismatches} <span class="note">{when}</span>'


def row(s: HostStatus, runs: Sequence[chart.Point]) -> str:
    last_good = escape(s.last_good) if s.last_good else '<span class="note">none</span>'
    if s.good_mode:
        last_good += f' <span class="note">{escape(s.good_mode)}</span>'
    used = human_size(s.used) if s.used is not None else "-"
    added = f"+{human_size(s.good_added)}" if s.good_added is not None else "-"
    cells = [
        f'<th scope="row">{escape(s.host)}</th>',
        f'<td class="name">{last_good}</td>',
        f'<td class="age">{_age_cell(s)}</td>',
        f'<td class="num">{_snapshots_cell(s)}</td>',
        f'<td class="num">{escape(used)}</td>',
        f'<td class="num">{escape(added)}</td>',
        f"<td>{_verify_cell(s)}</td>",
        f"<td>{chart.svg(runs)}</td>",
    ]
    css = ' class="stale"' if s.stale else ""
    return f'<tr id="host-{escape(s.host)}"{css}>' + "".join(cells) + "</tr>"


def render(
    statuses: Sequence[HostStatus],
    runs: Mapping[str, Sequence[chart.Point]],
    *,
    repository: str,
    backup_host: str,
    free: int | None,
    now: dt.datetime,
) -> str:
    """The whole page (pure)."""
    stale = sum(1 for s in statuses if s.stale)
    summary = (
        f'<span class="flag">{stale} of {len(statuses)} hosts stale</span>'
        if stale
        else f"all {len(statuses)} hosts fresh"
    )
    free_text = f", {escape(human_size(free))} free" if free is not None else ""
    head = ["Host", "Last good snapshot", "Age", "Snapshots", "Used", "Added", "Last verify",
            f"Last {chart.RUNS} runs"]  # fmt: skip
    body = "\n".join(row(s, runs.get(s.host, ())) for s in statuses)
    if not statuses:
        body = f'<tr><td colspan="{len(head)}">no hosts yet</td></tr>'
    title = f"pullsnap backups on {escape(backup_host)}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{title}</h1>
<p>{summary}. Repository {escape(repository)}{free_text}. Written {escape(iso(now))}.</p>
<table>
<thead><tr>{"".join(f'<th scope="col">{h}</th>' for h in head)}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<p class="note">Age counts from the start of the newest good snapshot; a host is stale
past its max_age. Beside the snapshot, its mode: super (files keep their owners: copy
them back as root) or fake-super (owners and modes in xattrs: grabber restore).
Used: space on disk, each hardlinked file once. Added: what the newest
good snapshot took on disk (measured: files stored anew, its directories). Chart: bars are
bytes added per run (log scale), the line is the run's duration, x marks a failed run and !
a suspect one; hover for details.</p>
</body>
</html>
"""


def page(cfg: GrabberConfig, hosts: Sequence[str], now: dt.datetime) -> str:
    """The page for these hosts (all when none), read from the repository."""
    statuses = status.collect(cfg, hosts, now)
    runs = {}
    for s in statuses:
        host = HostRepo(cfg.repository, s.host)
        runs[s.host] = chart.points(host.attempts(), locked=host.exists() and host.is_locked())
    return render(statuses, runs, repository=cfg.repository, backup_host=socket.gethostname(),
                  free=_free_bytes(cfg), now=now)  # fmt: skip


def _free_bytes(cfg: GrabberConfig) -> int | None:
    fs = status.filesystem_of(cfg.repository)
    return None if fs is None else fs.free.bytes


def write(path: str, text: str) -> None:
    """Replace the page at `path` atomically (a web server may be serving it)."""
    try:
        atomicfile.replace(path, text.encode("utf-8"), 0o644)
    except OSError as e:
        raise errors.RunFailed(f"cannot write {path}: {e.strerror}") from None
