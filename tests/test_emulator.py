"""The Logs Ingestion API emulator over real HTTPS, driven by the azure-monitor-ingestion async client."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import random
import signal
import sqlite3
import ssl
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.monitor.ingestion.aio import LogsIngestionClient
from cryptography import x509
from docblocks import fenced_blocks

from ingestor.config import Config, parse_config
from ingestor.models import Destination
from ingestor.pipeline.decode import MessageDecoder
from ingestor.provision.template import build_template
from ingestor.tables import default_stream_name, default_table_name, load_schemas
from ingestor_tools.emulator import (
    DEFAULT_RULE_ID,
    MAX_BODY_BYTES,
    TOKEN_ENV,
    DcrDefinition,
    Emulator,
    Faults,
    default_dcr,
    run,
)
from ingestor_tools.emulator.dcr import template_dcrs
from ingestor_tools.emulator.payload import RESERVED_COLUMNS, value_matches
from ingestor_tools.generate import DEFAULT_MIX, TrafficGenerator

TOKEN = "emulator-test-token-5f1c"
STREAM = "Custom-DeviceEvents_CL"
TABLE = "DeviceEvents_CL"
BIG_REPORT_ID = 639199803770463703  # beyond 2**53: a float round trip would corrupt it
REPO = Path(__file__).resolve().parent.parent


class StaticTokenCredential:
    """An azure-core async credential handing out a fixed token and remembering the scopes asked for."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.scopes: list[str] = []

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)

    async def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        self.scopes.extend(scopes)
        return AccessTokenInfo(self.token, int(time.time()) + 3600)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> StaticTokenCredential:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pass


def event_row(report_id: int = BIG_REPORT_ID, **overrides: Any) -> dict[str, Any]:
    row = {
        "Timestamp": "2025-01-02T03:04:05.1234567Z",
        "DeviceName": "host-1.contoso.com",
        "ActionType": "ProcessCreated",
        "RemotePort": 443,
        "ReportId": report_id,
        "IsProcessRemoteSession": False,
        "AdditionalFields": {"nested": [1, "two", None], "big": BIG_REPORT_ID},
        "InitiatingProcessCreationTime": "2025-01-02T03:04:05+02:00",
        "FileSize": None,
    }
    return {**row, **overrides}


def gzipped(rows: object) -> bytes:
    return gzip.compress(json.dumps(rows).encode())


def make_client(emulator: Emulator, token: str = TOKEN) -> LogsIngestionClient:
    return LogsIngestionClient(
        emulator.endpoint, StaticTokenCredential(token), connection_verify=str(emulator.ca_file), retry_total=0
    )


async def upload(
    client: LogsIngestionClient, body: bytes, stream: str = STREAM, rule_id: str = DEFAULT_RULE_ID, **kw: Any
) -> None:
    await client.upload(rule_id, stream, io.BytesIO(body), **kw)


def db_query(emulator: Emulator, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(emulator.db_path) as db:
        return db.execute(sql, params).fetchall()


@pytest.fixture
async def emulator(tmp_path: Path) -> AsyncIterator[Emulator]:
    async with Emulator(tmp_path / "state", token=TOKEN) as emu:
        yield emu


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[LogsIngestionClient]:
    async with make_client(emulator) as c:
        yield c


async def admin(emulator: Emulator, method: str, path: str, body: object = None) -> tuple[int, Any]:
    context = ssl.create_default_context(cafile=str(emulator.ca_file))
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{emulator.endpoint}{path}", json=body, ssl=context) as response,
    ):
        return response.status, await response.json()


