"""OffsetTracker: which source positions are safe to commit.

A message's position becomes committable when its ticket is done; commits advance only over contiguous done
positions per partition. The tracker is the only place that decides what `source.commit()` receives.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from typing import Protocol

from ingestor.models import Partition, Position, Ticket


class Histogram(Protocol):
    def observe(self, amount: float) -> None: ...


def settle(tickets: Iterable[Ticket], ack_latency: Histogram) -> None:
    """One row (or dead-lettered record) per ticket listed is settled; observe messages that became done."""
    now = time.time()
    for ticket in tickets:
        ticket.pending -= 1
        if ticket.pending == 0 and ticket.sealed:
            ack_latency.observe(max(0.0, now - ticket.created_at))


class OffsetTracker:
    """Tickets of the partitions this process owns, in arrival order, and the offsets they make committable.

    Ownership is checked where tickets are made: `assigned()` starts a partition afresh (whatever an earlier
    ownership left is discarded), `closing()` stops taking messages of partitions about to go (their tickets so far
    stay committable until `forget()`). A message of a partition not owned gets a ticket that is not tracked: its
    rows may still land (at-least-once), and its offset is never committed by this process.
    """

    def __init__(self) -> None:
        self._open: dict[Partition, deque[Ticket]] = {}
        self._committed: dict[Partition, int] = {}
        self._taking: set[Partition] = set()

    def assigned(self, keys: Iterable[Partition]) -> None:
        for key in keys:
            self._open[key] = deque()
            self._committed.pop(key, None)
            self._taking.add(key)

    def closing(self, keys: Iterable[Partition]) -> None:
        self._taking.difference_update(keys)

    def track(self, position: Position, created_at: float | None = None) -> Ticket:
        """Register a message in arrival order; positions of one partition must arrive in offset order.

        `created_at`: the message's timestamp in wall-clock seconds, for event-to-acknowledgement latency.
        """
        ticket = Ticket(position, time.time() if created_at is None else created_at)
        if position.key in self._taking:
            self._open[position.key].append(ticket)
        return ticket

    def owns(self, key: Partition) -> bool:
        """Whether `key` is assigned and not yet forgotten: only such partitions are ever committed."""
        return key in self._open

    def committable(self) -> dict[Partition, int]:
        """Offsets to commit (next offset to read, Kafka convention) for owned partitions that advanced."""
        advanced: dict[Partition, int] = {}
        for key, tickets in self._open.items():
            last = None
            while tickets and tickets[0].done:
                last = tickets.popleft().position.offset
            if last is not None:
                advanced[key] = last + 1
        return advanced

    def committed(self, offsets: dict[Partition, int]) -> None:
        """Record offsets the source confirmed as committed."""
        self._committed.update(offsets)

    def committed_offset(self, key: Partition) -> int | None:
        return self._committed.get(key)

    def open_messages(self) -> int:
        """Messages read but not yet committable."""
        return sum(len(t) for t in self._open.values())

    def forget(self, keys: Iterable[Partition]) -> None:
        """Drop state of partitions this process no longer owns."""
        for key in keys:
            self._open.pop(key, None)
            self._committed.pop(key, None)
            self._taking.discard(key)
