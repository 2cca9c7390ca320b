"""Delivery loop: closed batches -> gzip -> Logs Ingestion API, until every row is settled.

A row is settled when the service accepted it (204) or it went to the dead letter; settling decrements its
message's ticket. What follows a failed request is decided by `sinks.retry.RetryPolicy` (pure: waits, backoff,
jitter, split/bisect/dead letter): 429 waits for Retry-After (up to `sink.max_retry_after_secs`); 5xx, timeouts
and resets retry with capped exponential backoff and jitter, without giving up; 413 splits; 400 bisects down to
the offending rows, which are dead-lettered with the service's error; 401/403/404, and a credential that gives no
token, mark the sink unauthorized and retry every `auth_retry_secs` until it works. `Delivery._send` carries the
decision out: metrics, health, the source's throttle pause, the log line and the sleep.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol

from ingestor.commit import settle
from ingestor.config import LogsIngestionSinkConfig
from ingestor.connect.identity import WORKLOAD_IDENTITY_CHECKS, Refusals
from ingestor.errors import UploadError
from ingestor.metrics import Metrics
from ingestor.models import Batch, Destination, Rejected, SourceRef
from ingestor.pipeline.batch import FILL_TARGET, BaseBatcher
from ingestor.sinks.compress import gzip_array
from ingestor.sinks.dead_letter import DeadLetterQueue
from ingestor.sinks.retry import Decision, RetryPolicy

log = logging.getLogger(__name__)


class Uploader(Protocol):
    """What Delivery needs of the Logs Ingestion API client (`sinks.logs_ingestion.LogsIngestionSink`): one gzipped
    request to a destination, returning once the service accepted it (204) and raising UploadError otherwise; used
    inside `async with`."""

    async def send(self, destination: Destination, payload: bytes, request_id: str) -> None: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


# Compress inline below this size; above it a worker thread overlaps compression with the event loop.
THREAD_COMPRESS_BYTES = 256 * 1024


REFUSED = (
    "Logs Ingestion API refused the request; consumption stops until it succeeds. Check that the identity has the "
    "Monitoring Metrics Publisher role on the DCR (403), that the credential is valid (401), and that "
    "sink.endpoint, sink.rule_id and the stream exist (404)"
)
CREDENTIAL_HELP = (
    "the credential gives no Entra ID token for the Logs Ingestion API; consumption stops until it does. "
    + WORKLOAD_IDENTITY_CHECKS
)


UNREACHABLE = (
    "Logs Ingestion API not reachable; requests are retried with back-off until it answers. Check that sink.endpoint "
    "resolves from here (for a private endpoint, the privatelink.monitor.azure.com zone linked to this network), that "
    "egress allows TCP 443 to it, and sink.ca_file"
)


class SinkHealth(Refusals):
    """Which destinations the Logs Ingestion API currently refuses (401/403/404), and which it does not answer at
    all (`unanswered`: the network); each flip is logged once, not each attempt."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(metrics.sink_authorized)
        self.unanswered = Refusals(metrics.sink_reachable)

    def no_answer(self, error: UploadError, destination: str) -> None:
        if self.unanswered.refuse(destination, str(error)):
            log.warning(UNREACHABLE, extra={"destination": destination, "error": str(error)})

    def refused(self, error: UploadError, destination: str) -> None:
        reason = f"{error.status} {error}" if error.status else f"credential: {error}"
        if self.refuse(destination, reason):
            log.error(
                CREDENTIAL_HELP if error.status is None else REFUSED,
                extra={"status": error.status, "destination": destination, "error": str(error)},
            )

    def answered(self, destination: str) -> None:
        """An HTTP answer came, whatever its status."""
        if self.unanswered.accept(destination):
            log.info("Logs Ingestion API reachable again", extra={"destination": destination})

    def accepted(self, destination: str) -> None:
        self.answered(destination)
        if self.accept(destination):
            log.info("Logs Ingestion API accepts requests again", extra={"destination": destination})