@pytest.mark.emulator
async def test_accepted_rows_are_stored_exactly(emulator: Emulator) -> None:
    credential = StaticTokenCredential(TOKEN)
    rows = [event_row(), event_row(report_id=-(2**63), DeviceName="host-2")]
    body = gzipped(rows)
    async with LogsIngestionClient(
        emulator.endpoint, credential, connection_verify=str(emulator.ca_file), retry_total=0
    ) as client:
        await upload(client, body, request_id="req-0001")

    assert emulator.rows(TABLE) == rows
    assert credential.scopes == ["https://monitor.azure.com/.default"]
    assert db_query(emulator, "SELECT json_extract(row, '$.ReportId'), table_name, stream, request_id FROM rows") == [
        (BIG_REPORT_ID, TABLE, STREAM, "req-0001"),
        (-(2**63), TABLE, STREAM, "req-0001"),
    ]
    assert db_query(emulator, "SELECT status, body_bytes, rows, request_id, error_code FROM requests") == [
        (204, len(body), 2, "req-0001", None)
    ]
    stats = emulator.stats()
    assert stats["requests"] == {"204": 1}
    assert stats["rows_total"] == 2
    assert stats["streams"] == {STREAM: {"requests": 1, "rows": 2, "body_bytes": len(body)}}


@pytest.mark.emulator
async def test_sdk_list_upload_and_plain_json_body_are_accepted(
    emulator: Emulator, client: LogsIngestionClient
) -> None:
    await client.upload(DEFAULT_RULE_ID, STREAM, [event_row(report_id=1), event_row(report_id=2)])
    await upload(client, json.dumps([event_row(report_id=3)]).encode())  # no gzip magic: sent as-is

    assert [row["ReportId"] for row in emulator.rows(TABLE)] == [1, 2, 3]


@pytest.mark.emulator
async def test_wrong_token_is_401(emulator: Emulator) -> None:
    async with make_client(emulator, token="not-the-token") as client:
        with pytest.raises(ClientAuthenticationError) as caught:
            await upload(client, gzipped([event_row()]))

    assert caught.value.status_code == 401
    assert caught.value.response.headers["x-ms-error-code"] == "InvalidToken"
    assert emulator.rows(TABLE) == []
    assert db_query(emulator, "SELECT status, error_code FROM requests") == [(401, "InvalidToken")]


@pytest.mark.emulator
@pytest.mark.parametrize(
    ("rule_id", "stream", "code"),
    [
        (DEFAULT_RULE_ID, "Custom-NoSuchTable_CL", "InvalidStream"),
        ("dcr-ffffffffffffffffffffffffffffffff", STREAM, "DataCollectionRuleNotFound"),
    ],
)
async def test_unknown_rule_or_stream_is_404(
    emulator: Emulator, client: LogsIngestionClient, rule_id: str, stream: str, code: str
) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        await upload(client, gzipped([event_row()]), stream=stream, rule_id=rule_id)

    assert caught.value.status_code == 404
    assert caught.value.error is not None
    assert caught.value.error.code == code
    assert emulator.stats()["requests"] == {"404": 1}


def gzip_around_limit() -> tuple[bytes, bytes]:
    """Two incompressible one-row gzip bodies: the largest at most MAX_BODY_BYTES and one just over it."""
    noise = random.Random(7).randbytes(MAX_BODY_BYTES).hex()

    def body(chars: int) -> bytes:
        return gzip.compress(json.dumps([event_row(DeviceName=noise[:chars])]).encode(), compresslevel=1)

    low, high = 0, len(noise)  # invariant: body(low) fits, body(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if len(body(middle)) <= MAX_BODY_BYTES else (low, middle)
    return body(low), body(high)


@pytest.mark.emulator
async def test_body_over_one_mebibyte_after_gzip_is_413(emulator: Emulator, client: LogsIngestionClient) -> None:
    under, over = gzip_around_limit()
    assert len(under) > MAX_BODY_BYTES - 1024
    assert len(over) > MAX_BODY_BYTES

    with pytest.raises(HttpResponseError) as caught:
        await upload(client, over)
    await upload(client, under)

    assert caught.value.status_code == 413
    assert caught.value.error is not None
    assert caught.value.error.code == "ContentLengthLimitExceeded"
    assert f"Provided content length: {len(over)} bytes" in caught.value.error.message
    assert caught.value.response.headers["x-ms-error-code"] == "ContentLengthLimitExceeded"
    assert len(emulator.rows(TABLE)) == 1
    assert emulator.stats()["requests"] == {"413": 1, "204": 1}


