"""Delivery loop: closed batches -> a request (`request`) -> the Logs Ingestion API (`service`), until every row is
settled.

A row is settled when the service accepted it (204) or it went to the dead letter; settling decrements its
message's ticket. What follows a failed request is decided by `sinks.retry.RetryPolicy` (pure: waits, backoff,
jitter, split/bisect/dead letter) and carried out by `service.UploadService`: 429 waits for Retry-After (up to
`sink.max_retry_after_secs`); 5xx, timeouts and resets retry with capped exponential backoff and jitter, without
giving up; 401/403/404, and a credential that gives no token, mark the sink unauthorized and retry every
`auth_retry_secs` until it works; 413 splits; 400 bisects down to the offending rows, which are dead-lettered with
the service's error. What happens is counted and logged by `events.SinkEvents`. This module owns the queue, the
workers and the in-flight byte count.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from ingestor.commit import settle
from ingestor.config import LogsIngestionSinkConfig
from ingestor.metrics import Metrics
from ingestor.models import Batch, Destination, Rejected, SourceRef
from ingestor.sinks.dead_letter import DeadLetterQueue
from ingestor.sinks.events import SinkEvents, SinkHealth
from ingestor.sinks.request import Batches, RequestBuilder
from ingestor.sinks.retry import RetryPolicy
from ingestor.sinks.service import Undelivered, Uploader, UploadService


class Delivery:
    """Owns the upload queue, the workers and the in-flight byte count."""

    def __init__(
        self,
        config: LogsIngestionSinkConfig,
        sink: Uploader,
        batchers: Mapping[Destination, Batches],
        dead_letter: DeadLetterQueue,
        metrics: Metrics,
    ) -> None:
        self._config = config
        self._batchers = batchers
        self._dead_letter = dead_letter
        self._metrics = metrics
        self._events = SinkEvents(metrics)
        self._requests = RequestBuilder(
            max_request_bytes=config.max_request_bytes, compression_level=config.compression_level, batchers=batchers
        )
        self._service = UploadService(sink, RetryPolicy.from_config(config), self._events)
        self._queue: asyncio.Queue[Batch] = asyncio.Queue()
        self._outstanding = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._submitted_bytes = 0  # closed batches: queued, compressing or uploading

    @property
    def health(self) -> SinkHealth:
        return self._events.health

    @property
    def throttled_until(self) -> float:
        """While the service throttles (429), the source pauses until this monotonic time."""
        return self._service.throttled_until

    # -- intake -------------------------------------------------------------------------------------------

    @property
    def inflight_bytes(self) -> int:
        """Row bytes not yet settled: in open batches, queued, compressing or uploading."""
        return self._submitted_bytes + sum(b.open_bytes for b in self._batchers.values())

    def submit(self, batch: Batch | None) -> None:
        if batch is None:
            return
        self._submitted_bytes += batch.raw_bytes
        self._outstanding += 1
        self._idle.clear()
        self._queue.put_nowait(batch)

    def flush_due(self, now: float) -> None:
        for batcher in self._batchers.values():
            for batch in batcher.due(now):
                self.submit(batch)

    def flush_all(self) -> None:
        for batcher in self._batchers.values():
            for batch in batcher.close():
                self.submit(batch)

    async def drain(self) -> None:
        """Flush every open batch and wait until all rows are settled (rows put back after a trim included)."""
        while True:
            self.flush_all()
            await self._idle.wait()
            if not any(b.open_bytes for b in self._batchers.values()):
                return

    # -- workers ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for _ in range(self._config.upload_concurrency):
                group.create_task(self._worker())

    async def _worker(self) -> None:
        while True:
            batch = await self._queue.get()
            try:
                await self._deliver(batch)
            finally:
                self._outstanding -= 1
                if self._outstanding == 0:
                    self._idle.set()

    async def _deliver(self, batch: Batch) -> None:
        pending = [batch]
        while pending:
            part = pending.pop()
            payload = await self._requests.compress(part)
            if len(payload) > self._requests.max_request_bytes:
                self._trim(part, payload, pending)
                continue
            undelivered = await self._service.send(part, payload)
            if undelivered is None:
                self._settle(part)
            else:
                self._divide(part, pending, undelivered)

    def _trim(self, batch: Batch, payload: bytes, pending: list[Batch]) -> None:
        """The estimate overshot: send what fits, put the rest back into the open batch of its window."""
        trimmed = self._requests.fit(batch, payload)
        if trimmed is None:
            detail = f"row is {len(payload)} bytes compressed; a request may carry {self._requests.max_request_bytes}"
            self._reject(batch, "oversized_row", detail)
            return
        self._events.split(batch, "estimate")
        self._submitted_bytes -= trimmed.returned_bytes  # back into the open batch, counted there
        self.submit(trimmed.closed)
        pending.append(trimmed.head)

    def _divide(self, batch: Batch, pending: list[Batch], undelivered: Undelivered) -> None:
        """413 or 400: send the two halves (split, bisect), or dead-letter the single row the service refuses."""
        decision = undelivered.decision
        if decision.action == "dead_letter":
            self._reject(batch, decision.reason, str(undelivered.error))
            return
        self._events.split(batch, decision.reason)
        head, tail = batch.split(len(batch) // 2)
        pending.extend((tail, head))

    def _reject(self, batch: Batch, reason: str, detail: str) -> None:
        """Rows the service will never take: to the dead letter, which settles their tickets once durable."""
        table = batch.destination.table
        self._dead_letter.put(
            [
                Rejected(row, table, reason, detail, SourceRef(t.position, None))
                for row, t in zip(batch.rows, batch.tickets, strict=True)
            ],
            batch.tickets,
        )
        self._events.dead_lettered(batch, reason, detail)
        self._release(batch)

    def _settle(self, batch: Batch) -> None:
        self._release(batch)
        settle(batch.tickets, self._metrics.ack_latency.labels(batch.destination.label))

    def _release(self, batch: Batch) -> None:
        self._submitted_bytes -= batch.raw_bytes
        self._events.inflight(self.inflight_bytes)
