"""bench/FLEET.md's measured part and bench/fleet-queue.png, from the nights.

FLEET.md is written by hand around the table: only the text between the
two markers below is replaced.  The plot needs matplotlib (the `bench`
extra); without it the table is still written.
"""

from __future__ import annotations

import os
from typing import Any

from bench.fleetnight import Night

BEGIN, END = "<!-- fleet:begin -->", "<!-- fleet:end -->"
PLOT = "fleet-queue.png"
NAMES = {"a": "(a) all at once", "b": "(b) one stalled", "c": "(c) one sends 50x",
         "d": "(d) second night, no change", "d1": "(d') next night, 1% changed"}  # fmt: skip


def _cap(cap: int) -> str:
    return str(cap) if cap > 0 else "off"


def table(results: dict[str, Any], nights: list[Night], plotted: bool = True) -> str:
    lines = [
        f"{results['hosts']} hosts x {results['files_per_host']} files "
        f"(mean {results['mean_size']} B), {results['cpus']} CPUs, "
        f"receiver `--{results['mode']}` unless the row says otherwise; every night's "
        "initiators are released at once (one lock they all wait for).",
        "",
        "| scenario | max_concurrent_pulls | makespan | queue wait median / max | "
        "run median / max | vault peak RSS | vault CPU | files/s | MiB/s | all good |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n in nights:
        waits = sorted(h.queue_wait for h in n.hosts)
        runs = sorted(h.run for h in n.hosts if h.host != n.stalled)
        label = NAMES.get(n.scenario, n.scenario)
        if n.scenario == "b":
            label += f" ({n.mode})"
        lines.append(
            f"| {label} | {_cap(n.cap)} | {n.makespan:.1f} s | "
            f"{_median(waits):.1f} / {waits[-1]:.1f} s | {_median(runs):.1f} / {runs[-1]:.1f} s | "
            f"{n.peak_rss / 2**20:.0f} MiB | {n.vault_cpu:.1f} s | "
            f"{n.files / n.makespan:,.0f} | {n.transferred / n.makespan / 2**20:.1f} | "
            f"{'yes' if n.all_good else 'NO'} |"
        )
    lines.append("")
    for n in nights:
        if n.stalled:
            lines.append(
                f"- {NAMES['b']} ({n.mode}): {n.stalled}'s sending rsync was stopped mid-transfer; "
                f"its run ended {n.stalled_held:.1f} s later (rsync_timeout "
                f"{n.rsync_timeout:.0f} s) and freed its slot; {n.finished_meanwhile} other hosts "
                "finished meanwhile."
            )
    order = [n for n in nights if n.cap > 0]
    if order:
        worst = max(n.order_violations for n in order)
        lines.append(f"- Served out of arrival order (by more than 0.5 s): {worst} pairs in the "
                     "worst night with a cap.")  # fmt: skip
    if "binding" in results:
        b = results["binding"]
        verdict = "refused" if b["refused"] else "ACCEPTED"
        lines.append(f"- {b['key_of']}'s key from {b['from_address_of']}'s address: "
                     f"{verdict} (exit {b['exit']}).")  # fmt: skip
    if plotted:
        lines.append(f"\n![queue wait per host]({PLOT})")
    return "\n".join(lines)


def _median(values: list[float]) -> float:
    return values[len(values) // 2] if values else 0.0


def plot(path: str, nights: list[Night]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    first = [n for n in nights if n.scenario == "a"]
    if not first:
        return False
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for n in first:
        # Hosts in the order they reached the vault (their queue tickets).
        ordered = sorted(n.hosts, key=lambda h: (h.ticket < 0, h.ticket, h.started))
        ax.plot(range(1, len(ordered) + 1), [h.queue_wait for h in ordered], marker="o",
                markersize=3, label=f"max_concurrent_pulls = {_cap(n.cap)}")  # fmt: skip
    ax.set_xlabel("host, in arrival order at the vault")
    ax.set_ylabel("wait for a pull slot (s)")
    ax.set_title(f"{len(first[0].hosts)} hosts start within one second: queue wait per host")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write(out: str, results: dict[str, Any], nights: list[Night], name: str = "fleet") -> None:
    """Replace the table between `<!-- NAME:begin -->` and `<!-- NAME:end -->`."""
    begin, end = BEGIN.replace("fleet", name), END.replace("fleet", name)
    path = os.path.join(out, "FLEET.md")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = "# Many hosts, one vault\n"
    if begin not in text:
        text += f"\n{begin}\n{end}\n"
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}{begin}\n{table(results, nights, plotted=name == 'fleet')}\n{end}{tail}")
    if name == "fleet":
        plot(os.path.join(out, PLOT), nights)
