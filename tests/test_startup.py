"""No transient fault at start-up ends `ingestor run` (issue 19, item 2): a part the source needs that cannot be
reached yet is waited for, with capped, jittered back-off, while `/readyz` names it and its last error,
`ingestor_source_reachable` is 0 and one WARNING line (not one per attempt) says what to check; once it can be
reached, the start goes on by itself. Only a configuration error ends the process (exit 2).

On real parts: `ingestor run` as a process started before the Kafka broker exists, then the broker started on that
port; an unresolvable host and a TLS handshake that fails; the Kafka dead letter's producer; the checkpoint store in
Azurite started late, and answering 403. The Event Hubs namespace at the SDK boundary (no Event Hubs emulator
exists; `test_eventhubs_source.py` runs the real SDK client against an unreachable namespace).
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from azure.eventhub.exceptions import ConnectError
from azure.storage.blob.aio import BlobServiceClient
from eventhubs_sdk import ReplayClient
from faultproxy import FaultProxy
from realparts import (
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    AzuriteProcess,
    BrokerProcess,
    EmulatorProcess,
    IngestorProcess,
    emulator_sink,
    end_offsets,
    free_port,
    ingestor_config,
    produce,
    unique_names,
    wait_for,
)
from test_faults import consume_all
from test_source_contract import traffic

from ingestor.config import parse_config
from ingestor.connect.reachability import FIRST_DELAY_SECS, MAX_DELAY_SECS, Backoff, Part, Unreachable
from ingestor.metrics import Metrics
from ingestor.run.app import Ingestor
from ingestor.sinks.dead_letter_kafka import KafkaStore
from ingestor.sources.eventhubs import EventHubsSource, checkpoint_store
from ingestor_tools.emulator import Emulator

PARTITIONS = 2
FAST = Backoff(first_secs=0.05, cap_secs=0.2)
NAMESPACE = "defender-test.servicebus.windows.net"
HUB = "defender"
GROUP = "$Default"
PART = Part("kafka", "the Kafka brokers (127.0.0.1:1)", "the firewall")


@pytest.fixture(scope="module")
def emulator_process(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One `ingestor emulator` for the module: its tests read the ingestor's metrics and logs, not the rows."""
    emulator = EmulatorProcess(tmp_path_factory.mktemp("emulator"))
    yield emulator
    emulator.stop()


def readyz_waiting(ingestor: IngestorProcess) -> str:
    """The body of `/readyz` once it says what the start waits for (the process must stay alive meanwhile)."""

    def waiting() -> str:
        ingestor.metrics()  # raises if the process exited
        status, body = ingestor.get("/readyz")
        return body if status == 503 and "waiting for" in body else ""

    return wait_for(waiting, timeout=60, what="/readyz naming what the start waits for")


def wait_lines(ingestor: IngestorProcess) -> list[dict[str, Any]]:
    return [line for line in ingestor.log_lines() if line["logger"] == "ingestor.connect.reachability"]


# -- the back-off -------------------------------------------------------------------------------------------------


