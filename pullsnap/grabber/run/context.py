"""What one run knows (`Run`), and what a step after the verdict hands back
(`Found`).  The phases (backup.py) fill a `Run` in; the steps read it."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pullsnap import errors, report
from pullsnap.config import GrabberConfig
from pullsnap.grabber.integrity.basemanifests import BaseManifest
from pullsnap.grabber.integrity.manifest import Prehashed
from pullsnap.grabber.retention.guard import Budget
from pullsnap.grabber.store.base import Store, Target
from pullsnap.grabber.store.repository import HostRepo
from pullsnap.grabber.transfer.pull import ConnectBack, PullResult
from pullsnap.handoff import Handoff


class Output(Protocol):
    """Where a run reports: the initiator's stdout (session.serve.Reporter)."""

    def log(self, text: str) -> None: ...
    def progress(self, p: report.Progress) -> None: ...


@dataclass
class Run:
    """Everything one run knows; the phases fill it in, in order."""

    cfg: GrabberConfig
    store: Store
    connect: ConnectBack
    handoff: Handoff
    fingerprint: str  # of the one-time key
    mode: str  # "super" or "fake-super"
    held: tuple[str, ...]  # the receiver capabilities this process holds
    out: Output
    now: Callable[[], dt.datetime]
    queue_wait: float = 0.0  # seconds the run waited for a pull slot
    queue: dict[str, Any] = field(default_factory=dict)  # session.slots.Slot.record()
    # prepare
    target: Target | None = None
    budget: Budget = field(default_factory=Budget)  # what the run must leave free for others
    record: dict[str, Any] = field(default_factory=dict)  # written only by record.write
    # pull
    result: PullResult | None = None
    prehashed: Prehashed = field(default_factory=dict)  # hashed while rsync ran (a Spool)
    # The bases' manifests, opened (and sorted, if old) while rsync ran; None: not yet.
    base_manifests: list[BaseManifest] | None = None
    # the verdict
    state: str = ""
    code: int = errors.FAILED
    message: str = ""
    note: str = ""  # for the initiator's verdict line only, not the record
    # Seconds each phase took (the record's "phases"): where a run's time went.
    phases: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the time the block takes to `phases[phase]`."""
        started = time.monotonic()
        try:
            yield
        finally:
            spent = self.phases.get(phase, 0.0) + time.monotonic() - started
            self.phases[phase] = round(spent, 3)

    @property
    def host(self) -> HostRepo:
        return self.store.host

    @property
    def name(self) -> str:
        return self.target.name if self.target is not None else ""

    @property
    def made_snapshot(self) -> bool:
        return self.state in ("complete", "partial")


@dataclass(frozen=True)
class Found:
    """What a step after the pull found: fields for the run's record (the one
    writer, record.write, merges them in) and, where it changes the verdict,
    the new exit code and message."""

    record: Mapping[str, Any] = field(default_factory=dict)
    code: int | None = None
    message: str | None = None


Step = Callable[[Run], Found]
