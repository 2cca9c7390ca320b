"""One contract for both sources, run against each: the Kafka source on the real broker, and the Event Hubs (AMQP)
source at the SDK boundary (`eventhubs_sdk.ReplayClient` with the real blob checkpoint store on Azurite). The
ingestor runs in-process against the HTTPS emulator: routing, validation and dead letters, positions committed
only after their rows landed, a partition's rows landed before it goes, graceful shutdown, and the same metrics.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from azure.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore
from azure.storage.blob.aio import BlobServiceClient
from eventhubs_sdk import ReplayClient
from realparts import committed_offsets, emulator_sink, produce, unique_names

from ingestor.config import parse_config
from ingestor.metrics import Metrics
from ingestor.run.app import Ingestor
from ingestor.sinks.dead_letter_file import read_dead_letters
from ingestor.sources.eventhubs import EventHubsSource
from ingestor.sources.factory import make_source
from ingestor_tools.emulator import Emulator
from ingestor_tools.generate import TrafficGenerator

PARTITIONS = 4
NAMESPACE, HUB, GROUP = "contract.servicebus.windows.net", "defender", "$Default"


class KafkaRig:
    """The Kafka source on the real broker."""

    kind = "kafka"

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.topic, self.group = unique_names()
        self._others: list[AIOKafkaConsumer] = []

    def source(self) -> dict[str, Any]:
        return {"bootstrap_servers": [self.bootstrap], "topics": [self.topic], "group_id": self.group,
                "session_timeout_secs": 6}  # fmt: skip

    def factory(self) -> Callable[..., Any]:
        return make_source

    async def feed(self, messages: list[bytes]) -> dict[int, int]:
        return await asyncio.to_thread(produce, self.bootstrap, self.topic, messages, partitions=PARTITIONS)

    async def committed(self) -> dict[int, int]:
        offsets = await asyncio.to_thread(committed_offsets, self.bootstrap, self.topic, self.group)
        return {p: o for p, o in offsets.items() if o}

    async def lose_partitions(self) -> None:
        """Another member joins the group and takes partitions away: it holds some once the rebalance is done."""
        other = AIOKafkaConsumer(
            self.topic, bootstrap_servers=self.bootstrap, group_id=self.group, enable_auto_commit=False,
            session_timeout_ms=6000, auto_offset_reset="latest",
        )  # fmt: skip
        await other.start()
        self._others.append(other)

        async def holds_partitions() -> bool:
            return bool(other.assignment())

        await until(holds_partitions, "the other member holding partitions", within_secs=15)

    async def close(self) -> None:
        for other in self._others:
            await other.stop()


class EventHubsRig:
    """The AMQP source, with the SDK's side replayed and checkpoints in Azurite."""

    kind = "eventhubs"

    def __init__(self, azurite: Any) -> None:
        self.azurite = azurite
        self.container = f"contract-{unique_names()[0].rpartition('-')[2]}"
        self.store: Any = None
        self.client: ReplayClient | None = None
        self._partitions: dict[int, list[bytes]] = {}

    def source(self) -> dict[str, Any]:
        return {
            "type": "eventhubs",
            "fully_qualified_namespace": NAMESPACE,
            "eventhub_name": HUB,
            "checkpoint_store": {"connection_string": self.azurite.connection_string, "container": self.container},
        }

    async def open(self) -> None:
        async with BlobServiceClient.from_connection_string(self.azurite.connection_string) as service:
            await service.create_container(self.container)
        self.store = BlobCheckpointStore.from_connection_string(self.azurite.connection_string, self.container)

    def factory(self) -> Callable[..., Any]:
        def build(config: Any, **callbacks: Any) -> EventHubsSource:
            self.client = ReplayClient(NAMESPACE, HUB, GROUP, self.store, self._partitions)
            return EventHubsSource(config, store=self.store, client=self.client, **callbacks)  # type: ignore[arg-type]

        return build

    async def feed(self, messages: list[bytes]) -> dict[int, int]:
        """Round-robin over the partitions, as the Kafka rig's producer does."""
        for index, message in enumerate(messages):
            self._partitions.setdefault(index % PARTITIONS, []).append(message)
        return {p: len(bodies) for p, bodies in sorted(self._partitions.items())}

    async def committed(self) -> dict[int, int]:
        listed = await self.store.list_checkpoints(NAMESPACE, HUB, GROUP)
        return {int(c["partition_id"]): c["sequence_number"] + 1 for c in listed}

    async def lose_partitions(self) -> None:
        assert self.client is not None
        await self.client.lose(0)

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()


