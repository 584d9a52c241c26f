"""Keeping a run to its budget while it runs.

The guard lets a run start when the free space covers its need and what is
protected for the other hosts' next runs; it cannot know what the run will
send.  While rsync runs, the grabber measures the free space (statvfs, a
few times a second, from the loop that relays rsync's output) and stops
rsync as soon as the free bytes or inodes drop below what the budget keeps
for the others; after rsync has ended, the same check decides whether the
snapshot may be kept.  A stopped run is a full disk (run/diskfull.py): its
tree is removed at once and the space is back.

Every drop counts against the running host, other pulls running at the
same time included: a run may be stopped because others grew meanwhile,
never because it kept within the room it was given.
"""

from __future__ import annotations

from collections.abc import Callable

from pullsnap.grabber.retention.guard import Budget
from pullsnap.grabber.store.space import Space, free_space, show

EVERY = 0.05  # seconds between two looks at the free space


class SpaceWatch:
    """Says why `host`'s run must stop, or "" while it keeps to `budget`."""

    def __init__(
        self, root: str, host: str, budget: Budget, measure: Callable[[str], Space] = free_space
    ) -> None:
        self.root = root
        self.host = host
        self.budget = budget
        self.measure = measure
        self.start = measure(root)

    @property
    def needed(self) -> bool:
        """Nothing is kept for others: the filesystem's own limit is the run's."""
        return self.budget.keep != Space()

    def __call__(self) -> str:
        free = self.measure(self.root)
        if not self.needed or free.covers(self.budget.keep):
            return ""
        return message(self.host, free, self.budget, (self.start - free).positive())


def message(host: str, free: Space, budget: Budget, taken: Space) -> str:
    """One line an operator can act on (pure)."""
    whose = ", ".join(budget.hosts) or "the other hosts"
    return (
        f"{host} is growing: its run was stopped with {show(free)} free, less than the "
        f"{show(budget.keep)} kept for the next runs of {whose}, after taking {show(taken)}; "
        f"the snapshot is not kept: find out why {host} grew, or give it room (add space, "
        f"or a larger [hosts.{host}] share)"
    )