@pytest.mark.emulator
@pytest.mark.parametrize(
    ("change", "column", "code"),
    [
        ({"NoSuchColumn": "x"}, "NoSuchColumn", "InvalidColumn"),
        ({"ReportId": "639199803770463703"}, "ReportId", "InvalidColumnType"),
        ({"IsProcessRemoteSession": 1}, "IsProcessRemoteSession", "InvalidColumnType"),
        ({"RemotePort": 2**31}, "RemotePort", "InvalidColumnType"),
        ({"Timestamp": "2025-01-02 03:04:05"}, "Timestamp", "InvalidColumnType"),
        ({"TenantId": "00000000-0000-0000-0000-000000000000"}, "TenantId", "ReservedColumn"),
    ],
)
async def test_row_not_matching_the_stream_is_400_naming_row_and_column(
    emulator: Emulator, client: LogsIngestionClient, change: dict[str, Any], column: str, code: str
) -> None:
    with pytest.raises(HttpResponseError) as caught:
        await upload(client, gzipped([event_row(), event_row(**change), event_row()]))

    error = caught.value.error
    assert caught.value.status_code == 400
    assert error is not None
    assert error.code == code
    assert f"Row 1: column '{column}'" in error.message
    assert error.details[0].target == f"$[1].{column}"
    assert emulator.rows(TABLE) == []


@pytest.mark.emulator
async def test_columns_a_table_cannot_hold_are_accepted_from_the_stream_and_stored_renamed(
    emulator: Emulator, client: LogsIngestionClient
) -> None:
    """The default DCR renames as provision's data flows do (`source | project-rename Type_ = Type, ...`)."""
    row = {"Timestamp": "2025-01-02T03:04:05Z", "Type": "User", "TenantId": "t", "AccountUpn": "a@contoso.com"}
    await upload(client, gzipped([row]), stream=default_stream_name("IdentityInfo"))
    (stored,) = emulator.rows(default_table_name("IdentityInfo"))
    assert stored == {"Timestamp": row["Timestamp"], "Type_": "User", "TenantId_": "t", "AccountUpn": "a@contoso.com"}
    assert default_dcr("dcr-x").renames[default_stream_name("AlertInfo")] == {"Title": "Title_"}


@pytest.mark.emulator
@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"\x1f\x8b\x08\x00corrupt gzip stream", "InvalidContentEncoding"),
        (gzip.compress(b'{"ReportId": 1}'), "InvalidPayload"),
        (gzip.compress(b"[1, 2]"), "InvalidPayload"),
        (b"[{]", "InvalidPayload"),
    ],
)
async def test_body_that_is_not_a_gzip_json_array_of_objects_is_400(
    emulator: Emulator, client: LogsIngestionClient, body: bytes, code: str
) -> None:
    with pytest.raises(HttpResponseError) as caught:
        await upload(client, body)

    assert caught.value.status_code == 400
    assert caught.value.response.headers["x-ms-error-code"] == code


@pytest.mark.emulator
async def test_custom_dcr_streams_check_int_real_and_guid(tmp_path: Path) -> None:
    dcr = DcrDefinition(
        immutable_id="dcr-custom",
        streams={"Custom-Probe": (("Id", "guid"), ("Score", "real"), ("Count", "int"))},
        output_tables={"Custom-Probe": "Probe_CL"},
    )
    good = {"Id": "0f8fad5b-d9cb-469f-a165-70867728950e", "Score": 1, "Count": -5}
    async with Emulator(tmp_path, token=TOKEN, dcrs=[dcr]) as emulator, make_client(emulator) as client:
        await upload(client, gzipped([good, {**good, "Score": 2.5}]), stream="Custom-Probe", rule_id="dcr-custom")
        with pytest.raises(HttpResponseError) as caught:
            await upload(client, gzipped([{**good, "Id": "not-a-guid"}]), stream="Custom-Probe", rule_id="dcr-custom")
        with pytest.raises(ResourceNotFoundError):
            await upload(client, gzipped([good]), stream=STREAM)  # the default DCR is not served

        assert [row["Score"] for row in emulator.rows("Probe_CL")] == [1, 2.5]
    assert caught.value.error is not None
    assert "Row 0: column 'Id'" in caught.value.error.message


