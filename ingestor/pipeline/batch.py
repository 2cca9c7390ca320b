"""Batching per destination, packed by estimated compressed size and closed by linger time or time window.

The 1 MB request limit applies to bytes sent, after gzip. A batch closes when its uncompressed size times the
destination's observed compression ratio reaches the fill target, or when its oldest row is `linger_secs` old.
The sink measures the real size after compression and hands back rows that did not fit (`requeue`), so the
estimate only has to be good, not exact.

An Auxiliary destination accepts no request spanning more than 30 minutes of TimeGenerated: its `WindowedBatcher`
keeps one open batch per half-hour window (the decoder gives each row its window), each closed by size and linger
as above, and at most `MAX_OPEN_WINDOWS` of them; a row of one more window closes the batch opened first. Every
other destination has one open batch, whatever the rows' times (`Batcher`, the hot path).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

from ingestor.commit import Ticket
from ingestor.models import FILL_TARGET, Batch, Destination

# Logs Ingestion rejects requests that inflate far beyond the limit; keep batches bounded uncompressed too.
MAX_UNCOMPRESSED_BYTES = 32 * 1_048_576
INITIAL_RATIO = 0.2
RATIO_WEIGHT = 0.3
# Open windows per Auxiliary destination: rows out of time order by up to this many half hours share batches.
MAX_OPEN_WINDOWS = 16


def batcher_for(destination: Destination, *, max_request_bytes: int, linger_secs: float) -> BaseBatcher:
    """The batcher a destination needs: windowed for the Auxiliary plan."""
    kind = WindowedBatcher if destination.auxiliary else Batcher
    return kind(destination, max_request_bytes=max_request_bytes, linger_secs=linger_secs)


class BaseBatcher(ABC):
    """Open batches of one destination and the size bound they share, learned from compressed requests."""

    def __init__(self, destination: Destination, *, max_request_bytes: int, linger_secs: float) -> None:
        self.destination = destination
        self.max_request_bytes = max_request_bytes
        self.linger_secs = linger_secs
        self.ratio = INITIAL_RATIO
        self._limit = self._raw_limit()

    def _new(self, window: int = 0) -> Batch:
        return Batch(self.destination, opened_at=time.monotonic(), window=window)

    def _raw_limit(self) -> int:
        return min(int(self.max_request_bytes * FILL_TARGET / self.ratio), MAX_UNCOMPRESSED_BYTES)

    def observe(self, raw_bytes: int, compressed_bytes: int) -> None:
        """Learn the compression ratio from a compressed request."""
        if raw_bytes > 0:
            self.ratio += RATIO_WEIGHT * (compressed_bytes / raw_bytes - self.ratio)
            self._limit = self._raw_limit()

    @property
    @abstractmethod
    def open_batches(self) -> list[Batch]:
        """The open batches that hold rows."""

    @property
    @abstractmethod
    def open_bytes(self) -> int:
        """Row bytes in open batches."""

    @abstractmethod
    def add(self, row: bytes, ticket: Ticket, window: int = 0) -> Batch | None:
        """Append a row of `window`; returns a batch to send when one closed. Hot path."""

    @abstractmethod
    def requeue(self, batch: Batch) -> Batch | None:
        """Take back rows that did not fit a request; they go first into an open batch of their window."""

    @abstractmethod
    def due(self, now: float) -> list[Batch]:
        """The open batches whose linger time is up."""

    @abstractmethod
    def close(self) -> list[Batch]:
        """Every open batch that holds rows."""


class Batcher(BaseBatcher):
    """One open batch; rows' windows are ignored."""

    def __init__(self, destination: Destination, *, max_request_bytes: int, linger_secs: float) -> None:
        super().__init__(destination, max_request_bytes=max_request_bytes, linger_secs=linger_secs)
        self._batch = self._new()

    @property
    def open_batches(self) -> list[Batch]:
        return [self._batch] if self._batch.ends else []

    @property
    def open_bytes(self) -> int:
        return len(self._batch.body)

    def add(self, row: bytes, ticket: Ticket, window: int = 0) -> Batch | None:
        """Append a row; returns the batch when it is full (a new one is open). Hot path."""
        batch = self._batch
        body = batch.body
        if not body:
            batch.opened_at = time.monotonic()
        body += b","
        body += row
        batch.ends.append(len(body))
        batch.tickets.append(ticket)
        if len(body) >= self._limit:
            self._batch = self._new()
            return batch
        return None

    def requeue(self, batch: Batch) -> Batch | None:
        self._batch.prepend(batch)
        if self._batch.raw_bytes >= self._limit:
            full, self._batch = self._batch, self._new()
            return full
        return None

    def due(self, now: float) -> list[Batch]:
        if self._batch.ends and now - self._batch.opened_at >= self.linger_secs:
            return self.close()
        return []

    def close(self) -> list[Batch]:
        batch = self._batch
        if not batch.ends:
            return []
        self._batch = self._new()
        return [batch]


class WindowedBatcher(BaseBatcher):
    """One open batch per time window, at most `max_windows` of them, all bounded by one compression ratio."""

    def __init__(
        self,
        destination: Destination,
        *,
        max_request_bytes: int,
        linger_secs: float,
        max_windows: int = MAX_OPEN_WINDOWS,
    ) -> None:
        super().__init__(destination, max_request_bytes=max_request_bytes, linger_secs=linger_secs)
        self.max_windows = max_windows
        # By window, in the order they were opened; a window is open only while its batch holds rows.
        self._open: dict[int, Batch] = {}

    @property
    def open_batches(self) -> list[Batch]:
        return list(self._open.values())

    @property
    def open_bytes(self) -> int:
        return sum(len(batch.body) for batch in self._open.values())

    def add(self, row: bytes, ticket: Ticket, window: int = 0) -> Batch | None:
        """Append a row to its window's batch; returns that batch when full, else the first opened beyond the cap."""
        batch = self._open.get(window)
        if batch is None:
            batch = self._open[window] = self._new(window)
        body = batch.body
        body += b","
        body += row
        batch.ends.append(len(body))
        batch.tickets.append(ticket)
        return self._full_or_evicted(batch)

    def requeue(self, batch: Batch) -> Batch | None:
        open_batch = self._open.get(batch.window)
        if open_batch is None:
            self._open[batch.window] = open_batch = batch
        else:
            open_batch.prepend(batch)
        return self._full_or_evicted(open_batch)

    def _full_or_evicted(self, batch: Batch) -> Batch | None:
        """After rows went into `batch`: close it if full, else the first opened window if too many are open."""
        if len(batch.body) >= self._limit:
            return self._open.pop(batch.window)
        if len(self._open) > self.max_windows:
            return self._open.pop(next(iter(self._open)))
        return None

    def due(self, now: float) -> list[Batch]:
        windows = [w for w, batch in self._open.items() if now - batch.opened_at >= self.linger_secs]
        return [self._open.pop(w) for w in windows]

    def close(self) -> list[Batch]:
        batches = list(self._open.values())
        self._open.clear()
        return batches