Rig = KafkaRig | EventHubsRig


@pytest.fixture(
    params=[pytest.param("kafka", marks=pytest.mark.broker), pytest.param("eventhubs", marks=pytest.mark.azurite)]
)
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    made: Rig
    if request.param == "kafka":
        made = KafkaRig(request.getfixturevalue("kafka_bootstrap"))
    else:
        made = EventHubsRig(request.getfixturevalue("azurite"))
        await made.open()
    try:
        yield made
    finally:
        await made.close()


class Running:
    """An in-process ingestor on `rig`'s source writing to `emulator`."""

    def __init__(self, rig: Rig, emulator: Emulator, tmp: Path, **top: Any) -> None:
        self.config = parse_config(
            {
                "source": rig.source(),
                "sink": emulator_sink(emulator, linger_secs=0.3, auth_retry_secs=0.3, max_backoff_secs=0.5),
                "dead_letter": {"path": str(tmp / "dead-letter")},
                "metrics": {"host": "127.0.0.1", "port": 0},
                **top,
            }
        )
        self.dead_letter_dir = tmp / "dead-letter"
        self.metrics = Metrics()
        self.ingestor = Ingestor(self.config, metrics=self.metrics, source_factory=rig.factory())
        self.task: asyncio.Task[bool] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.ingestor.run())
        return self

    async def stop(self) -> bool:
        assert self.task is not None
        self.ingestor.stop()
        return await asyncio.wait_for(self.task, 60)

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None and not self.task.done():
            await self.stop()

    def total(self, name: str) -> float:
        return self.metrics.total(name)


async def until(predicate: Callable[[], Awaitable[bool]], what: str, within_secs: float = 90) -> None:
    deadline = time.monotonic() + within_secs
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def until_committed(rig: Rig, per_partition: dict[int, int], what: str = "every position committed") -> None:
    async def committed_all() -> bool:
        return await rig.committed() == per_partition

    await until(committed_all, what)


async def until_total(running: Running, name: str, count: float, *, at_least: bool = False) -> None:
    async def reached() -> bool:
        total = running.total(name)
        return total >= count if at_least else total == count

    await until(reached, f"{name} at {count}")


def traffic(seed: int, records: int) -> tuple[list[bytes], Any]:
    generator = TrafficGenerator(seed=seed, devices=30, invalid_rate=0.02)
    messages = list(generator.messages(records=records))
    return messages, generator.manifest


async def test_every_record_lands_or_is_dead_lettered_then_its_position_commits(
    rig: Rig, emulator: Emulator, tmp_path: Path
) -> None:
    messages, manifest = traffic(seed=5, records=1_500)
    per_partition = await rig.feed(messages)
    async with Running(rig, emulator, tmp_path) as running:
        await until_committed(rig, per_partition)
        assert await running.stop()
    landed = Counter(table.removesuffix("_CL") for table in _landed_tables(emulator))
    assert dict(landed) == {t: n for t, n in manifest.valid.items() if n}
    assert len(list(read_dead_letters(running.dead_letter_dir))) == manifest.dead_letter_records
    assert running.total("ingestor_read_events_total") == manifest.records
    assert running.total("ingestor_skipped_events_total") == manifest.skipped


def _landed_tables(emulator: Emulator) -> list[str]:
    import sqlite3

    with sqlite3.connect(emulator.db_path) as db:
        return [table for (table,) in db.execute("SELECT table_name FROM rows")]