@pytest.mark.emulator
async def test_fail_next_answers_listed_statuses_in_order(emulator: Emulator, client: LogsIngestionClient) -> None:
    emulator.update_faults({"fail_next": [429, 503], "retry_after_secs": 7})

    with pytest.raises(HttpResponseError) as throttled:
        await upload(client, gzipped([event_row()]))
    with pytest.raises(HttpResponseError) as unavailable:
        await upload(client, gzipped([event_row()]))
    await upload(client, gzipped([event_row()]))

    assert throttled.value.status_code == 429
    assert throttled.value.response.headers["Retry-After"] == "7"
    assert unavailable.value.status_code == 503
    assert unavailable.value.response.headers["x-ms-error-code"] == "ServiceUnavailable"
    assert emulator.stats()["requests"] == {"429": 1, "503": 1, "204": 1}
    assert len(emulator.rows(TABLE)) == 1


@pytest.mark.emulator
async def test_fail_always_answers_every_request_until_cleared(emulator: Emulator, client: LogsIngestionClient) -> None:
    emulator.update_faults({"fail_next": [503], "fail_always": 403})
    statuses = []
    for _ in range(3):
        with pytest.raises(HttpResponseError) as refused:
            await upload(client, gzipped([event_row()]))
        statuses.append(refused.value.status_code)
    emulator.update_faults({"fail_always": None})
    await upload(client, gzipped([event_row()]))

    assert statuses == [503, 403, 403]
    assert emulator.stats()["requests"] == {"503": 1, "403": 2, "204": 1}
    assert len(emulator.rows(TABLE)) == 1


@pytest.mark.emulator
async def test_fail_5xx_rate_answers_the_configured_status(tmp_path: Path) -> None:
    faults = Faults(fail_5xx_rate=1.0, fail_5xx_status=500)
    async with Emulator(tmp_path, token=TOKEN, faults=faults) as emulator, make_client(emulator) as client:
        with pytest.raises(HttpResponseError) as caught:
            await upload(client, gzipped([event_row()]))
        emulator.update_faults({"fail_5xx_rate": 0.0})
        await upload(client, gzipped([event_row()]))

        assert caught.value.status_code == 500
        assert emulator.stats()["requests"] == {"500": 1, "204": 1}


@pytest.mark.emulator
async def test_random_faults_follow_the_seed(tmp_path: Path) -> None:
    async def statuses(state_dir: Path) -> list[int]:
        faults = Faults(fail_429_rate=0.5, seed=42)
        async with Emulator(state_dir, token=TOKEN, faults=faults) as emulator, make_client(emulator) as client:
            seen = []
            for _ in range(12):
                try:
                    await upload(client, gzipped([event_row()]))
                    seen.append(204)
                except HttpResponseError as exc:
                    seen.append(exc.status_code or 0)
            return seen

    first, second = await statuses(tmp_path / "a"), await statuses(tmp_path / "b")
    assert first == second
    assert set(first) == {204, 429}


@pytest.mark.emulator
async def test_latency_delays_the_answer(emulator: Emulator, client: LogsIngestionClient) -> None:
    await upload(client, gzipped([event_row()]))  # connection set up outside the measurement
    emulator.update_faults({"latency_ms": 300})

    started = time.monotonic()
    await upload(client, gzipped([event_row()]))

    assert time.monotonic() - started >= 0.3


@pytest.mark.emulator
async def test_dropped_connection_raises_a_connection_error(emulator: Emulator, client: LogsIngestionClient) -> None:
    emulator.update_faults({"drop_connection_rate": 1.0})

    with pytest.raises((ServiceRequestError, ServiceResponseError)):
        await upload(client, gzipped([event_row()]))

    assert emulator.stats()["requests"] == {"dropped": 1}
    assert db_query(emulator, "SELECT status, error_code FROM requests") == [(None, "ConnectionDropped")]
    assert emulator.rows(TABLE) == []


