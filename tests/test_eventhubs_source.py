"""The Event Hubs (AMQP) source: its configuration, and its side of the SDK boundary driven with the SDK's public
types (`PartitionContext`, `EventData` carrying the annotations a received event has), since no Event Hubs
emulator exists; checkpoints go to the real `BlobCheckpointStore` on Azurite.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.eventhub import EventData
from azure.eventhub.aio import PartitionContext
from azure.eventhub.amqp import AmqpAnnotatedMessage
from azure.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore
from azure.storage.blob.aio import BlobServiceClient
from eventhubs_sdk import received
from realparts import ingestor_command

from ingestor.commit import Partition
from ingestor.config import ConfigError, EventHubsSourceConfig, parse_config
from ingestor.sources.eventhubs import EventHubsSource, event_bytes, namespace_host, starting_position

NAMESPACE = "contoso-defender.servicebus.windows.net"
HUB, GROUP = "defender", "$Default"
STORAGE = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c3RvcmFnZS1rZXk=;EndpointSuffix=core.windows.net"
CONNECTION = f"Endpoint=sb://{NAMESPACE}/;SharedAccessKeyName=listen;SharedAccessKey=c2VjcmV0LWtleQ==;EntityPath={HUB}"


def config_doc(source: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "source": {
            "type": "eventhubs",
            "eventhub_name": HUB,
            "checkpoint_store": {"account_url": "https://acct.blob.core.windows.net", "container": "checkpoints"},
            **source,
        },
        "sink": {"endpoint": "https://x.example", "rule_id": "dcr-" + "0" * 32},
        "dead_letter": {"path": "/tmp/dl"},
        **top,
    }


def problems(doc: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    return str(info.value)


def test_entra_and_connection_string_configurations() -> None:
    entra = parse_config(config_doc({"fully_qualified_namespace": NAMESPACE})).source
    assert isinstance(entra, EventHubsSourceConfig) and entra.consumer_group == "$Default"
    assert entra.topics == [HUB] and starting_position(entra) == "-1"
    keyed = parse_config(config_doc({"connection_string": CONNECTION, "starting_position": "latest"})).source
    assert isinstance(keyed, EventHubsSourceConfig)
    assert namespace_host(keyed) == NAMESPACE and starting_position(keyed) == "@latest"
    timed = parse_config(
        config_doc({"fully_qualified_namespace": NAMESPACE, "starting_position": "2026-11-30T00:00:00Z"})
    )
    assert starting_position(timed.source).year == 2026  # type: ignore[arg-type, union-attr]


@pytest.mark.parametrize(
    ("source", "top", "expected"),
    [
        ({}, {}, "source: set fully_qualified_namespace"),
        ({"fully_qualified_namespace": NAMESPACE, "connection_string": CONNECTION}, {}, "exactly one"),
        (
            {"fully_qualified_namespace": NAMESPACE, "checkpoint_store": {"container": "checkpoints"}},
            {},
            "set checkpoint_store.account_url",
        ),
        (
            {
                "fully_qualified_namespace": NAMESPACE,
                "checkpoint_store": {"account_url": "https://a", "container": "Bad_Name"},
            },
            {},
            "source.checkpoint_store.container",
        ),
        ({"fully_qualified_namespace": NAMESPACE, "max_batch_size": 0}, {}, "source.max_batch_size"),
        ({"fully_qualified_namespace": NAMESPACE, "ownership_expiration_secs": 20}, {}, "must exceed"),
        (
            {"fully_qualified_namespace": NAMESPACE},
            {"dead_letter": {"type": "kafka", "topic": "dl"}},
            "dead_letter.type kafka writes to the Kafka source's brokers",
        ),
        ({"fully_qualified_namespace": NAMESPACE, "topics": ["x"]}, {}, "source.topics: unknown key"),
    ],
)
def test_configuration_errors_name_the_key(source: dict[str, Any], top: dict[str, Any], expected: str) -> None:
    assert expected in problems(config_doc(source, **top))


def test_kafka_errors_keep_their_locations() -> None:
    doc = config_doc({})
    doc["source"] = {"bootstrap_servers": ["k:9092"], "group_id": "g"}
    assert "source.topics: required; set it in the config file or with INGESTOR_SOURCE__TOPICS" in problems(doc)


@pytest.mark.process
def test_check_config_masks_both_connection_strings(tmp_path: Path) -> None:
    doc = config_doc(
        {
            "connection_string": CONNECTION,
            "checkpoint_store": {"connection_string": STORAGE, "container": "checkpoints"},
        }
    )
    # check-config refuses the all-zero DCR id of config_doc (a placeholder): a real-looking destination
    doc["sink"] = {"endpoint": "https://dce-a1b2.westeurope-1.ingest.monitor.azure.com", "rule_id": "dcr-" + "ab" * 16}
    path = tmp_path / "ingestor.yaml"
    path.write_text(yaml.safe_dump(doc))
    done = subprocess.run(ingestor_command("check-config", "--config", str(path)), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "c2VjcmV0LWtleQ" not in done.stdout and "c3RvcmFnZS1rZXk" not in done.stdout
    printed = yaml.safe_load(done.stdout)["source"]
    assert printed["connection_string"] == printed["checkpoint_store"]["connection_string"] == "**********"


# -- the SDK boundary -------------------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.assigned: list[set[Partition]] = []
        self.revoked: list[set[Partition]] = []

    async def on_assigned(self, partitions: set[Partition]) -> None:
        self.assigned.append(partitions)

    async def on_revoked(self, partitions: set[Partition]) -> None:
        self.revoked.append(partitions)


def source_with(store: Any, recorder: Recorder) -> EventHubsSource:
    config = parse_config(config_doc({"connection_string": CONNECTION})).source
    assert isinstance(config, EventHubsSourceConfig)
    return EventHubsSource(
        config,
        on_revoked=recorder.on_revoked,
        on_assigned=recorder.on_assigned,
        store=store,
        client=object(),  # type: ignore[arg-type]
    )


def context(partition: str, store: Any = None) -> PartitionContext:
    return PartitionContext(NAMESPACE, HUB, GROUP, partition, checkpoint_store=store)


async def test_received_events_become_messages_in_sequence_order() -> None:
    recorder = Recorder()
    source = source_with(None, recorder)
    await source.on_partition_initialize(context("3"))
    assert source.assignment() == {Partition(HUB, 3)} and recorder.assigned == [{Partition(HUB, 3)}]
    bodies = [json.dumps({"records": [{"n": n}]}).encode() for n in range(3)]
    await source.on_event_batch(context("3"), [received(body, 40 + n) for n, body in enumerate(bodies)])
    await source.on_event_batch(context("3"), [])  # max_wait_time delivers empty batches
    messages = await source.fetch(0.1)
    assert [m.value for m in messages] == bodies
    assert [(m.position.topic, m.position.partition, m.position.offset) for m in messages] == [
        (HUB, 3, 40),
        (HUB, 3, 41),
        (HUB, 3, 42),
    ]
    assert messages[0].timestamp_ms == 1_764_547_200_000
    assert await source.fetch(0.05) == []


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"data_body": [b'{"rec', b'ords": []}']}, b'{"records": []}'),
        ({"value_body": b"\xff\xfe not UTF-8"}, b"\xff\xfe not UTF-8"),
        ({"value_body": "lone \udc80 surrogate"}, b"'lone \\udc80 surrogate'"),
        ({"value_body": {"a": 1}}, b"{'a': 1}"),
        ({"sequence_body": [[1, 2], [3]]}, b"[1, 2, 3]"),
    ],
)
def test_every_amqp_body_becomes_bytes_for_the_decoder(section: dict[str, Any], expected: bytes) -> None:
    event = EventData(b"")
    event._raw_amqp_message = AmqpAnnotatedMessage(**section)
    assert event_bytes(event) == expected


async def test_a_paused_partition_holds_the_receive_callback_until_resumed() -> None:
    source = source_with(None, Recorder())
    await source.on_partition_initialize(context("0"))
    source.pause(source.assignment())
    assert source.paused == {Partition(HUB, 0)}
    held = asyncio.create_task(source.on_event_batch(context("0"), [received(b"{}", 1)]))
    await asyncio.sleep(0.1)
    assert not held.done()  # the SDK's loop for this partition reads nothing more meanwhile
    source.resume()
    await asyncio.wait_for(held, 1)
    assert source.paused == set()


async def test_partitions_assigned_during_a_pause_join_it() -> None:
    source = source_with(None, Recorder())
    await source.on_partition_initialize(context("0"))
    source.pause(source.assignment())
    await source.on_partition_initialize(context("1"))
    assert source.paused == {Partition(HUB, 0), Partition(HUB, 1)}


# -- checkpoints in a real blob store (Azurite) ----------------------------------------------------------------


@pytest.fixture
async def store(azurite: Any) -> Any:
    container = f"checkpoints-{id(object()) % 100_000}"
    async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        await service.create_container(container)
    checkpoint_store = BlobCheckpointStore.from_connection_string(azurite.connection_string, container)
    async with checkpoint_store:
        yield checkpoint_store


async def checkpoints(store: Any) -> dict[str, tuple[int, str]]:
    listed = await store.list_checkpoints(NAMESPACE, HUB, GROUP)
    return {c["partition_id"]: (c["sequence_number"], c["offset"]) for c in listed}


async def test_commit_checkpoints_the_last_settled_event_of_each_partition(store: Any) -> None:
    source = source_with(store, Recorder())
    for partition in ("0", "1"):
        await source.on_partition_initialize(context(partition, store))
        await source.on_event_batch(context(partition, store), [received(b"{}", n) for n in range(10, 15)])
    # The tracker's convention: the next sequence number to read.
    assert await source.commit({Partition(HUB, 0): 13, Partition(HUB, 1): 15})
    assert await checkpoints(store) == {"0": (12, "2200"), "1": (14, "2400")}
    assert await source.commit({Partition(HUB, 0): 13})  # nothing new: no write, no error
    assert await source.commit({Partition(HUB, 0): 15})
    assert (await checkpoints(store))["0"] == (14, "2400")


class SlowFirstWrite:
    """The blob checkpoint store, with its first checkpoint write held back until a later one has landed."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.writes = 0
        self.later_landed = asyncio.Event()

    async def update_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.writes += 1
        if self.writes == 1:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.later_landed.wait(), 1.0)  # with one writer, no later write comes
        await self.store.update_checkpoint(checkpoint)
        if self.writes > 1:
            self.later_landed.set()


