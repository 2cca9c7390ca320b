"""The sink's parts, each alone, in process: building a request (`sinks.request`), the service that sends it and
carries out the retry policy's decision (`sinks.service`), and the outcome events (`sinks.events`). The HTTPS
emulator tests (`test_delivery.py`, `test_faults.py`) run them together against the real client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from fakes import ScriptedUploader

from ingestor.commit import Position, Ticket
from ingestor.errors import UploadError
from ingestor.metrics import Metrics
from ingestor.models import FILL_TARGET, Batch, Destination
from ingestor.pipeline.batch import Batcher
from ingestor.sinks.compress import gunzip, gzip_array
from ingestor.sinks.events import SinkEvents
from ingestor.sinks.request import THREAD_COMPRESS_BYTES, RequestBuilder
from ingestor.sinks.retry import Decision, RetryPolicy
from ingestor.sinks.service import Undelivered, UploadService

DEST = Destination("DeviceInfo", "dcr-" + "0" * 32, "Custom-DeviceInfo_CL", "DeviceInfo_CL")
QUICK = RetryPolicy(max_backoff_secs=0.01, max_retry_after_secs=0.02, auth_retry_secs=0.01, random=lambda: 0.5)


def batch_of(rows: int, width: int = 40) -> Batch:
    tickets = [Ticket(Position("defender", 0, i), 0.0) for i in range(rows)]
    body = [json.dumps({"DeviceId": f"{i:0{width}d}"}).encode() for i in range(rows)]
    return Batch.of(DEST, body, tickets)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


# -- building a request -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [3, THREAD_COMPRESS_BYTES // 50])  # inline, and in a worker thread
async def test_a_request_is_the_gzipped_json_array_and_the_batcher_learns_its_ratio(rows: int) -> None:
    batcher = Batcher(DEST, max_request_bytes=1_000_000, linger_secs=1)
    builder = RequestBuilder(max_request_bytes=1_000_000, compression_level=1, batchers={DEST: batcher})
    batch = batch_of(rows)
    payload = await builder.compress(batch)
    assert json.loads(gunzip(payload)) == [json.loads(row) for row in batch.rows]
    assert batcher.ratio != 0.2  # learned from this request (the initial estimate is 0.2)


async def test_an_overshot_request_is_trimmed_to_fit_and_the_rest_goes_back_to_its_batcher() -> None:
    batcher = Batcher(DEST, max_request_bytes=10_000, linger_secs=60)
    builder = RequestBuilder(max_request_bytes=10_000, compression_level=1, batchers={DEST: batcher})
    batch = batch_of(400)
    payload = b"x" * 40_000  # as if it compressed to four times the limit
    trimmed = builder.fit(batch, payload)
    assert trimmed is not None
    assert len(trimmed.head) == int(400 * 10_000 * FILL_TARGET / 40_000)
    assert trimmed.head.rows == batch.rows[: len(trimmed.head)]
    rest = batch.rows[len(trimmed.head) :]
    assert trimmed.returned_bytes == sum(len(row) + 1 for row in rest)
    waiting = trimmed.closed.rows if trimmed.closed is not None else []
    assert waiting + [row for open_batch in batcher.open_batches for row in open_batch.rows] == rest


def test_a_single_row_too_large_cannot_be_trimmed() -> None:
    builder = RequestBuilder(max_request_bytes=100, compression_level=1, batchers={})
    assert builder.fit(batch_of(1), b"x" * 200) is None


# -- the service --------------------------------------------------------------------------------------------------


async def test_the_service_retries_what_can_be_retried_then_the_rows_land() -> None:
    metrics = Metrics()
    client = ScriptedUploader(
        UploadError("transient", "503 Service Unavailable", status=503),
        UploadError("throttled", "429", status=429, retry_after=0.02),
        UploadError("unauthorized", "403 Forbidden", status=403),
    )
    service = UploadService(client, QUICK, SinkEvents(metrics))
    batch = batch_of(5)
    assert await service.send(batch, gzip_array(batch.body)) is None
    assert len(client.request_ids) == 4 and len(set(client.request_ids)) == 4  # a request id per attempt
    assert client.requests == [(DEST, [json.loads(row) for row in batch.rows])]
    assert service.throttled_until > 0
    for reason in ("transient", "throttled", "unauthorized"):
        assert sample(metrics, "ingestor_retries_total", destination="DeviceInfo_CL", reason=reason) == 1
    assert sample(metrics, "ingestor_accepted_events_total", table="DeviceInfo", retention_tag="default",
                  destination="DeviceInfo_CL") == 5  # fmt: skip


@pytest.mark.parametrize(
    ("error", "rows", "decision"),
    [
        (UploadError("too_large", "413", status=413), 4, Decision("split", "too_large")),
        (UploadError("bad_request", "400", status=400), 4, Decision("bisect", "bad_request")),
        (UploadError("bad_request", "400", status=400), 1, Decision("dead_letter", "rejected_by_service")),
    ],
)
async def test_what_a_retry_cannot_help_is_handed_back_with_the_error(
    error: UploadError, rows: int, decision: Decision
) -> None:
    service = UploadService(ScriptedUploader(error), QUICK, SinkEvents(Metrics()))
    assert await service.send(batch_of(rows), b"payload") == Undelivered(decision, error)


# -- the outcome events -------------------------------------------------------------------------------------------


@pytest.fixture
def sink_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger="ingestor.sinks.events"):
        yield caplog


def test_a_silent_network_is_one_line_per_change_not_one_per_attempt(sink_logs: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    events = SinkEvents(metrics)
    silent = UploadError("transient", "connection failed: ClientConnectorError: refused")
    batch = batch_of(2)
    for attempt in range(5):
        events.retrying(batch, silent, Decision("retry", "transient", 0.01), f"r{attempt}", attempt)
    assert not events.health.unanswered.authorized and sample(metrics, "ingestor_sink_reachable") == 0
    events.answered(batch, "2xx", 0.01)
    events.landed(batch, 10)
    assert events.health.unanswered.authorized and sample(metrics, "ingestor_sink_reachable") == 1
    messages = [record.getMessage() for record in sink_logs.records]
    assert [m.split(";")[0] for m in messages] == [
        "Logs Ingestion API not reachable",
        "Logs Ingestion API reachable again",
    ]


def test_a_5xx_is_one_line_per_attempt_and_a_refusal_one_per_change(sink_logs: pytest.LogCaptureFixture) -> None:
    events = SinkEvents(Metrics())
    batch = batch_of(2)
    for attempt in range(2):
        events.retrying(batch, UploadError("transient", "503", status=503), QUICK.decide(
            UploadError("transient", "503", status=503), attempt, 2), f"a{attempt}", attempt)  # fmt: skip
    refused = UploadError("unauthorized", "403 Forbidden", status=403)
    for attempt in range(3):
        events.retrying(batch, refused, QUICK.decide(refused, attempt, 2), f"b{attempt}", attempt)
    assert [r.getMessage() for r in sink_logs.records].count("upload failed; retrying") == 2
    assert [r.levelname for r in sink_logs.records if r.getMessage().startswith("Logs Ingestion API refused")] == [
        "ERROR"
    ]
    assert events.health.problem == "DeviceInfo_CL: 403 403 Forbidden"


def test_the_wait_is_under_way_only_while_it_lasts_and_dead_letters_are_counted(
    sink_logs: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    events = SinkEvents(metrics)
    batch = batch_of(3)
    with events.waiting(batch, 7.5):
        assert sample(metrics, "ingestor_retry_waiting_seconds", destination="DeviceInfo_CL") == 7.5
    assert sample(metrics, "ingestor_retry_waiting_seconds", destination="DeviceInfo_CL") == 0
    events.dead_lettered(batch, "oversized_row", "row is 2000 bytes compressed")
    assert sample(metrics, "ingestor_dead_lettered_events_total", table="DeviceInfo", reason="oversized_row") == 3
    (line,) = [r for r in sink_logs.records if r.getMessage() == "rows dead-lettered"]
    assert line.__dict__["rows"] == 3 and line.__dict__["reason"] == "oversized_row"
