"""From measured steps to results.json records and Markdown (pure).

A step is one timed command: {"tool", "scenario", "rep", "wall", "cpu",
"received", "repo_bytes", "added_bytes", "problems"}, and on btrfs
"added_data_bytes", "added_metadata_bytes" and "space": "btrfs".  Records are the
issue's exact shape: {"tool", "scenario", "median_s", "min_s", "max_s", "reps"}.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from bench import btrfsspace

SCENARIOS = ("full", "nochange", "smallchange", "restore")
TOOLS = ("pullsnap", "pullsnap-btrfs", "rsync-ssh", "rsync-ssh-btrfs", "rsync-local",
         "rsnapshot", "rsnapshot-btrfs", "rsnapshot-ssh", "borg-none", "borg-repokey",
         "restic")  # fmt: skip
BASELINE = "rsync-ssh"
# A step's "phase_<name>": seconds the grabber's record says that phase took
# (grabber/run/record.py "phases"), in the order a run goes through them.
PHASE = "phase_"
PHASES = ("prepare", "begin", "confine", "rsync", "hasher", "check", "publish", "manifest",
          "prune", "hooks")  # fmt: skip


def group(steps: Iterable[dict[str, Any]], key: str = "wall") -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], list[float]] = {}
    for step in steps:
        value = step.get(key)
        if value is not None:
            out.setdefault((step["tool"], step["scenario"]), []).append(float(value))
    return out


def records(steps: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for (tool, scenario), values in group(steps).items():
        rows.append({"tool": tool, "scenario": scenario,
                     "median_s": round(statistics.median(values), 3),
                     "min_s": round(min(values), 3), "max_s": round(max(values), 3),
                     "reps": len(values)})  # fmt: skip
    return rows


def medians(steps: Iterable[dict[str, Any]], key: str = "wall") -> dict[tuple[str, str], float]:
    return {k: statistics.median(v) for k, v in group(steps, key).items()}


def _cell(values: Sequence[float] | None) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def _size(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def tools_in(steps: Sequence[dict[str, Any]]) -> list[str]:
    seen = {s["tool"] for s in steps if s["scenario"] in SCENARIOS}
    return [t for t in TOOLS if t in seen] + sorted(seen - set(TOOLS))


def main_tables(steps: Sequence[dict[str, Any]]) -> list[str]:
    wall, cpu = group(steps), group(steps, "cpu")
    tools = tools_in(steps)
    lines = ["### Wall time, seconds: median (min–max)", ""]
    verified = {}
    for s in steps:
        if s["scenario"] == "restore":
            verified.setdefault(s["tool"], []).extend(s.get("problems") or [])
    lines += _table(
        ["tool", *SCENARIOS, "restore verified"],
        ([t, *(_cell(wall.get((t, sc))) for sc in SCENARIOS),
          "yes" if not verified.get(t) else "NO: " + "; ".join(sorted(set(verified[t])))[:300]]
         for t in tools),
    )  # fmt: skip
    lines += ["### CPU time of every process involved, seconds: median", ""]
    lines += _table(
        ["tool", *SCENARIOS],
        ([t, *(f"{statistics.median(cpu[(t, sc)]):.2f}" if cpu.get((t, sc)) else "-"
               for sc in SCENARIOS)] for t in tools),
    )  # fmt: skip
    size = medians(steps, "repo_bytes")
    added = medians(steps, "added_bytes")
    received = medians(steps, "received")
    lines += ["### Repository and wire, medians", ""]
    lines += _table(
        ["tool", "repo after full", "added by no-change", "added by small change",
         "received: full / no-change / small change"],
        ([t, _size(size.get((t, "full"))), _size(added.get((t, "nochange"))),
          _size(added.get((t, "smallchange"))),
          " / ".join(_size(received.get((t, sc))) for sc in SCENARIOS[:3])] for t in tools),
    )  # fmt: skip
    return lines + space_note(steps)


def space_note(steps: Sequence[dict[str, Any]]) -> list[str]:
    """How the repository sizes were taken, when some were taken on btrfs
    (steps with "space": "btrfs", bench/btrfsspace.py)."""
    btrfs = {s["tool"] for s in steps if s.get("space") == "btrfs"}
    if not btrfs:
        return []
    names = ", ".join(t for t in tools_in(steps) if t in btrfs)
    return [f"Repository sizes of {names}: {btrfsspace.METHOD} (du would count an extent "
            f"that snapshots share once for each).  The others: `du -s`, each hardlinked inode "
            f"once.", ""]  # fmt: skip


def ratio_tables(steps: Sequence[dict[str, Any]]) -> list[str]:
    med = medians(steps)
    tools = tools_in(steps)
    lines: list[str] = []
    for ours in ("pullsnap", "pullsnap-btrfs"):
        if ours not in tools:
            continue

        def ratio(other: str, sc: str, ours: str = ours) -> str:
            a, b = med.get((ours, sc)), med.get((other, sc))
            return f"{a / b:.2f}x" if a and b else "-"

        lines += [f"### {ours} / each peer (median wall time; below 1 = {ours} faster)", ""]
        peers = [t for t in tools if t != ours]
        lines += _table([f"{ours} / ...", *SCENARIOS], ([t, *(ratio(t, sc) for sc in SCENARIOS)]
                                                       for t in peers))  # fmt: skip
    return lines


def phase_table(steps: Sequence[dict[str, Any]]) -> list[str]:
    """Where pullsnap's time went, by the grabber's own phases (medians),
    and what is left of the wall time: process starts, keys, both ssh
    handshakes, the initiator."""
    timed = [s for s in steps if any(k.startswith(PHASE) for k in s)]
    if not timed:
        return []
    rows = []
    for tool in tools_in(timed):
        for scenario in SCENARIOS[:3]:
            mine = [s for s in timed if (s["tool"], s["scenario"]) == (tool, scenario)]
            if not mine:
                continue
            cells = [statistics.median([s.get(PHASE + p, 0.0) for s in mine]) for p in PHASES]
            rest = statistics.median([s["wall"] - sum(s.get(PHASE + p, 0.0) for p in PHASES)
                                      for s in mine])  # fmt: skip
            rows.append([tool, scenario, *(f"{c:.2f}" for c in cells), f"{rest:.2f}"])
    lines = ["### Where pullsnap's time goes (the grabber's phases, seconds, median)", ""]
    return lines + _table(["tool", "scenario", *PHASES, "rest of the wall time"], rows)


def limit_table(limits: Sequence[dict[str, Any]]) -> list[str]:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for row in limits:
        by_name.setdefault(row["name"], []).append(row)
    rows = []
    for name, runs in by_name.items():
        walls = [r["wall"] for r in runs]
        size = runs[0].get("bytes")
        rate = f"{size / statistics.median(walls) / (1 << 20):.0f} MiB/s" if size else ""
        rows.append([name, _cell(walls), rate])
    return _table(["measure", "seconds: median (min–max)", "throughput"], rows)


def overhead_lines(steps: Sequence[dict[str, Any]]) -> list[str]:
    tiny = group(s for s in steps if s["scenario"] == "tiny")
    ours, floor = tiny.get(("pullsnap", "tiny")), tiny.get((BASELINE, "tiny"))
    if not ours or not floor:
        return []
    diff = statistics.median(ours) - statistics.median(floor)
    return _table(
        ["tiny tree (1 file)", "seconds: median (min–max)"],
        [["pullsnap", _cell(ours)], [BASELINE, _cell(floor)],
         ["orchestration overhead (difference of medians)", f"{diff:.3f}"]],
    )  # fmt: skip


def markdown(details: dict[str, Any]) -> str:
    meta = details["meta"]
    steps = details["steps"]
    lines = [f"## Run of {meta['date']}", ""]
    lines += [f"- {k}: {v}" for k, v in meta["machine"].items()]
    lines += [f"- versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}"]
    lines += [f"- dataset: {meta['dataset']}", f"- repetitions: {meta['reps']}", ""]
    for tool, reason in details.get("skipped", {}).items():
        lines += [f"- **{tool} skipped**: {reason}"]
    lines += [f"- {note}" for note in meta.get("notes", [])]
    if meta.get("cache_drops"):
        lines += [f"- before each timed step the page cache was dropped and the source and the "
                  f"contender's repository read back in ({meta['cache_drops']} steps; "
                  f"bench/measure.py `settle`)"]  # fmt: skip
    elif "cache_drops" in meta:
        lines += ["- the page cache could not be dropped (not root): expect more drift between "
                  "steps (bench/ANALYSIS.md)"]  # fmt: skip
    lines += [""]
    lines += main_tables(steps) + ratio_tables(steps) + phase_table(steps)
    lines += ["### Orchestration overhead", "", *overhead_lines(steps)]
    lines += ["### Physical limits and ssh", "", *limit_table(details.get("limits", []))]
    ext4 = details.get("create_after_delete")
    if ext4:
        lines += [
            f"Creating {ext4['count']:,} small files took {ext4['calm']:.2f} s normally and "
            f"{ext4['after']:.2f} s right after deleting {ext4['deleted']:,} files "
            f"({ext4['after'] / ext4['calm']:.1f}x).",
            "",
        ]
    return "\n".join(lines) + "\n"