def test_the_backoff_doubles_from_one_second_to_its_cap_with_jitter_within_bounds() -> None:
    ceilings = [min(MAX_DELAY_SECS, FIRST_DELAY_SECS * 2**n) for n in range(8)]
    assert ceilings == [1, 2, 4, 8, 10, 10, 10, 10]
    lowest, highest = Backoff(draw=lambda: 0.0), Backoff(draw=lambda: 1.0 - 2**-53)
    assert [lowest.delay(failures) for failures in range(1, 9)] == [c / 2 for c in ceilings]
    # The largest draw gives the ceiling itself (float rounding), never more.
    assert all(c / 2 < highest.delay(n + 1) <= c for n, c in enumerate(ceilings))
    drawn = Backoff(draw=random.Random(19).random)
    delays = [drawn.delay(n + 1) for n, _ in enumerate(ceilings) for _ in range(50)]
    assert all(ceilings[i // 50] / 2 <= d < ceilings[i // 50] for i, d in enumerate(delays))
    assert len(set(delays)) == len(delays)  # jittered: pods waiting for the same part do not retry in step
    assert Backoff(draw=lambda: 0.0).delay(10_000) == MAX_DELAY_SECS / 2  # no overflow after a long wait


async def test_a_wait_logs_its_start_and_end_once_and_counts_every_failed_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    unreachable = Unreachable(metrics, backoff=FAST)
    failures = 0
    gauge_while_failing: list[float] = []

    async def attempt() -> str:
        nonlocal failures
        gauge_while_failing.append(metrics.total("ingestor_source_reachable"))
        if failures < 5:
            failures += 1
            raise KafkaConnectionError(f"Unable to bootstrap from 127.0.0.1:1: attempt {failures}")
        return "started"

    with caplog.at_level(logging.INFO, logger="ingestor.connect.reachability"):
        result = await unreachable.until_reached(PART, attempt, transient=lambda e: isinstance(e, KafkaConnectionError))
    assert result == "started"
    assert gauge_while_failing == [1, 0, 0, 0, 0, 0]
    assert metrics.total("ingestor_source_reachable") == 1 and not unreachable.waiting
    assert metrics.total("ingestor_source_connect_failures_total") == 5
    (warning, info) = [r for r in caplog.records if r.name == "ingestor.connect.reachability"]
    assert warning.levelno == logging.WARNING and warning.getMessage().startswith(f"{PART.name} cannot be reached")
    assert warning.error == "KafkaConnectionError: Unable to bootstrap from 127.0.0.1:1: attempt 1"
    assert "Check the firewall" in warning.getMessage()
    assert info.levelno == logging.INFO and info.failed_attempts == 5


async def test_the_wait_names_the_last_error_lets_others_through_and_ends_at_once_when_cancelled() -> None:
    unreachable = Unreachable(Metrics(), backoff=Backoff(first_secs=60, cap_secs=60))
    errors = iter([KafkaConnectionError("first"), KafkaConnectionError("second")])

    async def attempt() -> None:
        raise next(errors)

    waiting = asyncio.create_task(unreachable.until_reached(PART, attempt, transient=lambda _e: True))
    await asyncio.to_thread(wait_for, lambda: unreachable.waiting, timeout=5, what="the wait")
    assert unreachable.problem == f"{PART.name}: KafkaConnectionError: first"
    started = time.monotonic()
    waiting.cancel()  # stop() during the 30-60 s back-off
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert time.monotonic() - started < 1

    async def broken() -> None:
        raise ValueError("a bug, not a fault of the network")

    with pytest.raises(ValueError, match="a bug"):
        await unreachable.until_reached(PART, broken, transient=lambda e: isinstance(e, KafkaConnectionError))

    calls = 0

    async def token_later() -> str:  # a watched credential paces itself: retried at once, not recorded
        nonlocal calls
        calls += 1
        if calls < 3:
            raise PermissionError("no token yet")
        return "ok"

    fresh = Unreachable(Metrics(), backoff=Backoff(first_secs=60, cap_secs=60))
    paced = lambda e: isinstance(e, PermissionError)  # noqa: E731
    assert await fresh.until_reached(PART, token_later, transient=lambda _e: True, paced_elsewhere=paced) == "ok"
    assert calls == 3 and not fresh.waiting


# -- the Kafka source, as a process on the real broker ------------------------------------------------------------


@pytest.mark.broker
@pytest.mark.emulator
@pytest.mark.process
def test_started_before_the_broker_it_waits_then_consumes_commits_and_stops_with_0(
    tmp_path: Path, emulator_process: EmulatorProcess
) -> None:
    port = free_port()
    topic, group = unique_names()
    config = ingestor_config(tmp_path, f"127.0.0.1:{port}", emulator_process, topic=topic, group=group)
    ingestor = IngestorProcess(tmp_path, config)
    broker: BrokerProcess | None = None
    try:
        body = readyz_waiting(ingestor)
        assert body.startswith(
            f"not ready: waiting for the Kafka brokers (127.0.0.1:{port}): KafkaConnectionError: Unable to bootstrap "
            f"from 127.0.0.1:{port}: ConnectionRefusedError: "
        ), body
        wait_for(
            lambda: ingestor.total("ingestor_source_connect_failures_total", part="kafka") >= 3,
            timeout=30,
            what="several failed attempts",
        )
        assert ingestor.total("ingestor_source_reachable") == 0 and ingestor.total("ingestor_ready") == 0
        (waiting,) = wait_lines(ingestor)  # one line, not one per attempt
        assert waiting["level"] == "WARNING" and waiting["part"] == "kafka"
        assert "DNS" in waiting["message"] and "source.bootstrap_servers" in waiting["message"]
        assert "Unable connect to" not in ingestor.log()  # aiokafka's line per attempt is held back

        broker = BrokerProcess(tmp_path, port=port, own=True)
        messages, manifest = traffic(seed=19, records=400)
        per_partition = produce(broker.bootstrap, topic, messages, partitions=PARTITIONS)
        ingestor.wait_committed(topic, per_partition)
        wait_for(lambda: ingestor.get("/readyz") == (200, "ready\n"), timeout=30, what="ready")
        assert ingestor.total("ingestor_source_reachable") == 1
        assert ingestor.total("ingestor_accepted_events_total") == sum(manifest.valid.values())
        waiting, reached = wait_lines(ingestor)
        assert reached["level"] == "INFO" and reached["message"].startswith(f"the Kafka brokers (127.0.0.1:{port})")
        assert reached["failed_attempts"] >= 3
    finally:
        code = ingestor.terminate()
        if broker is not None:
            broker.stop()
    assert code == 0, ingestor.log()[-3000:]


@pytest.mark.broker
@pytest.mark.emulator
@pytest.mark.process
def test_after_the_start_the_broker_going_away_is_ridden_out_and_reading_resumes(
    tmp_path: Path, emulator_process: EmulatorProcess
) -> None:
    """What the Faults table says of "after the start": the process stays up with its partitions, aiokafka
    reconnects by itself, and what is produced once the broker is back is read and committed."""
    broker_port = free_port()
    proxy = FaultProxy("127.0.0.1", broker_port)
    broker = BrokerProcess(tmp_path, port=broker_port, advertised_port=proxy.port, own=True)
    topic, group = unique_names()
    try:
        first, _ = traffic(seed=23, records=200)
        produce(broker.bootstrap, topic, first, partitions=PARTITIONS)
        ingestor = IngestorProcess(tmp_path, ingestor_config(tmp_path, broker.bootstrap, emulator_process,
                                                             topic=topic, group=group))  # fmt: skip
        try:
            wait_for(lambda: ingestor.total("ingestor_read_messages_total") == len(first), what="the first messages")
            proxy.set_mode("blackhole")
            proxy.reset_all()
            outage_ends = time.monotonic() + 10  # longer than the session timeout (6 s)
            while time.monotonic() < outage_ends:
                assert ingestor.get("/readyz") == (200, "ready\n")  # it keeps its partitions; the process stays up
                time.sleep(0.5)
            proxy.set_mode("pass")
            proxy.reset_all()
            second, _ = traffic(seed=24, records=200)
            produce(broker.bootstrap, topic, second, partitions=PARTITIONS)
            ingestor.wait_committed(topic, end_offsets(broker.bootstrap, topic))
            assert ingestor.total("ingestor_source_reachable") == 1
            assert not wait_lines(ingestor)  # the start's wait is not what reports this
        finally:
            code = ingestor.terminate()
        assert code == 0
    finally:
        broker.stop()
        proxy.close()


@pytest.mark.broker
@pytest.mark.emulator
@pytest.mark.process
def test_a_sink_that_does_not_answer_yet_is_not_ready_with_one_line_then_every_row_lands(
    tmp_path: Path, emulator_process: EmulatorProcess
) -> None:
    """The Logs Ingestion API's private endpoint not there yet: the process stays up, /readyz says the sink is not
    reachable and why, `ingestor_sink_reachable` is 0 and one WARNING line per destination says what to check (not
    one per attempt); once it answers, every row lands, nothing is dead-lettered, and the gauge is back at 1."""
    broker = BrokerProcess(tmp_path, own=True)
    sink_port = free_port()  # nothing listens there yet: connection refused
    emulator_port = int(emulator_process.endpoint.rsplit(":", 1)[1].rstrip("/"))
    topic, group = unique_names()
    proxy: FaultProxy | None = None
    try:
        messages, manifest = traffic(seed=29, records=300)
        per_partition = produce(broker.bootstrap, topic, messages, partitions=PARTITIONS)
        config = ingestor_config(tmp_path, broker.bootstrap, emulator_process, topic=topic, group=group)
        config["sink"]["endpoint"] = f"https://127.0.0.1:{sink_port}"
        ingestor = IngestorProcess(tmp_path, config)
        try:

            def not_reachable() -> str:
                ingestor.metrics()  # raises if the process exited
                status, body = ingestor.get("/readyz")
                return body if status == 503 and "Logs Ingestion API not reachable" in body else ""

            body = wait_for(not_reachable, timeout=60, what="/readyz saying the sink is not reachable")
            assert "connection failed" in body and "Cannot connect to host 127.0.0.1" in body, body
            assert ingestor.total("ingestor_sink_reachable") == 0
            wait_for(
                lambda: ingestor.total("ingestor_retries_total", reason="transient") >= 12,
                timeout=60,
                what="several attempts of each request under way",
            )
            lines = ingestor.log_lines()
            unreachable = [line for line in lines if line["message"].startswith("Logs Ingestion API not")]
            destinations = [line["destination"] for line in unreachable]
            assert sorted(destinations) == sorted(set(destinations)) and destinations  # one line per destination
            assert "privatelink.monitor.azure.com" in unreachable[0]["message"]
            assert not [line for line in ingestor.log_lines() if line["message"] == "upload failed; retrying"]

            proxy = FaultProxy("127.0.0.1", emulator_port, listen_port=sink_port)
            ingestor.wait_committed(topic, per_partition)
            wait_for(lambda: ingestor.get("/readyz") == (200, "ready\n"), timeout=30, what="ready")
            assert ingestor.total("ingestor_sink_reachable") == 1
            assert ingestor.total("ingestor_accepted_events_total") == sum(manifest.valid.values())
            assert ingestor.total("ingestor_dead_lettered_events_total") == manifest.dead_letter_records
            again = [line for line in ingestor.log_lines() if line["message"] == "Logs Ingestion API reachable again"]
            assert sorted(line["destination"] for line in again) == sorted(destinations)
        finally:
            code = ingestor.terminate()
        assert code == 0, ingestor.log()[-3000:]
    finally:
        broker.stop()
        if proxy is not None:
            proxy.close()


@pytest.mark.emulator
@pytest.mark.process
@pytest.mark.parametrize(
    ("address", "tls", "error"),
    [
        ("broker.nosuchhost.test:9093", False, "broker.nosuchhost.test:9093: gaierror: "),
        ("emulator", True, "certificate verify failed"),  # a TLS server whose certificate nothing trusts
    ],
    ids=["unresolvable", "tls-handshake-fails"],
)
def test_an_unresolvable_or_untrusted_broker_keeps_the_process_up_and_sigterm_ends_it_with_0(
    address: str, tls: bool, error: str, tmp_path: Path, emulator_process: EmulatorProcess
) -> None:
    if address == "emulator":
        address = emulator_process.endpoint.removeprefix("https://")
    topic, group = unique_names()
    config = ingestor_config(tmp_path, address, emulator_process, topic=topic, group=group, source__tls=tls)
    ingestor = IngestorProcess(tmp_path, config)
    try:
        body = readyz_waiting(ingestor)
        assert f"waiting for the Kafka brokers ({address}): KafkaConnectionError: " in body and error in body, body
        wait_for(
            lambda: ingestor.total("ingestor_source_connect_failures_total", part="kafka") >= 2,
            timeout=30,
            what="a second failed attempt",
        )
        assert len(wait_lines(ingestor)) == 1
        ingestor.process.send_signal(signal.SIGTERM)
        assert ingestor.process.wait(timeout=15) == 0  # the wait ends at once, not after its back-off
    finally:
        ingestor.kill()
    assert '"stopped"' in ingestor.log()


@pytest.mark.emulator
@pytest.mark.process
def test_a_ca_file_that_is_no_certificate_exits_2_with_one_line_naming_the_key(
    tmp_path: Path, emulator_process: EmulatorProcess
) -> None:
    not_a_certificate = tmp_path / "ca.pem"
    not_a_certificate.write_text("this is not a certificate\n")
    topic, group = unique_names()
    config = ingestor_config(
        tmp_path,
        "127.0.0.1:9",
        emulator_process,
        topic=topic,
        group=group,
        source__tls=True,
        source__ca_file=str(not_a_certificate),
    )
    ingestor = IngestorProcess(tmp_path, config)
    try:
        assert ingestor.process.wait(timeout=30) == 2
    finally:
        ingestor.kill()
    # Warnings are JSON log lines (the test's inline token); the error is one plain line.
    (problem,) = [line for line in ingestor.log().splitlines() if not line.startswith("{")]
    assert problem.startswith(
        f"ingestor: invalid configuration: source.ca_file: {not_a_certificate} cannot be used as a CA certificate "
        "(SSLError: "
    ), problem
    assert "give the PEM file of the CA" in problem


# -- the Kafka dead letter's producer -----------------------------------------------------------------------------


@pytest.mark.broker
async def test_the_kafka_dead_letter_names_the_broker_it_cannot_reach_then_writes_once_it_can(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    topic, _ = unique_names()
    config = parse_config(
        {
            "source": {"bootstrap_servers": [f"127.0.0.1:{port}"], "topics": ["t"], "group_id": "g"},
            "sink": {"endpoint": "https://dce.example.com", "rule_id": "dcr-" + "0" * 32},
            "dead_letter": {"type": "kafka", "topic": topic},
        }
    )
    store = KafkaStore(config.source, topic, Metrics())  # type: ignore[arg-type]
    refused = rf"from 127\.0\.0\.1:{port}: ConnectionRefusedError"
    with caplog.at_level(logging.DEBUG, logger="aiokafka"), pytest.raises(KafkaConnectionError, match=refused):
        await store.write([b'{"reason": "malformed_json"}\n'])  # the queue retries it, logging once per flip
    assert not [r for r in caplog.records if r.getMessage().startswith("Unable connect to")]
    broker = await asyncio.to_thread(BrokerProcess, tmp_path, port=port, own=True)
    try:
        await asyncio.to_thread(produce, broker.bootstrap, topic, [], partitions=1)
        await store.write([b'{"reason": "malformed_json"}\n', b'{"reason": "invalid_type"}\n'])
        await store.close()
        entries = await asyncio.to_thread(consume_all, broker.bootstrap, topic)
        assert [entry["reason"] for entry in entries] == ["malformed_json", "invalid_type"]
    finally:
        broker.stop()


# -- the AMQP source: the checkpoint store and the namespace ------------------------------------------------------


def amqp_config(store: dict[str, Any], emulator: Emulator, tmp_path: Path) -> Any:
    return parse_config(
        {
            "source": {
                "type": "eventhubs",
                "connection_string": f"Endpoint=sb://{NAMESPACE}/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0LWtleQ==",
                "eventhub_name": HUB,
                "checkpoint_store": store,
            },
            "sink": emulator_sink(emulator, linger_secs=0.3),
            "dead_letter": {"path": str(tmp_path / "dead-letter")},
            "metrics": {"host": "127.0.0.1", "port": 0},
        }
    )


def azurite_connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
    )


class UnreachableNamespace(ReplayClient):
    """The consumer client of a namespace that cannot be reached until `reachable` is set: the error the real SDK
    raises then (`test_eventhubs_source.py` sees it from the real client)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reachable = False
        self.attempts = 0

    async def get_partition_ids(self) -> list[str]:
        self.attempts += 1
        if not self.reachable:
            raise ConnectError(
                "Failed to initiate the connection due to exception: [Errno -2] Name or service not known\n"
                "Error condition: ErrorCondition.SocketError"
            )
        return await super().get_partition_ids()


class Replaying:
    """A source factory: the configured checkpoint store (as EventHubsSource builds it), a replaying client;
    `close()` closes the stores it made."""

    def __init__(self, partitions: dict[int, list[bytes]], client_class: type[ReplayClient] = ReplayClient) -> None:
        self._partitions = partitions
        self._client_class = client_class
        self.clients: list[ReplayClient] = []
        self._stores: list[Any] = []

    def __call__(self, source_config: Any, **callbacks: Any) -> EventHubsSource:
        self._stores.append(checkpoint_store(source_config))
        self.clients.append(self._client_class(NAMESPACE, HUB, GROUP, self._stores[-1], self._partitions))
        return EventHubsSource(source_config, store=self._stores[-1], client=self.clients[-1], **callbacks)  # type: ignore[arg-type]

    async def close(self) -> None:
        for store in self._stores:
            await store.close()


async def until(predicate: Callable[[], Any], what: str) -> Any:
    return await asyncio.to_thread(wait_for, predicate, timeout=60, what=what)


async def test_the_amqp_start_waits_for_the_namespace_then_receives(
    azurite: AzuriteProcess, emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    container = f"namespace-{int(time.time() * 1000) % 10**8}"
    async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        await service.create_container(container)
    messages, manifest = traffic(seed=21, records=300)
    build = Replaying({p: messages[p::2] for p in range(2)}, UnreachableNamespace)
    store = {"connection_string": azurite.connection_string, "container": container}
    metrics = Metrics()
    ingestor = Ingestor(amqp_config(store, emulator, tmp_path), metrics=metrics, source_factory=build)
    ingestor.unreachable.backoff = FAST
    (client,) = build.clients
    assert isinstance(client, UnreachableNamespace)
    with caplog.at_level(logging.INFO, logger="ingestor.connect.reachability"):
        running = asyncio.create_task(ingestor.run())
        await until(lambda: client.attempts >= 3, "several attempts")
        ready, reason = ingestor.readiness()
        assert not ready and reason.startswith(
            f"waiting for the Event Hubs namespace ({NAMESPACE}): ConnectError: Failed to initiate the connection"
        ), reason
        assert "c2VjcmV0LWtleQ" not in reason  # the connection string's key
        assert metrics.total("ingestor_source_reachable") == 0
        failures = metrics.registry.get_sample_value("ingestor_source_connect_failures_total", {"part": "eventhubs"})
        assert failures is not None and failures >= 2
        client.reachable = True
        valid = sum(manifest.valid.values())
        await until(lambda: metrics.total("ingestor_accepted_events_total") == valid, "every valid row to land")
    assert ingestor.readiness() == (True, "")
    ingestor.stop()
    assert await asyncio.wait_for(running, 60)
    await build.close()
    assert metrics.total("ingestor_source_reachable") == 1
    lines = [
        (r.levelname, r.getMessage().split(";")[0]) for r in caplog.records if r.name == "ingestor.connect.reachability"
    ]
    assert lines == [
        ("WARNING", f"the Event Hubs namespace ({NAMESPACE}) cannot be reached yet"),
        ("INFO", f"the Event Hubs namespace ({NAMESPACE}) reached"),
    ]


@pytest.mark.azurite
async def test_the_amqp_start_waits_for_a_checkpoint_store_not_started_yet(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The store's container exists (the deployment made it); the store is down when the ingestor starts.
    directory, port = tmp_path / "azurite", free_port()
    first = await asyncio.to_thread(AzuriteProcess, directory, port=port)
    async with BlobServiceClient.from_connection_string(first.connection_string) as service:
        await service.create_container("late-store")
    first.stop()
    messages, manifest = traffic(seed=22, records=200)
    build = Replaying({p: messages[p::2] for p in range(2)})
    store = {"connection_string": azurite_connection_string(port), "container": "late-store"}
    metrics = Metrics()
    ingestor = Ingestor(amqp_config(store, emulator, tmp_path), metrics=metrics, source_factory=build)
    ingestor.unreachable.backoff = FAST
    restarted: AzuriteProcess | None = None
    try:
        with caplog.at_level(logging.INFO):
            running = asyncio.create_task(ingestor.run())
            await until(lambda: metrics.total("ingestor_source_connect_failures_total") >= 3, "several attempts")
            ready, reason = ingestor.readiness()
            assert not ready and reason.startswith(
                f"waiting for the checkpoint store (127.0.0.1:{port}/{AZURITE_ACCOUNT}/late-store): "
                f"ServiceRequestError: Cannot connect to host 127.0.0.1:{port}"
            ), reason
            assert AZURITE_KEY not in reason
            restarted = await asyncio.to_thread(AzuriteProcess, directory, port=port)
            valid = sum(manifest.valid.values())
            await until(lambda: metrics.total("ingestor_accepted_events_total") == valid, "every valid row to land")
        ingestor.stop()
        assert await asyncio.wait_for(running, 60)
    finally:
        await build.close()
        if restarted is not None:
            restarted.stop()
    ours = [
        r for r in caplog.records if r.name.startswith(("ingestor.connect.reachability", "azure.eventhub.extensions"))
    ]
    assert [(r.name, r.levelname) for r in ours] == [
        ("ingestor.connect.reachability", "WARNING"),
        ("ingestor.connect.reachability", "INFO"),
    ]  # the checkpoint store extension's WARNING per failed listing is held back


async def test_a_checkpoint_store_that_answers_403_is_waited_for_with_back_off_not_in_a_loop(
    azurite: AzuriteProcess, emulator: Emulator, tmp_path: Path
) -> None:
    # A wrong account key, or a Storage firewall that does not admit the cluster yet: Storage answers 403.
    wrong_key = azurite.connection_string.replace(AZURITE_KEY, "d3Jvbmcta2V5LW5vdC1hLXNlY3JldA==")
    build = Replaying({0: []})
    config = amqp_config({"connection_string": wrong_key, "container": "forbidden"}, emulator, tmp_path)
    metrics = Metrics()
    unreachable = Unreachable(metrics, backoff=FAST)
    source = build(config.source, on_revoked=None, on_assigned=None, unreachable=unreachable)
    started = time.monotonic()
    starting = asyncio.create_task(source.start())
    try:
        await until(lambda: metrics.total("ingestor_source_connect_failures_total") >= 3, "several attempts")
        assert unreachable.problem.startswith(
            f"the checkpoint store (127.0.0.1:{azurite.port}/{AZURITE_ACCOUNT}/forbidden): "
        ), unreachable.problem
        assert "Server failed to authenticate the request" in unreachable.problem
        assert "d3Jvbmcta2V5" not in unreachable.problem
        paced = (time.monotonic() - started) / (FAST.first_secs / 2) + 2
        assert metrics.total("ingestor_source_connect_failures_total") <= paced
    finally:
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await source.stop()
        await build.close()
