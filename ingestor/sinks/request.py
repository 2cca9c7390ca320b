"""Building a request from a closed batch: gzip it (`compress`, in a worker thread when large), measure it, tell its
batcher the compression ratio it learns from, and, when the estimate overshot `sink.max_request_bytes`, trim it to
what fits and give the rest back to the open batch of its window (`fit`). No I/O, no metrics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ingestor.models import FILL_TARGET, Batch, Destination
from ingestor.sinks.compress import gzip_array

# Compress inline below this size; above it a worker thread overlaps compression with the event loop.
THREAD_COMPRESS_BYTES = 256 * 1024


class Batches(Protocol):
    """What the sink needs of a destination's batcher (`pipeline.batch.BaseBatcher`)."""

    @property
    def open_bytes(self) -> int: ...

    def observe(self, raw_bytes: int, compressed_bytes: int) -> None: ...

    def requeue(self, batch: Batch) -> Batch | None: ...

    def due(self, now: float) -> list[Batch]: ...

    def close(self) -> list[Batch]: ...


@dataclass(frozen=True, slots=True)
class Trimmed:
    """What `fit` made of a batch too large once compressed: `head` to send now; `closed`, a batch its batcher
    closed when the rest went back (None while the rest waits in an open batch); `returned_bytes`, the rest's size."""

    head: Batch
    closed: Batch | None
    returned_bytes: int


class RequestBuilder:
    def __init__(self, *, max_request_bytes: int, compression_level: int, batchers: Mapping[Destination, Batches]):
        self.max_request_bytes = max_request_bytes
        self._level = compression_level
        self._batchers = batchers

    async def compress(self, batch: Batch) -> bytes:
        """The request body of `batch`, gzipped; its batcher learns the ratio."""
        if batch.raw_bytes < THREAD_COMPRESS_BYTES:
            payload = gzip_array(batch.body, self._level)
        else:
            payload = await asyncio.to_thread(gzip_array, batch.body, self._level)
        self._batchers[batch.destination].observe(batch.raw_bytes, len(payload))
        return payload

    def fit(self, batch: Batch, payload: bytes) -> Trimmed | None:
        """`batch` compressed to `payload`, larger than a request may be: the rows that fit, the rest given back to
        its batcher; None for a single row (it can never fit)."""
        if len(batch) == 1:
            return None
        keep = int(len(batch) * self.max_request_bytes * FILL_TARGET / len(payload))
        head, tail = batch.split(min(max(keep, 1), len(batch) - 1))
        return Trimmed(head, self._batchers[batch.destination].requeue(tail), tail.raw_bytes)
