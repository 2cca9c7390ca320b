"""Delivery under faults on real parts: SIGKILL, graceful stops, group changes, network faults, emulator fault
storms, dead-letter failures. Each test reconciles what landed against what was produced, by the key
`ReportId` + `DeviceName` + `Timestamp`: every produced row lands at least once and nothing else lands.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faultproxy import FaultProxy
from realparts import (
    BackgroundProducer,
    BrokerProcess,
    EmulatorProcess,
    IngestorProcess,
    committed_offsets,
    end_offsets,
    free_port,
    ingestor_config,
    produce,
    unique_names,
    wait_for,
)

from ingestor.sinks.dead_letter_file import read_dead_letters
from ingestor.tables import load_schemas
from ingestor_tools.generate import TrafficGenerator

pytestmark = [pytest.mark.broker, pytest.mark.emulator, pytest.mark.process]

TABLES = {f"{t}_CL" for t in load_schemas()}
PARTITIONS = 4
Key = tuple[Any, ...]


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    emu = EmulatorProcess(tmp_path / "emulator")
    yield emu
    emu.stop()


def produced_keys(messages: list[bytes]) -> Counter[Key]:
    keys: Counter[Key] = Counter()
    for message in messages:
        for record in json.loads(message)["records"]:
            p = record["properties"]
            keys[(p["ReportId"], p["DeviceName"], p["Timestamp"])] += 1
    return keys


def landed_keys(emulator: EmulatorProcess) -> Counter[Key]:
    rows = emulator.query(
        "SELECT json_extract(row, '$.ReportId'), json_extract(row, '$.DeviceName'), json_extract(row, '$.Timestamp')"
        " FROM rows"
    )
    return Counter(tuple(r) for r in rows)


def reconcile(produced: Counter[Key], landed: Counter[Key]) -> float:
    """Assert at-least-once and nothing foreign; returns the duplicate ratio (extra rows / produced rows)."""
    missing = produced - landed
    assert not missing, f"{sum(missing.values())} produced rows never landed, e.g. {next(iter(missing))}"
    foreign = set(landed) - set(produced)
    assert not foreign, f"{len(foreign)} landed rows were never produced"
    return (sum(landed.values()) - sum(produced.values())) / sum(produced.values())


def wait_committed(bootstrap: str, topic: str, group: str, per_partition: dict[int, int], timeout: float = 120) -> None:
    """Poll until every message of `per_partition` is committed, for as long as commits keep moving: fail when
    nothing new is committed for `timeout` seconds (a catch-up on a busy machine may take longer than that, but
    it never stands still)."""
    progress: list[int] = []

    def moved_or_done() -> bool:
        committed = committed_offsets(bootstrap, topic, group)
        if committed == per_partition:
            return True
        total = sum(o or 0 for o in committed.values())
        moved = bool(progress) and total > progress[-1]
        progress.append(total)
        if moved:
            raise _Moved
        return False

    while True:
        try:
            wait_for(moved_or_done, timeout=timeout, interval=0.5, what="a commit: every message committed")
            return
        except _Moved:
            continue


class _Moved(Exception):
    """Commits moved while `wait_committed` waited: its wait starts again."""


# Each of the 20 lives waits about 11 s for its partitions (the group drops the killed member only after its
# 6 s session timeout, and Tansu delays a join by half of it); with the final catch-up the test takes 5-6 min.
@pytest.mark.timeout(600)
def test_sigkill_at_random_moments_under_load_loses_no_row(
    tmp_path: Path, kafka_bootstrap: str, emulator: EmulatorProcess
) -> None:
    topic, group = unique_names()
    produce(kafka_bootstrap, topic, [], partitions=PARTITIONS)
    producer = BackgroundProducer(kafka_bootstrap, topic, PARTITIONS, seed=21, rate_records=3000)
    config = ingestor_config(tmp_path, kafka_bootstrap, emulator, topic=topic, group=group)
    rng = random.Random(20261123)
    kills = 0
    try:
        for life in range(20):
            ingestor = IngestorProcess(tmp_path, config, name=f"life-{life}")
            wait_for(lambda: ingestor.total("ingestor_read_events_total") > 0, timeout=60, what="reading")  # noqa: B023
            time.sleep(rng.uniform(0.0, 1.5))  # the random moment of the kill
            ingestor.kill()
            kills += 1
    finally:
        sent = producer.stop()
    final = IngestorProcess(tmp_path, config, name="final")
    try:
        wait_committed(kafka_bootstrap, topic, group, producer.per_partition)
    finally:
        assert final.terminate() == 0
    ratio = reconcile(produced_keys(sent), landed_keys(emulator))
    print(f"\nSIGKILL x{kills} under load: {len(sent)} messages, duplicate ratio {ratio:.3f}")
    assert kills == 20 and ratio < 1.0


def test_sigterm_under_load_then_restart_gives_zero_duplicates(
    tmp_path: Path, kafka_bootstrap: str, emulator: EmulatorProcess
) -> None:
    topic, group = unique_names()
    generator = TrafficGenerator(seed=31, devices=100)
    messages = list(generator.messages(records=60_000))
    per_partition = produce(kafka_bootstrap, topic, messages, partitions=PARTITIONS)
    config = ingestor_config(tmp_path, kafka_bootstrap, emulator, topic=topic, group=group)
    first = IngestorProcess(tmp_path, config, name="first")
    wait_for(lambda: first.total("ingestor_read_events_total") >= 10_000, what="heavy load under way")
    assert first.terminate() == 0
    second = IngestorProcess(tmp_path, config, name="second")
    try:
        wait_committed(kafka_bootstrap, topic, group, per_partition)
    finally:
        assert second.terminate() == 0
    assert reconcile(produced_keys(messages), landed_keys(emulator)) == 0.0


def test_stopping_one_of_two_processes_hands_its_partitions_over(
    tmp_path: Path, kafka_bootstrap: str, emulator: EmulatorProcess
) -> None:
    topic, group = unique_names()
    generator = TrafficGenerator(seed=41, devices=100)
    first_half = list(generator.messages(records=20_000))
    second_half = list(generator.messages(records=20_000))
    first = produce(kafka_bootstrap, topic, first_half, partitions=PARTITIONS)
    a = IngestorProcess(
        tmp_path, ingestor_config(tmp_path, kafka_bootstrap, emulator, topic=topic, group=group), name="a"
    )
    b = IngestorProcess(
        tmp_path, ingestor_config(tmp_path, kafka_bootstrap, emulator, topic=topic, group=group), name="b"
    )
    try:

        def shared() -> bool:
            ma = {k for k in a.metrics() if k[0] == "ingestor_partition_paused"}
            mb = {k for k in b.metrics() if k[0] == "ingestor_partition_paused"}
            return len(ma) == len(mb) == PARTITIONS // 2

        wait_for(shared, what="the two processes share the partitions")
        assert a.terminate() == 0
        second = produce(kafka_bootstrap, topic, second_half, partitions=PARTITIONS)
        total = {p: first[p] + second[p] for p in first}
        wait_committed(kafka_bootstrap, topic, group, total)
    finally:
        assert b.terminate() == 0
        a.kill()
    assert reconcile(produced_keys(first_half + second_half), landed_keys(emulator)) == 0.0
    assert any(line["message"] == "partitions revoked" for line in b.log_lines())


def test_network_faults_to_broker_and_emulator_then_everything_lands(tmp_path: Path, emulator: EmulatorProcess) -> None:
    broker_port = free_port()
    kafka_proxy = FaultProxy("127.0.0.1", broker_port)
    broker = BrokerProcess(tmp_path, port=broker_port, advertised_port=kafka_proxy.port, own=True)
    sink_proxy = FaultProxy("127.0.0.1", int(emulator.endpoint.rsplit(":", 1)[1]))
    try:
        topic, group = unique_names()
        produce(broker.bootstrap, topic, [], partitions=PARTITIONS)
        config = ingestor_config(
            tmp_path, broker.bootstrap, emulator, topic=topic, group=group,
            sink__endpoint=f"https://127.0.0.1:{sink_proxy.port}", sink__request_timeout_secs=3,
            source__request_timeout_secs=21,
        )  # fmt: skip
        ingestor = IngestorProcess(tmp_path, config)
        producer = BackgroundProducer(broker.bootstrap, topic, PARTITIONS, seed=51, rate_records=2000)
        try:
            wait_for(lambda: ingestor.total("ingestor_accepted_events_total") > 0, what="rows landing")
            for proxy in (sink_proxy, kafka_proxy):
                before = proxy.connections
                proxy.set_mode("slow")
                time.sleep(1.5)  # a slow link for a while, under a steady stream
                proxy.reset_all()
                proxy.set_mode("blackhole")
                time.sleep(2.5)  # a black hole for a while
                proxy.set_mode("pass")
                proxy.reset_all()
                read = ingestor.total("ingestor_read_events_total")
                wait_for(lambda: ingestor.total("ingestor_read_events_total") > read, what="reading again")  # noqa: B023
                assert proxy.connections > before, "clients must have reconnected after the resets"
            sent = producer.stop()
            # A produce retried after a reset may be written twice, so wait for the broker's end offsets rather
            # than for the count of acknowledged sends.
            ends = end_offsets(broker.bootstrap, topic)
            assert all(ends[p] >= n for p, n in producer.per_partition.items())
            wait_for(
                lambda: all((committed_offsets(broker.bootstrap, topic, group)[p] or 0) >= n for p, n in ends.items()),
                timeout=180,
                interval=0.5,
                what="every message committed",
            )
            retries = ingestor.total("ingestor_retries_total", reason="transient")
        finally:
            producer.stop()
            assert ingestor.terminate() == 0
        assert retries > 0, "the sink faults must have been felt"
        assert reconcile(produced_keys(sent), landed_keys(emulator)) >= 0.0
    finally:
        sink_proxy.close()
        broker.stop()
        kafka_proxy.close()


def test_emulator_fault_storm_loses_no_row(tmp_path: Path, kafka_bootstrap: str) -> None:
    emulator = EmulatorProcess(
        tmp_path / "emulator", "--fail-429-rate", "0.3", "--retry-after-secs", "1", "--fail-5xx-rate", "0.2",
        "--drop-connection-rate", "0.1", "--latency-ms", "50", "--seed", "3",
    )  # fmt: skip
    try:
        topic, group = unique_names()
        generator = TrafficGenerator(seed=61, devices=50)
        messages = list(generator.messages(records=20_000))
        per_partition = produce(kafka_bootstrap, topic, messages, partitions=PARTITIONS)
        ingestor = IngestorProcess(
            tmp_path, ingestor_config(tmp_path, kafka_bootstrap, emulator, topic=topic, group=group)
        )
        try:
            wait_committed(kafka_bootstrap, topic, group, per_partition, timeout=180)
            throttled = ingestor.total("ingestor_retries_total", reason="throttled")
            transient = ingestor.total("ingestor_retries_total", reason="transient")
            waited = ingestor.total("ingestor_retry_wait_seconds_total", reason="throttled")
        finally:
            assert ingestor.terminate() == 0
        stats = emulator.stats()["requests"]
        assert throttled == stats.get("429", 0) > 0 and waited == throttled  # Retry-After: 1 each time
        assert transient >= stats.get("503", 0) + stats.get("dropped", 0) > 0
        assert reconcile(produced_keys(messages), landed_keys(emulator)) >= 0.0
    finally:
        emulator.stop()


def test_dead_letter_failure_is_backpressure_then_nothing_is_lost(
    tmp_path: Path, kafka_bootstrap: str, emulator: EmulatorProcess
) -> None:
    topic, group = unique_names()
    generator = TrafficGenerator(seed=71, devices=20, invalid_rate=0.05)
    messages = list(generator.messages(records=3_000))
    manifest = generator.manifest
    per_partition = produce(kafka_bootstrap, topic, messages, partitions=PARTITIONS)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("the dead-letter path cannot be created under a file")
    config = ingestor_config(
        tmp_path, kafka_bootstrap, emulator, topic=topic, group=group,
        dead_letter__path=str(blocker / "dead-letter"), dead_letter__retry_secs=0.5,
    )  # fmt: skip
    ingestor = IngestorProcess(tmp_path, config)
    try:
        wait_for(lambda: ingestor.total("ingestor_dead_letter_write_errors_total") >= 2, what="failing writes")
        status, body = ingestor.get("/readyz")
        assert status == 503 and "dead letter cannot be written" in body
        assert committed_offsets(kafka_bootstrap, topic, group) != per_partition
        blocker.unlink()  # the operator frees the path
        wait_committed(kafka_bootstrap, topic, group, per_partition)
        assert ingestor.get("/readyz")[0] == 200
    finally:
        assert ingestor.terminate() == 0
    entries = list(read_dead_letters(blocker / "dead-letter"))
    assert len(entries) == manifest.dead_letter_records
    assert sum(emulator.counts().values()) == manifest.valid_records


def test_dead_letter_to_a_kafka_topic(tmp_path: Path, kafka_bootstrap: str, emulator: EmulatorProcess) -> None:
    topic, group = unique_names()
    dead_topic = f"{topic}-dead-letter"
    produce(kafka_bootstrap, dead_topic, [], partitions=1)
    generator = TrafficGenerator(seed=81, devices=20, invalid_rate=0.1)
    messages = list(generator.messages(records=2_000))
    per_partition = produce(kafka_bootstrap, topic, messages, partitions=PARTITIONS)
    config = ingestor_config(
        tmp_path, kafka_bootstrap, emulator, topic=topic, group=group,
        dead_letter={"type": "kafka", "topic": dead_topic},
    )  # fmt: skip
    ingestor = IngestorProcess(tmp_path, config)
    try:
        wait_committed(kafka_bootstrap, topic, group, per_partition)
    finally:
        assert ingestor.terminate() == 0
    entries = consume_all(kafka_bootstrap, dead_topic)
    assert len(entries) == generator.manifest.dead_letter_records
    assert all(e["topic"] == topic and e["reason"] and ("raw" in e or "raw_base64" in e) for e in entries)


def consume_all(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def read() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            out: list[dict[str, Any]] = []
            while True:
                batch = await consumer.getmany(tp, timeout_ms=2000)
                if not batch:
                    return out
                out.extend(json.loads(r.value) for r in batch[tp])
        finally:
            await consumer.stop()

    return asyncio.run(read())