class Delivery:
    """Owns the upload queue, the workers and the in-flight byte count."""

    def __init__(
        self,
        config: LogsIngestionSinkConfig,
        sink: Uploader,
        batchers: Mapping[Destination, BaseBatcher],
        dead_letter: DeadLetterQueue,
        metrics: Metrics,
    ) -> None:
        self._config = config
        self._sink = sink
        self._batchers = batchers
        self._dead_letter = dead_letter
        self._metrics = metrics
        self.health = SinkHealth(metrics)
        self._queue: asyncio.Queue[Batch] = asyncio.Queue()
        self._outstanding = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._submitted_bytes = 0  # closed batches: queued, compressing or uploading
        # While the service throttles (429), the source pauses until this monotonic time.
        self.throttled_until = 0.0
        self._policy = RetryPolicy.from_config(config)

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
            payload = await self._compress(part)
            if len(payload) > self._config.max_request_bytes:
                self._trim(part, payload, pending)
                continue
            await self._send(part, payload, pending)

    async def _compress(self, batch: Batch) -> bytes:
        level = self._config.compression_level
        if batch.raw_bytes < THREAD_COMPRESS_BYTES:
            payload = gzip_array(batch.body, level)
        else:
            payload = await asyncio.to_thread(gzip_array, batch.body, level)
        self._batchers[batch.destination].observe(batch.raw_bytes, len(payload))
        return payload

    def _trim(self, batch: Batch, payload: bytes, pending: list[Batch]) -> None:
        """The estimate overshot: send what fits, put the rest back into the open batch of its window."""
        if len(batch) == 1:
            detail = f"row is {len(payload)} bytes compressed; a request may carry {self._config.max_request_bytes}"
            self._reject(batch, "oversized_row", detail)
            return
        keep = int(len(batch) * self._config.max_request_bytes * FILL_TARGET / len(payload))
        head, tail = batch.split(min(max(keep, 1), len(batch) - 1))
        self._metrics.batch_splits.labels(batch.destination.label, "estimate").inc()
        self._submitted_bytes -= tail.raw_bytes  # back into the open batch, counted there
        self.submit(self._batchers[batch.destination].requeue(tail))
        pending.append(head)

    async def _send(self, batch: Batch, payload: bytes, pending: list[Batch]) -> None:
        destination = batch.destination.label
        metrics = self._metrics
        attempt = 0
        while True:
            request_id = str(uuid.uuid4())
            started = time.monotonic()
            try:
                await self._sink.send(batch.destination, payload, request_id)
            except UploadError as error:
                metrics.upload_duration.labels(destination).observe(time.monotonic() - started)
                metrics.requests.labels(destination, error.status_class).inc()
                decision = self._policy.decide(error, attempt, len(batch))
                if decision.action != "retry":
                    self._divide(batch, pending, decision, error)
                    return
                wait = decision.wait_secs
                if decision.throttled:
                    self.throttled_until = max(self.throttled_until, time.monotonic() + wait)
                if error.no_answer:
                    self.health.no_answer(error, destination)
                elif error.status is not None:
                    self.health.answered(destination)
                if decision.unauthorized:
                    self.health.refused(error, destination)
                elif not error.no_answer:
                    log.warning(
                        "upload failed; retrying",
                        extra={
                            "destination": destination,
                            "request_id": request_id,
                            "error": str(error),
                            "attempt": attempt + 1,
                            "wait_secs": round(wait, 3),
                        },
                    )
                metrics.retries.labels(destination, decision.reason).inc()
                metrics.retry_wait.labels(destination, decision.reason).inc(wait)
                waiting = metrics.retry_waiting.labels(destination)
                waiting.set(wait)
                attempt += 1
                try:
                    await asyncio.sleep(wait)
                finally:
                    waiting.set(0)
                continue
            elapsed = time.monotonic() - started
            metrics.upload_duration.labels(destination).observe(elapsed)
            metrics.requests.labels(destination, "2xx").inc()
            metrics.compressed_bytes.labels(destination).inc(len(payload))
            by_class = (batch.destination.table, batch.destination.retention_tag, destination)
            metrics.events_accepted.labels(*by_class).inc(len(batch))
            metrics.raw_bytes.labels(*by_class).inc(batch.raw_bytes)
            self.health.accepted(destination)
            self._settle(batch)
            return

    def _divide(self, batch: Batch, pending: list[Batch], decision: Decision, error: UploadError) -> None:
        """413 or 400: send the two halves (split, bisect), or dead-letter the single row the service refuses."""
        if decision.action == "dead_letter":
            self._reject(batch, decision.reason, str(error))
            return
        self._metrics.batch_splits.labels(batch.destination.label, decision.reason).inc()
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
        self._metrics.events_dead_lettered.labels(table, reason).inc(len(batch))
        log.warning(
            "rows dead-lettered",
            extra={"table": table, "reason": reason, "rows": len(batch), "detail": detail},
        )
        self._release(batch)

    def _settle(self, batch: Batch) -> None:
        self._release(batch)
        settle(batch.tickets, self._metrics.ack_latency.labels(batch.destination.label))

    def _release(self, batch: Batch) -> None:
        self._submitted_bytes -= batch.raw_bytes
        self._metrics.inflight_bytes.set(self.inflight_bytes)
