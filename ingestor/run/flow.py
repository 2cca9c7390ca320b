"""Flow: decode -> batch -> deliver, with the dead letter, for messages from any source.

`ingestor run` feeds it its source's messages and commits what it settles; `ingestor replay` feeds it files. A message
is tracked by a Ticket that settles once every row taken from it landed (204) or is durable in the dead letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any

import msgspec

from ingestor.commit import Position, Ticket
from ingestor.config import Config, DeadLetterConfig, EventHubsSourceConfig, KafkaSourceConfig
from ingestor.connect.identity import SourceCredentials
from ingestor.metrics import Metrics
from ingestor.models import Message, Rejected, SourceRef
from ingestor.pipeline.batch import batcher_for
from ingestor.pipeline.decode import UNKNOWN_WINDOW, MessageDecoder, auxiliary_time
from ingestor.sinks.dead_letter import DeadLetterQueue, DeadLetterStore
from ingestor.sinks.dead_letter_file import FileStore
from ingestor.sinks.dead_letter_kafka import KafkaStore
from ingestor.sinks.delivery import Delivery
from ingestor.sinks.logs_ingestion import LogsIngestionSink
from ingestor.sinks.service import Uploader

log = logging.getLogger(__name__)
UNKNOWN_TABLE = "unknown"
_table_of = operator.attrgetter("table")


class _Tagged(msgspec.Struct):
    """What routing a shaped row needs: its class, and its time for an Auxiliary destination's window."""

    RetentionTag: Any = None
    TimeGenerated: Any = None


_TAGGED = msgspec.json.Decoder(_Tagged).decode
Track = Callable[[Position, float | None], Ticket]


def dead_letter_store(
    config: DeadLetterConfig,
    source: KafkaSourceConfig | EventHubsSourceConfig,
    metrics: Metrics,
    credentials: SourceCredentials | None = None,
) -> DeadLetterStore:
    if config.type == "kafka":
        # Both checked by the config model: a Kafka dead letter has a topic and a Kafka source.
        assert config.topic is not None and isinstance(source, KafkaSourceConfig)
        return KafkaStore(source, config.topic, metrics, credentials)
    assert config.path is not None
    return FileStore(config.path, max_file_bytes=config.max_file_bytes, max_total_bytes=config.max_total_bytes)