async def test_concurrent_commits_never_move_a_checkpoint_back(store: Any) -> None:
    slow = SlowFirstWrite(store)
    source = source_with(slow, Recorder())
    await source.on_partition_initialize(context("0", store))
    await source.on_event_batch(context("0", store), [received(b"{}", n) for n in range(10, 15)])
    periodic = asyncio.create_task(source.commit({Partition(HUB, 0): 13}))
    await asyncio.sleep(0)  # the periodic commit is writing when the revocation's commit comes
    assert await source.commit({Partition(HUB, 0): 15}) and await periodic
    assert (await checkpoints(store))["0"] == (14, "2400")


async def test_a_failed_checkpoint_is_retried_at_the_same_event(azurite: Any) -> None:
    missing = BlobCheckpointStore.from_connection_string(azurite.connection_string, "not-created-yet")
    async with missing:
        source = source_with(missing, Recorder())
        await source.on_partition_initialize(context("0", missing))
        await source.on_event_batch(context("0", missing), [received(b"{}", n) for n in range(3)])
        assert not await source.commit({Partition(HUB, 0): 3})
        async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
            await service.create_container("not-created-yet")
        assert await source.commit({Partition(HUB, 0): 3})
        assert await checkpoints(missing) == {"0": (2, "1200")}


async def test_closing_a_partition_lands_and_checkpoints_it_before_forgetting_it(store: Any) -> None:
    recorder = Recorder()
    source = source_with(store, recorder)
    await source.on_partition_initialize(context("2", store))
    await source.on_event_batch(context("2", store), [received(b"{}", 7)])

    async def revoked(partitions: set[Partition]) -> None:  # what the application does: settle, then commit
        recorder.revoked.append(partitions)
        assert await source.commit({Partition(HUB, 2): 8})

    source._on_revoked = revoked
    await source.on_partition_close(context("2", store), "OWNERSHIP_LOST")
    assert recorder.revoked == [{Partition(HUB, 2)}]
    assert source.assignment() == set()
    assert await checkpoints(store) == {"2": (7, "1700")}


