"""At-least-once bookkeeping: where a message came from (`Position`), its delivery ticket, and which positions are
safe to commit (`OffsetTracker`).

A ticket's life is its own methods: `expect` the rows taken from the message, `seal` once all are taken, `settle`
one as it lands (204) or is durable in the dead letter; it is done once sealed with nothing pending. A position
becomes committable when its ticket is done; commits advance only over contiguous done positions per partition. The
tracker is the only place that decides what `source.commit()` receives. Imports nothing of the ingestor's.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple, Protocol


class Histogram(Protocol):
    def observe(self, amount: float) -> None: ...


class Partition(NamedTuple):
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class Position:
    """Where a message came from: enough to commit past it and to find it again."""

    topic: str
    partition: int
    offset: int

    @property
    def key(self) -> Partition:
        return Partition(self.topic, self.partition)


@dataclass(eq=False, slots=True)
class Ticket:
    """Delivery bookkeeping for one message: done once sealed and every row taken from it is settled.

    A row is settled when the service accepted it (204) or it was written to the dead letter.
    """

    position: Position
    # Wall-clock seconds the message was produced (its Kafka timestamp or Event Hubs enqueued time), or read when it
    # has none.
    created_at: float
    pending: int = 0
    sealed: bool = False

    @property
    def done(self) -> bool:
        return self.sealed and self.pending == 0

    def expect(self, rows: int) -> None:
        """`rows` more rows (or dead-letter records) are on their way for this message; only before `seal`."""
        assert not self.sealed, "rows are expected before the ticket is sealed"
        self.pending += rows

    def seal(self) -> None:
        """Every row of the message is taken: the ticket is done once they are all settled."""
        self.sealed = True

    def settle(self, now: float, ack_latency: Histogram) -> None:
        """One row landed or is durable in the dead letter; observe the latency when that made the message done."""
        self.pending -= 1
        if self.pending == 0 and self.sealed:
            ack_latency.observe(max(0.0, now - self.created_at))


def settle(tickets: Iterable[Ticket], ack_latency: Histogram) -> None:
    """One row (or dead-lettered record) per ticket listed is settled."""
    now = time.time()
    for ticket in tickets:
        ticket.settle(now, ack_latency)


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