@pytest.mark.emulator
async def test_admin_endpoints_set_faults_report_stats_and_reset(
    emulator: Emulator, client: LogsIngestionClient
) -> None:
    status, faults = await admin(emulator, "POST", "/_emulator/faults", {"fail_next": [503]})
    assert (status, faults["fail_next"]) == (200, [503])
    status, error = await admin(emulator, "POST", "/_emulator/faults", {"fail_429_rate": 2})
    assert status == 400
    assert "fail_429_rate" in error["error"]["message"]

    with pytest.raises(HttpResponseError):
        await upload(client, gzipped([event_row()]))
    await upload(client, gzipped([event_row(), event_row()]))

    status, stats = await admin(emulator, "GET", "/_emulator/stats")
    assert status == 200
    assert stats["requests"] == {"503": 1, "204": 1}
    assert stats["rows_total"] == 2
    status, stats = await admin(emulator, "POST", "/_emulator/reset")
    assert (status, stats["requests"], stats["rows_total"]) == (200, {}, 0)
    assert emulator.rows(TABLE) == []
    assert db_query(emulator, "SELECT count(*) FROM requests") == [(0,)]


@pytest.mark.emulator
async def test_count_mode_counts_rows_without_storing_or_checking_columns(tmp_path: Path) -> None:
    body = gzipped([event_row(), event_row(NoSuchColumn=1), event_row()])
    async with Emulator(tmp_path, token=TOKEN, mode="count") as emulator, make_client(emulator) as client:
        await upload(client, body)
        with pytest.raises(HttpResponseError) as corrupt:
            await upload(client, b"\x1f\x8b\x08\x00not gzip at all")
        async with make_client(emulator, token="wrong") as intruder:
            with pytest.raises(ClientAuthenticationError):
                await upload(intruder, body)

        stats = emulator.stats()
        assert stats["streams"] == {STREAM: {"requests": 1, "rows": 3, "body_bytes": len(body)}}
        assert stats["requests"] == {"204": 1, "400": 1, "401": 1}
        assert emulator.rows(TABLE) == []
        assert db_query(emulator, "SELECT count(*) FROM rows") == [(0,)]
    assert corrupt.value.status_code == 400


@pytest.mark.emulator
async def test_certificate_is_a_localhost_trust_anchor_and_is_reused(tmp_path: Path) -> None:
    async with Emulator(tmp_path, token=TOKEN) as emulator:
        pem = emulator.ca_file.read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = cert.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(days=364) < lifetime <= timedelta(days=365)

    async with Emulator(tmp_path, token=TOKEN) as emulator:
        assert emulator.ca_file.read_bytes() == pem
    (tmp_path / "cert.pem").write_text("garbage")
    async with Emulator(tmp_path, token=TOKEN) as emulator, make_client(emulator) as client:
        await upload(client, gzipped([event_row()]))
        assert emulator.ca_file.read_bytes() != pem


def test_default_dcr_declares_every_schema_table() -> None:
    dcr = default_dcr("dcr-x")
    schemas = load_schemas()

    assert dcr.immutable_id == "dcr-x"
    assert dcr.output_tables == {default_stream_name(t): default_table_name(t) for t in schemas}
    for table, schema in schemas.items():
        # every schema column, and UnmappedColumns: the default configuration keeps unknown columns there
        expected = (*((c.name, c.type) for c in schema.columns), ("UnmappedColumns", "dynamic"))
        assert dcr.streams[default_stream_name(table)] == expected
    with pytest.raises(ValueError, match="without an output table"):
        DcrDefinition("dcr-y", streams={"Custom-A": (("A", "string"),)}, output_tables={})


@pytest.mark.parametrize(
    ("column_type", "value", "ok"),
    [
        ("string", "x", True),
        ("string", 1, False),
        ("int", 2**31 - 1, True),
        ("int", -(2**31) - 1, False),
        ("int", True, False),
        ("long", 2**63 - 1, True),
        ("long", 2**63, False),
        ("long", 1.0, False),
        ("real", 1, True),
        ("real", 1.5, True),
        ("real", False, False),
        ("boolean", True, True),
        ("boolean", 0, False),
        ("datetime", "2025-01-02T03:04:05Z", True),
        ("datetime", "2025-01-02T03:04:05.1234567-05:30", True),
        ("datetime", "2025-01-02T03:04:05.12345678Z", False),
        ("datetime", "2025-02-30T03:04:05Z", False),
        ("datetime", "2025-01-02T03:04:05", False),
        ("guid", "0F8FAD5B-D9CB-469F-A165-70867728950E", True),
        ("guid", "{0f8fad5b-d9cb-469f-a165-70867728950e}", False),
        ("dynamic", {"a": [1]}, True),
        ("boolean", None, True),
    ],
)
def test_value_types(column_type: str, value: object, ok: bool) -> None:
    assert value_matches(column_type, value) is ok


