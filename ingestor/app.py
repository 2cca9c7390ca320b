"""The running ingestor: wires source -> decode -> batch -> delivery -> commit, and shuts down in order.

Shutdown (SIGTERM, `stop()`): stop fetching, flush open batches, wait for uploads to settle (bounded by
`shutdown_grace_secs`), sync the dead letter, commit, close. Partition revocation does the same for the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from ingestor.commit import OffsetTracker
from ingestor.config import Config
from ingestor.health import HealthServer
from ingestor.metrics import Metrics
from ingestor.models import Message, Partition, Rejected, SourceRef
from ingestor.pipeline.batch import Batcher
from ingestor.pipeline.decode import MessageDecoder
from ingestor.sinks.dead_letter import DeadLetterWriter
from ingestor.sinks.delivery import Delivery
from ingestor.sinks.logs_ingestion import LogsIngestionSink
from ingestor.sources.kafka import KafkaSource
from ingestor.tables import load_schemas

log = logging.getLogger(__name__)
FETCH_TIMEOUT_SECS = 0.2
UNKNOWN_TABLE = "unknown"


class Ingestor:
    def __init__(self, config: Config, *, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        destinations = config.destinations()
        self.decoder = MessageDecoder(
            load_schemas(),
            retention_tag=lambda table: destinations[table].retention_tag,
            unknown_columns=config.validation.unknown_columns,
            max_record_bytes=config.validation.max_record_bytes,
            max_field_bytes=config.validation.max_field_bytes,
        )
        self.tracker = OffsetTracker()
        self.batchers = {
            table: Batcher(d, max_request_bytes=config.sink.max_request_bytes, linger_secs=config.sink.linger_secs)
            for table, d in destinations.items()
        }
        self.dead_letter = DeadLetterWriter(config.dead_letter.path, max_file_bytes=config.dead_letter.max_file_bytes)
        self._stopping = asyncio.Event()
        self._to_commit: dict[Partition, int] = {}
        self._source: KafkaSource | None = None
        self._delivery: Delivery | None = None
        self.health_port: int | None = None

    def stop(self) -> None:
        """Begin a graceful shutdown (safe to call from a signal handler)."""
        self._stopping.set()

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def run(self) -> bool:
        """Run until stop(); True when every row read was settled and committed before exit."""
        config = self.config
        if config.sink.insecure_skip_tls_verify:
            log.warning("sink.insecure_skip_tls_verify is on: the Logs Ingestion endpoint is not authenticated")
        async with LogsIngestionSink(config.sink) as sink:
            delivery = self._delivery = Delivery(config.sink, sink, self.batchers, self.dead_letter, self.metrics)
            source = self._source = KafkaSource(config.source, on_revoked=self._revoked, on_assigned=self._assigned)
            health = HealthServer(self.metrics, self.readiness, host=config.metrics.host, port=config.metrics.port)
            await health.start()
            self.health_port = health.port
            log.info("starting", extra={"metrics_port": health.port, "topics": config.source.topics})
            drained = False
            try:
                await source.start()
                async with asyncio.TaskGroup() as group:
                    background = [
                        group.create_task(delivery.run()),
                        group.create_task(self._every(config.sink.linger_secs / 4, self._flush_due)),
                        group.create_task(self._every(config.source.commit_interval_secs, self._commit)),
                    ]
                    await self._consume(source, delivery)
                    drained = await self._drain(delivery)
                    await self._commit()
                    for task in background:
                        task.cancel()
            finally:
                with contextlib.suppress(Exception):
                    await source.stop()
                self.dead_letter.close()
                await health.stop()
        log.info("stopped", extra={"drained": drained, "open_messages": self.tracker.open_messages()})
        return drained

    async def _consume(self, source: KafkaSource, delivery: Delivery) -> None:
        limit = self.config.sink.max_inflight_bytes
        while not self._stopping.is_set():
            if delivery.inflight_bytes >= limit or not delivery.health.authorized:
                self._pause(source)
            elif source.paused:
                self._resume(source)
            messages = await source.fetch(FETCH_TIMEOUT_SECS)
            if messages:
                self.process(messages, delivery)

    async def _drain(self, delivery: Delivery) -> bool:
        grace = self.config.shutdown_grace_secs
        try:
            async with asyncio.timeout(grace):
                await delivery.drain()
        except TimeoutError:
            log.warning(
                "shutdown grace period ended with rows still in flight; they were not committed and will be "
                "read again after restart",
                extra={"grace_secs": grace, "inflight_bytes": delivery.inflight_bytes},
            )
            return False
        return True

    @staticmethod
    async def _every(interval: float, action: Callable[[], Awaitable[None] | None]) -> None:
        while True:
            await asyncio.sleep(interval)
            result = action()
            if result is not None:
                await result

    # -- the hot path -------------------------------------------------------------------------------------

    def process(self, messages: list[Message], delivery: Delivery) -> None:
        """Decode a fetched batch, hand rows to the batchers, dead-letter rejects. Hot path."""
        read: Counter[str] = Counter()
        skipped: Counter[str] = Counter()
        rejected: list[Rejected] = []
        unknown: Counter[tuple[str, str]] = Counter()
        truncated: Counter[str] = Counter()
        track, decode, batchers = self.tracker.track, self.decoder.decode, self.batchers
        hold, submit = delivery.hold, delivery.submit
        topics: Counter[str] = Counter()
        for message in messages:
            ticket = track(message.position)
            result = decode(message.value, SourceRef(message.position, 0))
            ticket.pending = len(result.rows)
            for row in result.rows:
                hold(len(row.body) + 1)
                submit(batchers[row.table].add(row.body, ticket))
                read[row.table] += 1
            ticket.sealed = True
            topics[message.position.topic] += 1
            if result.rejected:
                rejected.extend(result.rejected)
            if result.skipped:
                skipped.update(result.skipped)
                read[UNKNOWN_TABLE] += sum(result.skipped.values())
            if result.unknown_columns:
                unknown.update(result.unknown_columns)
            if result.truncated_fields:
                truncated.update(result.truncated_fields)
        self._count(topics, read, skipped, rejected, unknown, truncated)
        self.dead_letter.write(rejected)
        self.metrics.inflight_bytes.set(delivery.inflight_bytes)

    def _count(
        self,
        topics: Counter[str],
        read: Counter[str],
        skipped: Counter[str],
        rejected: list[Rejected],
        unknown: Counter[tuple[str, str]],
        truncated: Counter[str],
    ) -> None:
        m = self.metrics
        for topic, n in topics.items():
            m.messages_read.labels(topic).inc(n)
        dead: Counter[tuple[str, str]] = Counter((r.table or UNKNOWN_TABLE, r.reason) for r in rejected)
        for (table, _reason), n in dead.items():
            read[table] += n
        for table, n in read.items():
            m.events_read.labels(table).inc(n)
        for (table, reason), n in dead.items():
            m.events_dead_lettered.labels(table, reason).inc(n)
        for category, n in skipped.items():
            m.events_skipped.labels(category).inc(n)
        for (table, column), n in unknown.items():
            m.unknown_columns.labels(table, column).inc(n)
        for table, n in truncated.items():
            m.truncated_fields.labels(table).inc(n)

    # -- commits, partitions, health ----------------------------------------------------------------------

    def _flush_due(self) -> None:
        if self._delivery is not None:
            self._delivery.flush_due(time.monotonic())

    async def _commit(self) -> None:
        source = self._source
        if source is None:
            return
        self._to_commit.update(self.tracker.committable())
        if self._to_commit:
            self.dead_letter.sync()  # a committed record is landed or durably dead-lettered
            offsets = dict(self._to_commit)
            if await source.commit(offsets):
                self.tracker.committed(offsets)
                for key, offset in offsets.items():
                    if self._to_commit.get(key) == offset:
                        del self._to_commit[key]
                    self.metrics.committed_offset.labels(key.topic, str(key.partition)).set(offset)
                self.metrics.commits.labels("ok").inc()
            else:
                self.metrics.commits.labels("failed").inc()
        self._observe_partitions(source)

    def _observe_partitions(self, source: KafkaSource) -> None:
        paused = source.paused
        for key in source.assignment():
            labels = (key.topic, str(key.partition))
            self.metrics.partition_paused.labels(*labels).set(1 if key in paused else 0)
            highwater, committed = source.highwater(key), self.tracker.committed_offset(key)
            if highwater is not None:
                self.metrics.consumer_lag.labels(*labels).set(max(0, highwater - (committed or 0)))

    def _pause(self, source: KafkaSource) -> None:
        assigned = source.assignment()
        if assigned - source.paused:
            log.info("pausing partitions (backpressure)", extra={"inflight_bytes": self._inflight()})
            source.pause(assigned)

    def _resume(self, source: KafkaSource) -> None:
        log.info("resuming partitions", extra={"inflight_bytes": self._inflight()})
        source.resume()

    def _inflight(self) -> int:
        return self._delivery.inflight_bytes if self._delivery else 0

    async def _revoked(self, partitions: set[Partition]) -> None:
        """Before the group takes partitions away: land their rows and commit them."""
        if self._delivery is not None:
            await self._drain(self._delivery)
        await self._commit()
        self.tracker.forget(partitions)
        for key in partitions:
            self._to_commit.pop(key, None)
            for gauge in (
                self.metrics.consumer_lag,
                self.metrics.partition_paused,
                self.metrics.committed_offset,
            ):
                with contextlib.suppress(KeyError):
                    gauge.remove(key.topic, str(key.partition))
        log.info("partitions revoked", extra={"partitions": sorted(f"{p.topic}/{p.partition}" for p in partitions)})

    async def _assigned(self, partitions: set[Partition]) -> None:
        log.info(
            "partitions assigned",
            extra={"partitions": sorted(f"{p.topic}/{p.partition}" for p in partitions)},
        )

    def readiness(self) -> tuple[bool, str]:
        if self._source is None or not self._source.assignment():
            return (
                False,
                "no partitions assigned (more replicas than partitions, or the group is rebalancing)",
            )
        if self._delivery is not None and not self._delivery.health.authorized:
            return False, f"Logs Ingestion API refuses requests ({self._delivery.health.problem})"
        return True, ""