async def test_nothing_commits_while_rows_cannot_land(rig: Rig, emulator: Emulator, tmp_path: Path) -> None:
    messages, manifest = traffic(seed=6, records=400)
    per_partition = await rig.feed(messages)
    emulator.update_faults({"fail_5xx_rate": 1.0})
    async with Running(rig, emulator, tmp_path) as running:
        await until_total(running, "ingestor_read_events_total", manifest.records)
        # Uploads keep failing for several commit intervals (1 s each; backoff is capped at 0.5 s).
        await until_total(running, "ingestor_retries_total", 8, at_least=True)
        assert await rig.committed() == {}
        emulator.update_faults({"fail_5xx_rate": 0.0})
        await until_committed(rig, per_partition, "every position committed once the sink recovers")
    assert sum(1 for _ in _landed_tables(emulator)) == sum(manifest.valid.values())


async def test_a_lost_partition_is_landed_and_committed_before_it_goes(
    rig: Rig, emulator: Emulator, tmp_path: Path
) -> None:
    messages, _ = traffic(seed=7, records=800)
    per_partition = await rig.feed(messages)
    async with Running(rig, emulator, tmp_path) as running:
        await until_total(running, "ingestor_read_messages_total", len(messages))
        before = running.ingestor.source.assignment()
        await rig.lose_partitions()

        async def lost() -> bool:
            return running.ingestor.source.assignment() < before

        await until(lost, "a partition taken away")
        gone = {key.partition for key in before - running.ingestor.source.assignment()}
        committed = await rig.committed()
        # Everything read from a partition before it went was landed and committed at that moment.
        assert {p: committed.get(p) for p in gone} == {p: per_partition[p] for p in gone}


async def test_graceful_shutdown_lands_and_commits_everything_read(
    rig: Rig, emulator: Emulator, tmp_path: Path
) -> None:
    messages, _ = traffic(seed=8, records=600)
    per_partition = await rig.feed(messages)
    emulator.update_faults({"latency_ms": 150})  # uploads are in flight when the stop comes
    async with Running(rig, emulator, tmp_path) as running:
        await until_total(running, "ingestor_read_messages_total", len(messages))
        assert await running.stop()  # drained within the grace period
    assert await rig.committed() == per_partition


async def test_shutdown_stays_within_the_grace_period_however_the_drain_ends(
    rig: Rig, emulator: Emulator, tmp_path: Path
) -> None:
    grace = 3.0
    messages, _ = traffic(seed=10, records=300)
    await rig.feed(messages)
    emulator.update_faults({"fail_5xx_rate": 1.0})  # nothing can land: every drain runs out of time
    async with Running(rig, emulator, tmp_path, shutdown_grace_secs=grace) as running:
        await until_total(running, "ingestor_read_messages_total", len(messages))
        started = time.monotonic()
        assert not await running.stop()  # not drained
        elapsed = time.monotonic() - started
    # One grace period, not one for the stop and another for the partitions the source closes after it.
    assert grace <= elapsed < grace + 1.5, elapsed
    assert await rig.committed() == {}


async def test_both_sources_report_the_same_metrics(
    kafka_bootstrap: str, azurite: Any, emulator: Emulator, tmp_path: Path
) -> None:
    seen = {}
    for made in (KafkaRig(kafka_bootstrap), EventHubsRig(azurite)):
        if isinstance(made, EventHubsRig):
            await made.open()
        messages, _ = traffic(seed=9, records=300)
        per_partition = await made.feed(messages)
        async with Running(made, emulator, tmp_path / made.kind) as running:
            await until_committed(made, per_partition, f"{made.kind}: every position committed")
            running.ingestor._observe_partitions()
            seen[made.kind] = {
                (sample.name, tuple(sorted(sample.labels)))
                for metric in running.metrics.registry.collect()
                for sample in metric.samples
                if sample.value or metric.type == "gauge"
            }
        await made.close()
    assert seen["kafka"] == seen["eventhubs"]
    names = {name for name, _ in seen["kafka"]}
    assert {"ingestor_consumer_lag_messages", "ingestor_committed_offset", "ingestor_accepted_events_total"} <= names
