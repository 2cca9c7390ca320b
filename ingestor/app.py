"""`ingestor run`: a source (Kafka, or Event Hubs over AMQP) feeding the Flow, with commits, health and orderly
shutdown.

Shutdown (SIGTERM, `stop()`): stop fetching, flush open batches, wait for uploads and dead letters to settle
(bounded by `shutdown_grace_secs`), commit, close. Partition revocation does the same before the group takes the
partitions away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from ingestor.commit import OffsetTracker
from ingestor.config import Config, EventHubsSourceConfig, KafkaSourceConfig
from ingestor.flow import Flow, cancel
from ingestor.health import HealthServer
from ingestor.metrics import Metrics
from ingestor.models import Partition
from ingestor.sources.eventhubs import EventHubsSource
from ingestor.sources.kafka import KafkaSource, PartitionCallback

log = logging.getLogger(__name__)
FETCH_TIMEOUT_SECS = 0.2
PROCESS_SLICE = 16  # messages decoded between two yields to the event loop


Source = KafkaSource | EventHubsSource
SourceFactory = Callable[..., Source]


def make_source(
    config: KafkaSourceConfig | EventHubsSourceConfig, *, on_revoked: PartitionCallback, on_assigned: PartitionCallback
) -> Source:
    """The source for `config.type`, calling back before partitions go and after they come."""
    if isinstance(config, KafkaSourceConfig):
        return KafkaSource(config, on_revoked=on_revoked, on_assigned=on_assigned)
    return EventHubsSource(config, on_revoked=on_revoked, on_assigned=on_assigned)


class Ingestor:
    def __init__(
        self, config: Config, *, metrics: Metrics | None = None, source_factory: SourceFactory = make_source
    ) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.tracker = OffsetTracker()
        self.flow = Flow(config, self.metrics)
        self.source = source_factory(config.source, on_revoked=self._revoked, on_assigned=self._assigned)
        self._stopping = asyncio.Event()
        self._to_commit: dict[Partition, int] = {}
        self._paused_for = ""

    def stop(self) -> None:
        """Begin a graceful shutdown (safe to call from a signal handler)."""
        self._stopping.set()

    async def run(self) -> bool:
        """Run until stop(); True when every row read was settled and committed before exit."""
        config = self.config
        health = HealthServer(self.metrics, self.readiness, host=config.metrics.host, port=config.metrics.port)
        drained = False
        async with self.flow:
            await health.start()
            log.info("starting", extra={"metrics_port": health.port, "topics": config.source.topics})
            try:
                await self.source.start()
                flow = asyncio.create_task(self.flow.run())
                committer = asyncio.create_task(self._commit_every(config.source.commit_interval_secs))
                try:
                    await self._consume()
                    drained = await self.flow.drain(config.shutdown_grace_secs)
                    await self._commit()
                finally:
                    await cancel(committer)
                    await cancel(flow)
            finally:
                with contextlib.suppress(Exception):
                    await self.source.stop()
                await health.stop()
        log.info("stopped", extra={"drained": drained, "open_messages": self.tracker.open_messages()})
        return drained

    async def _consume(self) -> None:
        source, flow, track = self.source, self.flow, self.tracker.track
        while not self._stopping.is_set():
            reason = flow.backpressure()
            if reason != self._paused_for:
                self._pause(reason)
            messages = await source.fetch(FETCH_TIMEOUT_SECS)
            for start in range(0, len(messages), PROCESS_SLICE):
                flow.process(messages[start : start + PROCESS_SLICE], track)
                # Yield between slices: the Kafka fetcher sends its next request while this batch is decoded,
                # instead of after (measured: +13% end to end).
                await asyncio.sleep(0)

    def _pause(self, reason: str) -> None:
        if reason:
            log.info("pausing partitions", extra={"reason": reason, "inflight_bytes": self.flow.inflight_bytes})
            self.source.pause(self.source.assignment())
        else:
            log.info("resuming partitions", extra={"inflight_bytes": self.flow.inflight_bytes})
            self.source.resume()
        self._paused_for = reason

    # -- commits and partitions ---------------------------------------------------------------------------

    async def _commit_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._commit()

    async def _commit(self) -> None:
        """Commit what became committable (and what a failed commit left over); update partition gauges."""
        self._to_commit.update(self.tracker.committable())
        if self._to_commit:
            offsets = dict(self._to_commit)
            if await self.source.commit(offsets):
                self.tracker.committed(offsets)
                for key, offset in offsets.items():
                    if self._to_commit.get(key) == offset:
                        del self._to_commit[key]
                    self.metrics.committed_offset.labels(key.topic, str(key.partition)).set(offset)
                self.metrics.commits.labels("ok").inc()
            else:
                self.metrics.commits.labels("failed").inc()
        self._observe_partitions()

    def _observe_partitions(self) -> None:
        paused = self.source.paused
        for key in self.source.assignment():
            labels = (key.topic, str(key.partition))
            self.metrics.partition_paused.labels(*labels).set(1 if key in paused else 0)
            highwater, committed = self.source.highwater(key), self.tracker.committed_offset(key)
            if highwater is not None:
                self.metrics.consumer_lag.labels(*labels).set(max(0, highwater - (committed or 0)))

    async def _revoked(self, partitions: set[Partition]) -> None:
        """Before the group takes partitions away: land their rows and commit them."""
        if partitions:
            await self.flow.drain(self.config.shutdown_grace_secs)
            await self._commit()
        self.tracker.forget(partitions)
        for key in partitions:
            self._to_commit.pop(key, None)
            for gauge in (self.metrics.consumer_lag, self.metrics.partition_paused, self.metrics.committed_offset):
                with contextlib.suppress(KeyError):
                    gauge.remove(key.topic, str(key.partition))
        if partitions:
            log.info("partitions revoked", extra={"partitions": _names(partitions)})

    async def _assigned(self, partitions: set[Partition]) -> None:
        if self._paused_for:
            self.source.pause(partitions)  # newly assigned partitions join the pause
        log.info("partitions assigned", extra={"partitions": _names(partitions)})

    def readiness(self) -> tuple[bool, str]:
        if not self.source.assignment():
            return False, "no partitions assigned (more replicas than partitions, or the group is rebalancing)"
        delivery = self.flow.delivery
        if not delivery.health.authorized:
            return False, f"Logs Ingestion API refuses requests ({delivery.health.problem})"
        if self.flow.dead_letter.failing:
            return False, f"dead letter cannot be written ({self.flow.dead_letter.failing})"
        return True, ""


def _names(partitions: set[Partition]) -> list[str]:
    return sorted(f"{p.topic}/{p.partition}" for p in partitions)