async def test_start_refuses_a_missing_checkpoint_container(azurite: Any) -> None:
    missing = BlobCheckpointStore.from_connection_string(azurite.connection_string, "never-created")
    async with missing:
        source = source_with(missing, Recorder())
        with pytest.raises(ConfigError, match=r"source\.checkpoint_store\.container: 'checkpoints' does not exist"):
            await source.start()


def test_the_readme_example_validates() -> None:
    reference = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    section = reference[reference.index("## Event Hubs over AMQP") :]
    block = section[section.index("```yaml\n") + len("```yaml\n") : section.index("```\n", section.index("```yaml"))]
    doc = config_doc({})
    doc["source"] = yaml.safe_load(block)["source"]
    source = parse_config(doc).source
    assert isinstance(source, EventHubsSourceConfig) and source.checkpoint_store.container == "defender-ingestor"


@pytest.mark.emulator
@pytest.mark.process
def test_run_with_the_real_sdk_client_reports_not_ready_and_stops_cleanly(azurite: Any, tmp_path: Path) -> None:
    """`ingestor run` with the real consumer client and checkpoint store, the namespace unreachable: its start waits,
    /readyz names the namespace and the real SDK's error, one WARNING line says so (not one per attempt), and SIGTERM
    stops it promptly and cleanly."""
    import signal

    from realparts import EmulatorProcess, free_port, http_get, wait_for

    asyncio.run(_create_container(azurite.connection_string, "run-checkpoints"))
    emulator = EmulatorProcess(tmp_path / "emulator")
    port = free_port()
    doc = config_doc(
        {
            "connection_string": f"Endpoint=sb://127.0.0.1:{free_port()}/;SharedAccessKeyName=k;SharedAccessKey=eA==",
            "checkpoint_store": {"connection_string": azurite.connection_string, "container": "run-checkpoints"},
        },
        metrics={"host": "127.0.0.1", "port": port},
    )
    doc["sink"] |= {"endpoint": emulator.endpoint, "ca_file": str(emulator.ca_file),
                    "credential": {"type": "static_token", "token": "test-token-not-a-secret"}}  # fmt: skip
    doc["dead_letter"] = {"path": str(tmp_path / "dead-letter")}
    path = tmp_path / "ingestor.yaml"
    path.write_text(yaml.safe_dump(doc))
    log_path = tmp_path / "ingestor.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(ingestor_command("run", "--config", str(path)), stdout=log, stderr=subprocess.STDOUT)
        try:
            status, body = wait_for(
                lambda: "waiting for" in (answer := http_get(port, "/readyz"))[1] and answer, what="/readyz waiting"
            )
            assert status == 503 and body.startswith(
                "not ready: waiting for the Event Hubs namespace (127.0.0.1): ConnectError: Failed to initiate the "
                "connection due to exception: "
            ), body
            waits = [
                line for line in log_path.read_text().splitlines() if '"logger":"ingestor.connect.reachability"' in line
            ]
            assert len(waits) == 1 and '"level":"WARNING"' in waits[0] and "TCP 5671" in waits[0]
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0  # within shutdown_grace_secs, not at the SDK's next balancing round
        finally:
            if process.poll() is None:
                process.kill()
            emulator.stop()
    text = log_path.read_text()
    assert "Unclosed client session" not in text and '"stopped"' in text


async def _create_container(connection_string: str, name: str) -> None:
    async with BlobServiceClient.from_connection_string(connection_string) as service:
        await service.create_container(name)


@pytest.mark.parametrize(
    ("source", "credential"),
    [
        ({"connection_string": CONNECTION}, True),  # the store's account_url still needs Entra ID
        ({"connection_string": CONNECTION, "checkpoint_store": {"connection_string": STORAGE,
                                                                "container": "checkpoints"}}, False),
        ({"fully_qualified_namespace": NAMESPACE}, True),
    ],
)  # fmt: skip
async def test_entra_id_is_used_wherever_no_connection_string_is_given(
    source: dict[str, Any], credential: bool
) -> None:
    config = parse_config(config_doc(source)).source
    assert isinstance(config, EventHubsSourceConfig)
    recorder = Recorder()
    made = EventHubsSource(config, on_revoked=recorder.on_revoked, on_assigned=recorder.on_assigned)
    try:
        assert (made._credential is not None) == credential
    finally:
        await made._store.close()
        if made._credential is not None:
            await made._credential.close()