def test_faults_reject_bad_knobs() -> None:
    with pytest.raises(ValueError, match="unknown fault knobs"):
        Faults().merged({"fail_rate": 1})
    with pytest.raises(ValueError, match="fail_next"):
        Faults().merged({"fail_next": [200]})
    assert Faults().merged({"fail_next": [429]}).fail_next == [429]
    with pytest.raises(ValueError, match="fail_always"):
        Faults().merged({"fail_always": 204})


def test_cli_requires_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)

    with pytest.raises(SystemExit) as caught:
        run(["--state-dir", str(tmp_path)])

    assert caught.value.code == 2
    assert f"--token is required (or set {TOKEN_ENV})" in capsys.readouterr().err


async def wait_for_file(path: Path, process: asyncio.subprocess.Process) -> dict[str, Any]:
    """Poll for the readiness file the emulator writes once it listens."""
    while not await asyncio.to_thread(path.exists):
        assert process.returncode is None, "the emulator exited before becoming ready"
        await asyncio.sleep(0.05)
    return dict(json.loads(await asyncio.to_thread(path.read_text)))


@pytest.mark.emulator
@pytest.mark.process
async def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    env = {**os.environ, "PYTHONPATH": str(REPO), TOKEN_ENV: TOKEN}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "ingestor_tools.emulator", "--state-dir", str(state_dir), "--fail-next", "429"),
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(60):
            info = await wait_for_file(state_dir / "emulator.json", process)
        credential = StaticTokenCredential(TOKEN)
        async with LogsIngestionClient(
            info["endpoint"], credential, connection_verify=info["ca_file"], retry_total=0
        ) as client:
            with pytest.raises(HttpResponseError) as throttled:
                await client.upload(DEFAULT_RULE_ID, STREAM, io.BytesIO(gzipped([event_row()])))
            await client.upload(DEFAULT_RULE_ID, STREAM, io.BytesIO(gzipped([event_row()])))
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            _, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert process.returncode == 0
    assert throttled.value.status_code == 429
    assert info["pid"] == process.pid
    assert info["endpoint"] == f"https://127.0.0.1:{info['port']}"
    assert info["db_path"] == str(state_dir / "emulator.db")
    with sqlite3.connect(info["db_path"]) as db:
        assert db.execute("SELECT json_extract(row, '$.ReportId') FROM rows").fetchall() == [(BIG_REPORT_ID,)]
    log = stderr.decode()
    assert TOKEN not in log
    events = [json.loads(line) for line in log.splitlines()]
    assert [e["event"] for e in events] == ["listening", "stopped"]
    assert events[0]["endpoint"] == info["endpoint"]
    assert not (state_dir / "emulator.json").exists()


# -- every table, over the several DCRs a provisioned template declares ---------------------------------------------


def worked_example() -> Config:
    """docs/retention.md's worked example: 22 tables in two classes, more than one DCR holds."""
    (block,) = [b for b in fenced_blocks(REPO / "docs" / "retention.md") if b.headings[-1:] == ("Worked example",)]
    return parse_config(
        {
            "source": {"bootstrap_servers": ["k:9092"], "topics": ["defender"], "group_id": "g"},
            "sink": {"endpoint": "https://x.example", "rule_id": "dcr-" + "0" * 32},
            "dead_letter": {"path": "/tmp/dl"},
            "retention": yaml.safe_load(block.text)["retention"],
        }
    )


