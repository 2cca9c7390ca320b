"""Kafka source (plain Kafka or Event Hubs' Kafka endpoint) on aiokafka, automatic commits off.

`fetch()` returns the next messages with their positions; `commit()` commits exactly the offsets it is given
(the OffsetTracker decides them). Partition revocation calls back into the application, which flushes and
commits the partition's rows before the partition is released. `start()` waits for the brokers while it cannot
bootstrap (`connect.reachability`); once started, aiokafka reconnects by itself.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError

from ingestor.commit import Partition, Position
from ingestor.config import KafkaSourceConfig
from ingestor.connect.identity import SourceCredentials
from ingestor.connect.kafka import EntraTokenProvider, brokers, connection_settings, start_client
from ingestor.connect.reachability import Unreachable
from ingestor.models import Message
from ingestor.sources.base import PartitionCallback

log = logging.getLogger(__name__)

# Microsoft's recommended consumer settings for the Event Hubs Kafka endpoint
# (learn.microsoft.com/azure/event-hubs/apache-kafka-configurations).
EVENT_HUBS_CONSUMER_SETTINGS: dict[str, Any] = {"heartbeat_interval_ms": 3_000, "max_poll_interval_ms": 300_000}


def consumer_settings(config: KafkaSourceConfig, credentials: SourceCredentials | None = None) -> dict[str, Any]:
    """aiokafka consumer keyword arguments for the configuration (no secrets logged from here)."""
    settings: dict[str, Any] = {
        **connection_settings(config, credentials),
        "group_id": config.group_id,
        "client_id": f"defender-ingestor-{config.group_id}",
        "enable_auto_commit": False,
        "auto_offset_reset": config.auto_offset_reset,
        "fetch_max_bytes": config.fetch_max_bytes,
        "max_partition_fetch_bytes": config.max_partition_fetch_bytes,
        "max_poll_records": config.max_poll_records,
        "check_crcs": config.check_crcs,
        "session_timeout_ms": int(config.session_timeout_secs * 1000),
        "request_timeout_ms": int(config.request_timeout_secs * 1000),
    }
    if config.is_event_hubs:
        settings.update(EVENT_HUBS_CONSUMER_SETTINGS)
    return settings


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._source.on_revoked({Partition(tp.topic, tp.partition) for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._source.on_assigned({Partition(tp.topic, tp.partition) for tp in assigned})


class KafkaSource:
    """A `sources.base.Source` over aiokafka: start/stop, fetch, commit, pause/resume, assignment, highwater."""

    def __init__(
        self,
        config: KafkaSourceConfig,
        *,
        on_revoked: PartitionCallback,
        on_assigned: PartitionCallback,
        credentials: SourceCredentials | None = None,
        unreachable: Unreachable | None = None,
    ) -> None:
        """`credentials`: where an Entra ID credential reports that it gives no token; `unreachable`: where the
        start reports brokers it cannot reach yet (both: `/readyz`, a gauge)."""
        self._config = config
        self._unreachable = unreachable or Unreachable()
        self._settings = consumer_settings(config, credentials)
        self._consumer = AIOKafkaConsumer(**self._settings)
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned
        self._paused: set[Partition] = set()

    async def start(self) -> None:
        """Bootstrap (waiting, with back-off, while no broker can be reached), join the group, get partitions."""
        self._consumer.subscribe(self._config.topics, listener=_Rebalance(self))
        await self._unreachable.until_reached(
            brokers(self._config),
            lambda: start_client(self._consumer),
            transient=lambda error: isinstance(error, KafkaConnectionError),
        )

    async def stop(self) -> None:
        await self._consumer.stop()
        provider = self._settings.get("sasl_oauth_token_provider")
        if isinstance(provider, EntraTokenProvider):
            await provider.close()

    async def on_revoked(self, partitions: set[Partition]) -> None:
        self._paused -= partitions
        await self._on_revoked(partitions)

    async def on_assigned(self, partitions: set[Partition]) -> None:
        await self._on_assigned(partitions)

    def assignment(self) -> set[Partition]:
        return {Partition(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    async def fetch(self, timeout_secs: float) -> list[Message]:
        """Hot path: one call per poll; messages of each partition in offset order."""
        batches = await self._consumer.getmany(timeout_ms=int(timeout_secs * 1000))
        out: list[Message] = []
        for tp, records in batches.items():
            topic, partition = tp.topic, tp.partition
            out.extend(Message(r.value or b"", Position(topic, partition, r.offset), r.timestamp) for r in records)
        return out

    async def commit(self, offsets: dict[Partition, int]) -> bool:
        """Commit offsets (next offset to read); False if the group rebalanced meanwhile."""
        try:
            await self._consumer.commit({TopicPartition(k.topic, k.partition): v for k, v in offsets.items()})
        except KafkaError as exc:
            log.warning("offset commit failed; it will be retried", extra={"error": repr(exc)})
            return False
        return True

    def pause(self, partitions: set[Partition]) -> None:
        fresh = partitions - self._paused
        if fresh:
            self._consumer.pause(*(TopicPartition(k.topic, k.partition) for k in fresh))
            self._paused |= fresh

    def resume(self) -> None:
        if self._paused:
            self._consumer.resume(*(TopicPartition(k.topic, k.partition) for k in self._paused))
            self._paused.clear()

    @property
    def paused(self) -> set[Partition]:
        return set(self._paused)

    def highwater(self, partition: Partition) -> int | None:
        value = self._consumer.highwater(TopicPartition(partition.topic, partition.partition))
        return int(value) if value is not None else None
