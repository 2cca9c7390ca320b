"""Delivery against the real emulator over HTTPS with the real azure-monitor-ingestion client.

Every fault the emulator can inject ends with every row settled: landed, or dead-lettered with the reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CredentialUnavailableError
from credentials import FailingCredential
from test_xdr_records import expected_value, stored_row

from ingestor.commit import OffsetTracker, Partition, Position, Ticket
from ingestor.config import LogsIngestionSinkConfig
from ingestor.metrics import Metrics
from ingestor.pipeline.batch import Batcher
from ingestor.pipeline.decode import MessageDecoder
from ingestor.provision.azure_rules import stored_names
from ingestor.retention import build_routes
from ingestor.sinks.dead_letter import DeadLetterQueue
from ingestor.sinks.dead_letter_file import FileStore, read_dead_letters
from ingestor.sinks.delivery import Delivery
from ingestor.sinks.logs_ingestion import LogsIngestionSink
from ingestor.tables import load_schemas
from ingestor_tools import SAMPLES_DIR
from ingestor_tools.emulator import DEFAULT_RULE_ID, Emulator

TOKEN = "delivery-test-token"
TABLE = "DeviceRegistryEvents"


@pytest.fixture
def emulator_token() -> str:
    return TOKEN


class Rig:
    """Delivery wired to the emulator, with a tracker, dead letter and metrics to assert on."""

    def __init__(self, emulator: Emulator, tmp: Path, **sink: Any) -> None:
        settings: dict[str, Any] = {
            "endpoint": emulator.endpoint,
            "rule_id": DEFAULT_RULE_ID,
            "ca_file": emulator.ca_file,
            "credential": {"type": "static_token", "token": TOKEN},
            "linger_secs": 0.2,
            "auth_retry_secs": 0.2,
            "max_backoff_secs": 0.5,
        }
        settings.update(sink)
        self.config = LogsIngestionSinkConfig.model_validate(settings)
        self.metrics = Metrics()
        self.tracker = OffsetTracker()
        self.tracker.assigned([Partition("t", 0)])
        self.dead_letter_dir = tmp / "dead-letter"
        self.dead_letter = DeadLetterQueue(FileStore(self.dead_letter_dir, max_file_bytes=1 << 26), self.metrics)
        self.routes = build_routes(self.config)
        self.batchers = {
            route.fallback: Batcher(
                route.fallback, max_request_bytes=self.config.max_request_bytes, linger_secs=self.config.linger_secs
            )
            for route in self.routes.values()
        }

    def rows(self, count: int, *, bad: set[int] = frozenset(), size: int = 40) -> list[bytes]:  # type: ignore[assignment]
        out = []
        for i in range(count):
            row: dict[str, Any] = {
                "Timestamp": "2026-07-18T10:58:27.3137769Z",
                "TimeGenerated": "2026-07-18T10:58:27.3137769Z",
                "DeviceId": "56fb3abc73b440dd56cdc9873677877cd4ab0851",
                "DeviceName": f"host-{i}",
                "ReportId": i,
                "RegistryValueData": os.urandom(size).hex(),
            }
            if i in bad:
                row["ReportId"] = "not-a-long"
            out.append(json.dumps(row).encode())
        return out

    async def deliver(self, rows: list[bytes], *, until: Any = None, credential: Any = None) -> list[Ticket]:
        """Feed rows (one message per row) and wait until every ticket is done."""
        async with LogsIngestionSink(self.config, credential=credential) as sink:
            delivery = Delivery(self.config, sink, self.batchers, self.dead_letter, self.metrics)
            self.delivery = delivery
            workers = asyncio.create_task(delivery.run())
            writer = asyncio.create_task(self.dead_letter.run())
            tickets = []
            for i, row in enumerate(rows):
                ticket = self.tracker.track(Position("t", 0, i))
                ticket.pending, ticket.sealed = 1, True
                tickets.append(ticket)
                delivery.submit(self.batchers[self.routes[TABLE].fallback].add(row, ticket))
            delivery.flush_all()
            if until is not None:
                await until(delivery)
            async with asyncio.timeout(60):
                await delivery.drain()
                await self.dead_letter.drain()
            workers.cancel()
            writer.cancel()
            await asyncio.gather(workers, writer, return_exceptions=True)
            assert delivery.inflight_bytes == 0
            return tickets

    def sample(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


def assert_all_settled(rig: Rig, tickets: list[Ticket]) -> None:
    assert all(t.done for t in tickets)
    assert rig.tracker.committable() == {next(iter(rig.tracker._open)): len(tickets)}


async def test_rows_land_with_204_and_every_ticket_settles(emulator: Emulator, tmp_path: Path) -> None:
    rig = Rig(emulator, tmp_path)
    tickets = await rig.deliver(rig.rows(500))
    assert_all_settled(rig, tickets)
    landed = emulator.rows("DeviceRegistryEvents_CL")
    assert sorted(r["ReportId"] for r in landed) == list(range(500))
    labels = {"table": TABLE, "retention_tag": "default", "destination": "DeviceRegistryEvents_CL"}
    assert rig.sample("ingestor_accepted_events_total", **labels) == 500
    assert rig.sample("ingestor_requests_total", destination="DeviceRegistryEvents_CL", status_class="2xx") >= 1


async def test_every_sample_record_lands_with_its_columns_and_a_request_id(emulator: Emulator, tmp_path: Path) -> None:
    samples = [r for path in sorted(SAMPLES_DIR.glob("*.json")) for r in json.loads(path.read_text())]
    rig = Rig(emulator, tmp_path)
    decoded = MessageDecoder(load_schemas(), routes=rig.routes).decode(json.dumps({"records": samples}).encode())
    assert len(decoded.rows) == len(samples) and not decoded.rejected
    async with LogsIngestionSink(rig.config) as sink:
        delivery = Delivery(rig.config, sink, rig.batchers, rig.dead_letter, rig.metrics)
        workers = asyncio.create_task(delivery.run())
        ticket = rig.tracker.track(Position("t", 0, 0))
        ticket.pending, ticket.sealed = len(decoded.rows), True
        for row in decoded.rows:
            delivery.submit(rig.batchers[row.destination].add(row.body, ticket))
        async with asyncio.timeout(30):
            await delivery.drain()
        workers.cancel()
    assert ticket.done
    for record, row in zip(samples, decoded.rows, strict=True):
        (landed,) = emulator.rows(f"{row.table}_CL")
        assert landed == stored_row(load_schemas()[row.table], json.loads(row.body))  # `Title` as `Title_`
        native = {stored: name for name, stored in stored_names(list(load_schemas()[row.table].column_names)).items()}
        landed = {native.get(k, k): v for k, v in landed.items()}
        kinds = {c.name: c.type for c in load_schemas()[row.table].columns}
        converted = {k: expected_value(kinds[k], v) for k, v in record["properties"].items()}
        assert set(landed) == {k for k, v in converted.items() if v is not None} | {
            "TimeGenerated",
            "SourceTenantId",
            "RetentionTag",
        }
    with sqlite3.connect(emulator.db_path) as db:
        ids = [i for (i,) in db.execute("SELECT request_id FROM requests WHERE status = 204")]
    assert len(ids) == len(samples) == len(set(ids)) and all(uuid.UUID(i) for i in ids)


async def test_429_waits_for_retry_after_then_lands(emulator: Emulator, tmp_path: Path) -> None:
    emulator.update_faults({"fail_next": [429, 429], "retry_after_secs": 1})
    rig = Rig(emulator, tmp_path, max_backoff_secs=5)
    tickets = await rig.deliver(rig.rows(50))
    assert_all_settled(rig, tickets)
    assert len(emulator.rows("DeviceRegistryEvents_CL")) == 50
    dest = "DeviceRegistryEvents_CL"
    assert rig.sample("ingestor_retries_total", destination=dest, reason="throttled") == 2
    assert rig.sample("ingestor_retry_wait_seconds_total", destination=dest, reason="throttled") == 2.0
    assert rig.sample("ingestor_requests_total", destination=dest, status_class="4xx") == 2


async def test_retry_after_beyond_the_backoff_cap_is_honoured_up_to_its_ceiling(
    emulator: Emulator, tmp_path: Path
) -> None:
    dest = "DeviceRegistryEvents_CL"
    emulator.update_faults({"fail_next": [429], "retry_after_secs": 2})
    rig = Rig(emulator, tmp_path, max_backoff_secs=0.5)
    seen: list[float] = []

    async def watch(_: Delivery) -> None:
        while not seen:
            seen.extend(v for v in [rig.sample("ingestor_retry_waiting_seconds", destination=dest)] if v)
            await asyncio.sleep(0.02)

    tickets = await rig.deliver(rig.rows(20), until=watch)
    assert_all_settled(rig, tickets)
    assert seen == [2.0]  # the service's 2 s, not the 0.5 s backoff cap, and visible while it lasts
    assert rig.sample("ingestor_retry_wait_seconds_total", destination=dest, reason="throttled") == 2.0
    assert rig.sample("ingestor_retry_waiting_seconds", destination=dest) == 0

    emulator.update_faults({"fail_next": [429], "retry_after_secs": 30})
    rig = Rig(emulator, tmp_path / "ceiling", max_backoff_secs=0.5, max_retry_after_secs=1)
    tickets = await rig.deliver(rig.rows(20))
    assert_all_settled(rig, tickets)
    assert rig.sample("ingestor_retry_wait_seconds_total", destination=dest, reason="throttled") == 1.0


@pytest.mark.parametrize(
    "error",
    [
        CredentialUnavailableError("WorkloadIdentityCredential authentication unavailable. no AZURE_CLIENT_ID"),
        ClientAuthenticationError("AADSTS700213: No matching federated identity record found for presented assertion"),
    ],
    ids=["unavailable", "refused"],
)
async def test_a_credential_that_gives_no_token_is_unauthorized_not_transient(
    emulator: Emulator, tmp_path: Path, error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    dest = "DeviceRegistryEvents_CL"
    rig = Rig(emulator, tmp_path)
    credential = FailingCredential(error, TOKEN)
    seen: dict[str, Any] = {}

    async def heal(delivery: Delivery) -> None:
        while rig.sample("ingestor_retries_total", destination=dest, reason="unauthorized") < 3:
            await asyncio.sleep(0.02)
        seen.update(authorized=rig.sample("ingestor_sink_authorized"), problem=delivery.health.problem)
        credential.heal()

    with caplog.at_level(logging.ERROR):
        tickets = await rig.deliver(rig.rows(20), until=heal, credential=credential)
    assert_all_settled(rig, tickets)
    assert seen["authorized"] == 0
    assert seen["problem"].startswith(f"{dest}: credential: no token: {error.__class__.__name__}")
    assert rig.sample("ingestor_retries_total", destination=dest, reason="transient") == 0
    (line,) = [r.getMessage() for r in caplog.records if "no Entra ID token" in r.getMessage()]
    assert "workloadIdentity.clientId" in line and "federated credential" in line
    assert rig.sample("ingestor_sink_authorized") == 1 and len(emulator.rows(dest)) == 20


async def test_5xx_and_dropped_connections_retry_without_dropping(emulator: Emulator, tmp_path: Path) -> None:
    emulator.update_faults({"fail_next": [503, 500, 503]})
    rig = Rig(emulator, tmp_path)
    tickets = await rig.deliver(rig.rows(30))
    assert_all_settled(rig, tickets)
    assert rig.sample("ingestor_retries_total", destination="DeviceRegistryEvents_CL", reason="transient") == 3

    emulator.update_faults({"drop_connection_rate": 1.0})
    rig2 = Rig(emulator, tmp_path / "second")

    async def heal(delivery: Delivery) -> None:
        while rig2.sample("ingestor_retries_total", destination="DeviceRegistryEvents_CL", reason="transient") < 5:
            await asyncio.sleep(0.05)
        emulator.update_faults({"drop_connection_rate": 0.0})

    tickets = await rig2.deliver(rig2.rows(30), until=heal)
    assert all(t.done for t in tickets)
    assert len(emulator.rows("DeviceRegistryEvents_CL")) == 60
    assert emulator.stats()["requests"]["dropped"] >= 5


async def test_400_bisects_to_the_bad_rows_and_the_rest_lands(emulator: Emulator, tmp_path: Path) -> None:
    rig = Rig(emulator, tmp_path)
    tickets = await rig.deliver(rig.rows(200, bad={17, 150}))
    assert_all_settled(rig, tickets)
    landed = sorted(r["ReportId"] for r in emulator.rows("DeviceRegistryEvents_CL"))
    assert landed == [i for i in range(200) if i not in (17, 150)]
    entries = list(read_dead_letters(rig.dead_letter_dir))
    assert sorted(json.loads(e.raw or "")["DeviceName"] for e in entries) == ["host-150", "host-17"]
    assert {e.reason for e in entries} == {"rejected_by_service"} and all("ReportId" in e.detail for e in entries)
    assert {(e.topic, e.partition) for e in entries} == {("t", 0)} and {e.offset for e in entries} == {17, 150}
    assert rig.sample("ingestor_dead_lettered_events_total", table=TABLE, reason="rejected_by_service") == 2


async def test_413_splits_the_batch(emulator: Emulator, tmp_path: Path) -> None:
    emulator.update_faults({"fail_next": [413]})
    rig = Rig(emulator, tmp_path)
    tickets = await rig.deliver(rig.rows(64))
    assert_all_settled(rig, tickets)
    assert len(emulator.rows("DeviceRegistryEvents_CL")) == 64
    assert rig.sample("ingestor_batch_splits_total", destination="DeviceRegistryEvents_CL", reason="too_large") == 1


async def test_requests_stay_under_the_limit_and_are_well_filled(emulator: Emulator, tmp_path: Path) -> None:
    rig = Rig(emulator, tmp_path, max_request_bytes=65_536)
    tickets = await rig.deliver(rig.rows(3000, size=300))  # ~1.9 MB raw, ~1 MB gzipped
    assert_all_settled(rig, tickets)
    with sqlite3.connect(emulator.db_path) as db:
        sizes = [n for (n,) in db.execute("SELECT body_bytes FROM requests WHERE status = 204")]
    assert max(sizes) <= 65_536
    full = sorted(sizes)[:-1]  # the last request holds the remainder
    assert sum(full) / len(full) > 0.8 * 65_536, sizes


async def test_401_403_404_stop_and_resume_by_themselves(emulator: Emulator, tmp_path: Path) -> None:
    emulator.update_faults({"fail_next": [403, 401, 404]})
    rig = Rig(emulator, tmp_path)
    seen_unauthorized = []

    async def watch(delivery: Delivery) -> None:
        while delivery.health.authorized:
            await asyncio.sleep(0.01)
        seen_unauthorized.append(delivery.health.problem)
        assert rig.sample("ingestor_sink_authorized") == 0

    tickets = await rig.deliver(rig.rows(10), until=watch)
    assert_all_settled(rig, tickets) if tickets else None
    assert seen_unauthorized and seen_unauthorized[0].startswith("DeviceRegistryEvents_CL: 403")
    assert rig.delivery.health.authorized and rig.sample("ingestor_sink_authorized") == 1
    assert len(emulator.rows("DeviceRegistryEvents_CL")) == 10
    assert rig.sample("ingestor_retries_total", destination="DeviceRegistryEvents_CL", reason="unauthorized") == 3


async def test_a_row_too_big_for_any_request_is_dead_lettered(emulator: Emulator, tmp_path: Path) -> None:
    rig = Rig(emulator, tmp_path, max_request_bytes=16_384)
    rows = rig.rows(3)
    rows[1] = json.dumps({"DeviceName": "huge", "RegistryValueData": os.urandom(20_000).hex()}).encode()
    tickets = await rig.deliver(rows)
    assert all(t.done for t in tickets)
    assert sorted(r["DeviceName"] for r in emulator.rows("DeviceRegistryEvents_CL")) == ["host-0", "host-2"]
    (entry,) = read_dead_letters(rig.dead_letter_dir)
    assert entry.reason == "oversized_row" and entry.offset == 1