def rows_of_every_table(config: Config) -> list[tuple[Destination, dict[str, Any]]]:
    """One generated record of each table, as the ingestor shapes it for its destination in `config`."""
    generator = TrafficGenerator(seed=5, mix=DEFAULT_MIX)
    decoder = MessageDecoder(config.table_schemas(), routes=config.routes())
    out = []
    for table in sorted(load_schemas()):
        (row,) = decoder.decode(json.dumps({"records": [generator.record(table)]}).encode()).rows
        out.append((row.destination, json.loads(row.body)))
    return out


@pytest.mark.emulator
async def test_a_provisioned_template_serves_every_table_over_several_dcrs(tmp_path: Path) -> None:
    config = worked_example()
    dcrs = template_dcrs(build_template(config))
    by_stream = {stream: dcr for dcr in dcrs for stream in dcr.streams}
    assert len(dcrs) >= 3, "22 tables of one class need more than one DCR"
    assert all(len(dcr.streams) <= 10 and len(dcr.output_tables) <= 10 for dcr in dcrs), "a DCR's limits"
    assert len(by_stream) == sum(len(dcr.streams) for dcr in dcrs), "each stream in one DCR"
    rows = rows_of_every_table(config)
    assert {d.table for d, _ in rows} == set(load_schemas())
    async with Emulator(tmp_path, token=TOKEN, dcrs=dcrs) as emulator, make_client(emulator) as client:
        for destination, row in rows:
            dcr = by_stream[destination.stream]
            declared = dict(dcr.streams[destination.stream])
            assert set(row) <= set(declared), f"{destination.table}: sends columns its stream does not declare"
            # How a column a custom table cannot hold (IdentityInfo's Type) is stored is provisioning's: its data
            # flow renames it. The rest of the row lands as sent, in the table behind the stream.
            sent = {k: v for k, v in row.items() if k not in RESERVED_COLUMNS}
            await upload(client, gzipped([sent]), stream=destination.stream, rule_id=dcr.immutable_id)
            (stored,) = emulator.rows(destination.table_name)
            assert {k: stored.get(k, stored.get(f"{k}_")) for k in sent} == sent, destination.table
    assert len({d.table_name for d, _ in rows}) == len(rows)


@pytest.mark.emulator
async def test_the_stream_and_column_checks_hold_for_the_new_tables(tmp_path: Path) -> None:
    config = worked_example()
    dcrs = template_dcrs(build_template(config))
    by_stream = {stream: dcr for dcr in dcrs for stream in dcr.streams}
    rows = [  # without the columns provisioning renames (see the test above)
        (d, {k: v for k, v in r.items() if k not in RESERVED_COLUMNS})
        for d, r in rows_of_every_table(config)
        if not d.table.startswith("Device")
    ]
    assert len(rows) == 12
    async with Emulator(tmp_path, token=TOKEN, dcrs=dcrs) as emulator, make_client(emulator) as client:
        for (destination, row), (other, _) in zip(rows, rows[1:] + rows[:1], strict=True):
            dcr = by_stream[destination.stream]
            declared = dict(dcr.streams[destination.stream])
            typed = next(c for c, t in declared.items() if t in ("int", "long", "boolean", "datetime") and c in row)
            string = next(c for c, t in declared.items() if t == "string" and c in row)
            column_only_elsewhere = next(
                c for c, _ in by_stream[other.stream].streams[other.stream] if c not in declared
            )
            for change, column, code in (
                ({typed: "not a value of its type"}, typed, "InvalidColumnType"),
                ({string: 12}, string, "InvalidColumnType"),
                ({column_only_elsewhere: "x"}, column_only_elsewhere, "InvalidColumn"),
            ):
                with pytest.raises(HttpResponseError) as caught:
                    await upload(client, gzipped([row | change]), stream=destination.stream, rule_id=dcr.immutable_id)
                error = caught.value.error
                assert caught.value.status_code == 400 and error is not None, destination.table
                assert error.code == code and f"column '{column}'" in error.message, (destination.table, column)
            other_dcr = by_stream[other.stream]
            if other_dcr is not dcr:  # a stream is served only by the DCR that declares it
                with pytest.raises(ResourceNotFoundError):
                    await upload(client, gzipped([row]), stream=destination.stream, rule_id=other_dcr.immutable_id)
        assert emulator.stats()["rows_total"] == 0
