"""Batching per destination, packed by estimated compressed size and closed by linger time.

The 1 MB request limit applies to bytes sent, after gzip. A batch closes when its uncompressed size times the
destination's observed compression ratio reaches the fill target, or when its oldest row is `linger_secs` old.
The sink measures the real size after compression and hands back rows that did not fit (`requeue`), so the
estimate only has to be good, not exact.
"""

from __future__ import annotations

import time

from ingestor.models import Batch, Destination, Ticket

FILL_TARGET = 0.96
# Logs Ingestion rejects requests that inflate far beyond the limit; keep batches bounded uncompressed too.
MAX_UNCOMPRESSED_BYTES = 32 * 1_048_576
INITIAL_RATIO = 0.2
RATIO_WEIGHT = 0.3


class Batcher:
    """One open batch per destination."""

    def __init__(self, destination: Destination, *, max_request_bytes: int, linger_secs: float) -> None:
        self.destination = destination
        self.max_request_bytes = max_request_bytes
        self.linger_secs = linger_secs
        self.ratio = INITIAL_RATIO
        self._batch = self._new()
        self._limit = self._raw_limit()

    def _new(self) -> Batch:
        return Batch(self.destination, opened_at=time.monotonic())

    def _raw_limit(self) -> int:
        return min(int(self.max_request_bytes * FILL_TARGET / self.ratio), MAX_UNCOMPRESSED_BYTES)

    @property
    def open_bytes(self) -> int:
        return len(self._batch.body)

    def add(self, row: bytes, ticket: Ticket) -> Batch | None:
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
            return self.close()
        return None

    def requeue(self, batch: Batch) -> Batch | None:
        """Take back rows that did not fit a request; they go first into the open batch."""
        self._batch.prepend(batch)
        return self.close() if self._batch.raw_bytes >= self._limit else None

    def due(self, now: float) -> Batch | None:
        """The open batch if its linger time is up."""
        if self._batch.ends and now - self._batch.opened_at >= self.linger_secs:
            return self.close()
        return None

    def close(self) -> Batch | None:
        batch = self._batch
        if not batch.ends:
            return None
        self._batch = self._new()
        return batch

    def observe(self, raw_bytes: int, compressed_bytes: int) -> None:
        """Learn the compression ratio from a compressed request."""
        if raw_bytes > 0:
            self.ratio += RATIO_WEIGHT * (compressed_bytes / raw_bytes - self.ratio)
            self._limit = self._raw_limit()