class Flow:
    """Owns the decoder, the batchers, the delivery workers and the dead-letter queue."""

    def __init__(
        self,
        config: Config,
        metrics: Metrics,
        *,
        dead_letter: DeadLetterStore | None = None,
        credentials: SourceCredentials | None = None,
        uploader: Uploader | None = None,
    ) -> None:
        """`dead_letter`: the store instead of the configured one; `credentials`: where the Kafka dead letter's Entra
        ID credential reports (it shares the source's); `uploader`: the Logs Ingestion client instead of the real
        one (`LogsIngestionSink`), entered and exited with the Flow."""
        self.config = config
        self.metrics = metrics
        self.routes = config.routes()
        self.decoder = MessageDecoder(
            config.table_schemas(),
            routes=self.routes,
            unknown_columns=config.validation.unknown_columns,
            max_record_bytes=config.validation.max_record_bytes,
            max_field_bytes=config.validation.max_field_bytes,
            max_message_bytes=config.validation.max_message_bytes,
        )
        sink = config.sink
        self.batchers = {
            d: batcher_for(d, max_request_bytes=sink.max_request_bytes, linger_secs=sink.linger_secs)
            for route in self.routes.values()
            for d in route.destinations
        }
        store = dead_letter or dead_letter_store(config.dead_letter, config.source, metrics, credentials)
        self.dead_letter = DeadLetterQueue(store, metrics, retry_secs=config.dead_letter.retry_secs)
        self._sink = uploader if uploader is not None else LogsIngestionSink(sink)
        self.delivery = Delivery(sink, self._sink, self.batchers, self.dead_letter, metrics)

    async def __aenter__(self) -> Flow:
        await self._sink.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._sink.__aexit__(exc_type, exc, tb)

    def tasks(self) -> dict[str, Coroutine[Any, Any, None]]:
        """The flow's internal tasks by name, each running until cancelled: delivery workers, the dead-letter
        writer and the linger clock. `ingestor run` watches each (app.py); `run()` is them in a TaskGroup."""
        return {"delivery": self.delivery.run(), "dead-letter": self.dead_letter.run(), "linger": self._linger()}

    async def run(self) -> None:
        """Every task of `tasks()`, until cancelled."""
        async with asyncio.TaskGroup() as group:
            for name, task in self.tasks().items():
                group.create_task(task, name=name)

    async def _linger(self) -> None:
        interval = self.config.sink.linger_secs / 4
        while True:
            await asyncio.sleep(interval)
            self.delivery.flush_due(time.monotonic())

    @property
    def inflight_bytes(self) -> int:
        return self.delivery.inflight_bytes + self.dead_letter.pending_bytes

    def backpressure(self) -> str:
        """Why the source should pause now, or '' to keep reading."""
        if self.inflight_bytes >= self.config.sink.max_inflight_bytes:
            return "in-flight bytes at sink.max_inflight_bytes"
        if not self.delivery.health.authorized:
            return "Logs Ingestion API refuses requests"
        if self.delivery.throttled_until > time.monotonic():
            return "Logs Ingestion API throttles (429)"
        if self.dead_letter.failing:
            return "dead letter cannot be written"
        return ""

    async def drain(self, grace_secs: float) -> bool:
        """Flush open batches and wait until everything is settled; False if `grace_secs` ran out first."""
        try:
            async with asyncio.timeout(grace_secs):
                await self.delivery.drain()
                await self.dead_letter.drain()
        except TimeoutError:
            log.warning(
                "grace period ended with rows still in flight; they were not committed and will be read again",
                extra={"grace_secs": grace_secs, "inflight_bytes": self.inflight_bytes},
            )
            return False
        return True

    # -- the hot path -------------------------------------------------------------------------------------

    def process(self, messages: list[Message], track: Track) -> None:
        """Decode a fetched batch, hand rows to the batchers, queue rejects for the dead letter. Hot path."""
        read: Counter[str] = Counter()
        skipped: Counter[str] = Counter()
        unknown: Counter[tuple[str, str]] = Counter()
        truncated: Counter[str] = Counter()
        unmapped: Counter[str] = Counter()
        converted: Counter[tuple[str, str, str]] = Counter()
        topics: Counter[str] = Counter()
        rejected: list[Rejected] = []
        rejected_tickets: list[Ticket] = []
        decode, batchers = self.decoder.decode, self.batchers
        submit = self.delivery.submit
        for message in messages:
            stamp = message.timestamp_ms
            ticket = track(message.position, stamp / 1000 if stamp else None)
            result = decode(message.value, SourceRef(message.position, 0))
            ticket.expect(len(result.rows) + len(result.rejected))
            for row in result.rows:
                if (full := batchers[row.destination].add(row.body, ticket, row.window)) is not None:
                    submit(full)
            read.update(map(_table_of, result.rows))
            ticket.seal()
            topics[message.position.topic] += 1
            if result.rejected:
                rejected.extend(result.rejected)
                rejected_tickets.extend([ticket] * len(result.rejected))
            if result.skipped:
                skipped.update(result.skipped)
                read[UNKNOWN_TABLE] += result.skipped.total()
            if result.unknown_columns:
                unknown.update(result.unknown_columns)
            if result.truncated_fields:
                truncated.update(result.truncated_fields)
            if result.unmapped_bytes:
                unmapped.update(result.unmapped_bytes)
            if result.converted:
                converted.update(result.converted)
        self.dead_letter.put(rejected, rejected_tickets)
        self._count(topics, read, skipped, rejected, unknown, truncated, unmapped, converted)

    def process_rows(self, table: str, rows: list[bytes], ticket: Ticket) -> None:
        """Shaped rows that skip decoding (rows the sink dead-lettered, replayed); `ticket` must be unsealed.

        Each goes to its table's destination for the class in its `RetentionTag`, or, for a class no longer
        configured, where a row matching no rule's predicate goes. A row for an Auxiliary destination goes into
        the window of its `TimeGenerated`. Rows of a table not ingested (`schemas.tables`) are skipped and counted,
        as its records are.
        """
        route = self.routes.get(table)
        if route is None:
            self.metrics.events_read.labels(UNKNOWN_TABLE).inc(len(rows))
            self.metrics.events_skipped.labels(table).inc(len(rows))
            return
        ticket.expect(len(rows))
        by_tag = {d.retention_tag: d for d in route.destinations}
        for row in rows:
            try:
                tagged = _TAGGED(row)
            except (msgspec.DecodeError, RecursionError):  # not a row: the service refuses it, back to the dead letter
                tagged = _Tagged()
            tag = tagged.RetentionTag
            destination = by_tag.get(tag, route.fallback) if isinstance(tag, str) else route.fallback
            window = 0
            if destination.auxiliary:
                generated = tagged.TimeGenerated
                window = auxiliary_time(generated)[1] if isinstance(generated, str) else UNKNOWN_WINDOW
            self.delivery.submit(self.batchers[destination].add(row, ticket, window))
        self.metrics.events_read.labels(table).inc(len(rows))

    def dead_letter_again(self, rejected: Rejected, ticket: Ticket) -> None:
        """A record that cannot be decoded again (only a bounded copy of it is left) goes back to the dead letter."""
        ticket.expect(1)
        self.dead_letter.put([rejected], [ticket])
        table = rejected.table or UNKNOWN_TABLE
        self.metrics.events_read.labels(table).inc()
        self.metrics.events_dead_lettered.labels(table, rejected.reason).inc()

    def _count(
        self,
        topics: Counter[str],
        read: Counter[str],
        skipped: Counter[str],
        rejected: list[Rejected],
        unknown: Counter[tuple[str, str]],
        truncated: Counter[str],
        unmapped: Counter[str],
        converted: Counter[tuple[str, str, str]],
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
        for table, n in unmapped.items():
            m.unmapped_column_bytes.labels(table).inc(n)
        for (table, column, rule), n in converted.items():
            m.values_converted.labels(table, column, rule).inc(n)
        m.inflight_bytes.set(self.inflight_bytes)


async def cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
