"""`Emulator`: an HTTPS Logs Ingestion API (`POST /dataCollectionRules/{ruleId}/streams/{stream}`) that checks
requests like the real service (Auxiliary tables' time-span and TimeGenerated rules included), records them in
SQLite, and injects faults; plus loopback-only `/_emulator/` admin endpoints for stats, fault knobs and reset.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import msgspec
from aiohttp import web

from ingestor_tools.emulator.certs import CERT_FILE, ensure_certificate, server_ssl_context
from ingestor_tools.emulator.dcr import DEFAULT_RULE_ID, DcrDefinition, default_dcr
from ingestor_tools.emulator.faults import DROP, FaultInjector, Faults
from ingestor_tools.emulator.payload import (
    MAX_BODY_BYTES,
    ApiError,
    check_auxiliary_rows,
    check_rows,
    content_too_large,
    count_rows,
    decode_rows,
    decompress,
)
from ingestor_tools.emulator.store import RequestRecord, Store

Mode = Literal["store", "count"]
DB_FILE = "emulator.db"
API_VERSIONS = frozenset({"2023-01-01", "2021-11-01-preview"})
# Bodies up to this size are read (and answered 413 if over MAX_BODY_BYTES); bigger ones are not buffered.
READ_LIMIT = 64 * MAX_BODY_BYTES
INGEST_PATH = "/dataCollectionRules/{rule_id}/streams/{stream}"


@dataclass(frozen=True, slots=True)
class _Stream:
    name: str
    table_name: str
    columns: dict[str, str]
    plan: str = "Analytics"
    # column sent -> column the table stores it as (the data flow's `project-rename`)
    renames: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Accepted:
    stream: _Stream
    row_count: int
    rows: list[str] = field(default_factory=list)  # compact JSON per row; empty in count mode


@dataclass(slots=True)
class _StreamStats:
    requests: int = 0
    rows: int = 0
    body_bytes: int = 0


class _DropConnection(Exception):
    """The request is to be answered by closing the connection."""


class Emulator:
    """The Logs Ingestion API emulator; `async with Emulator(...) as emulator:` or `start()`/`stop()`."""

    def __init__(
        self,
        state_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str,
        dcrs: list[DcrDefinition] | None = None,
        mode: Mode = "store",
        faults: Faults | None = None,
    ) -> None:
        if mode not in ("store", "count"):
            raise ValueError(f"mode must be 'store' or 'count', not {mode!r}")
        if not token:
            raise ValueError("token must not be empty")
        self.state_dir = Path(state_dir)
        self.host, self.mode = host, mode
        self._requested_port = port
        self._credential = token.encode()
        dcrs = dcrs if dcrs is not None else [default_dcr(DEFAULT_RULE_ID)]
        self._rule_ids = {dcr.immutable_id for dcr in dcrs}
        self._streams = {
            (dcr.immutable_id, name): _Stream(
                name,
                dcr.output_tables[name],
                dict(columns),
                dcr.table_plans.get(dcr.output_tables[name], "Analytics"),
                dcr.renames.get(name, {}),
            )
            for dcr in dcrs
            for name, columns in dcr.streams.items()
        }
        self._injector = FaultInjector(faults or Faults())
        self._runner: web.AppRunner | None = None
        self._store: Store | None = None
        self._port: int | None = None
        self._by_status: Counter[str] = Counter()
        self._by_stream: defaultdict[str, _StreamStats] = defaultdict(_StreamStats)

    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = ensure_certificate(self.state_dir)
        self._store = Store(self.db_path)
        app = web.Application(client_max_size=READ_LIMIT)
        app.router.add_post(INGEST_PATH, self._ingest)
        app.router.add_get("/_emulator/stats", self._admin_stats)
        app.router.add_post("/_emulator/faults", self._admin_faults)
        app.router.add_post("/_emulator/reset", self._admin_reset)
        # auto_decompress=False: the size limit applies to the body as sent, and gzip errors are ours to answer.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0, auto_decompress=False)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.host, self._requested_port, ssl_context=server_ssl_context(cert_path, key_path)
        )
        try:
            await site.start()
        except BaseException:
            await self.stop()
            raise
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._store is not None:
            self._store.close()
            self._store = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator is not started")
        return self._port

    @property
    def endpoint(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host  # noqa: S104
        return f"https://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def rule_ids(self) -> list[str]:
        return sorted(self._rule_ids)

    @property
    def ca_file(self) -> Path:
        return self.state_dir / CERT_FILE

    @property
    def db_path(self) -> Path:
        return self.state_dir / DB_FILE

    @property
    def faults(self) -> Faults:
        return self._injector.faults

    def update_faults(self, changes: Mapping[str, object]) -> Faults:
        """Merge knobs into the current ones (ValueError if invalid); `seed` restarts the random draws."""
        return self._injector.update(changes)

    def rows(self, table_name: str) -> list[dict[str, Any]]:
        return self._require_store().rows(table_name)

    def stats(self) -> dict[str, Any]:
        streams = {
            name: {"requests": s.requests, "rows": s.rows, "body_bytes": s.body_bytes}
            for name, s in self._by_stream.items()
        }
        return {
            "mode": self.mode,
            "requests": dict(self._by_status),
            "requests_total": self._by_status.total(),
            "rows_total": sum(s.rows for s in self._by_stream.values()),
            "streams": streams,
            "faults": self.faults.to_dict(),
        }

    def reset(self) -> None:
        """Forget counters, stored rows and recorded requests (the fault knobs stay)."""
        self._require_store().clear()
        self._by_status.clear()
        self._by_stream.clear()

    def _require_store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the emulator is not started")
        return self._store

    async def _ingest(self, request: web.Request) -> web.StreamResponse:
        received_at = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        rule_id, stream = request.match_info["rule_id"], request.match_info["stream"]
        request_id = request.headers.get("x-ms-client-request-id")
        body: bytes | None
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            body = None  # over READ_LIMIT: left unread, answered 413 unless an earlier check fails
        # Unread bodies are at least READ_LIMIT + 1 bytes; chunked ones have no Content-Length to quote.
        size = len(body) if body is not None else request.content_length or READ_LIMIT + 1
        response: web.Response | None = None  # None: drop the connection
        accepted: _Accepted | None = None
        try:
            accepted = self._process(request, rule_id, stream, body, size)
            response = web.Response(status=204)
        except ApiError as err:
            response = _error_response(err)
        except _DropConnection:
            pass
        record = RequestRecord(
            received_at=received_at,
            rule_id=rule_id,
            stream=stream,
            request_id=request_id,
            status=response.status if response is not None else None,
            body_bytes=size,
            rows=accepted.row_count if accepted is not None else 0,
            error_code=response.headers.get("x-ms-error-code") if response is not None else "ConnectionDropped",
        )
        self._record(record, accepted)
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        if response is None:
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)  # never delivered: writing to the aborted transport fails
        response.headers["x-ms-request-id"] = str(uuid.uuid4())
        if request_id is not None:
            response.headers["x-ms-client-request-id"] = request_id
        return response

    def _process(
        self, request: web.Request, rule_id: str, stream_name: str, body: bytes | None, size: int
    ) -> _Accepted:
        """The checks in the real service's order; raises ApiError or _DropConnection."""
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credential.encode("utf-8", "surrogateescape"), self._credential
        ):
            raise ApiError(401, "InvalidToken", "The bearer token in the Authorization header is missing or invalid.")
        if rule_id not in self._rule_ids:
            raise ApiError(404, "DataCollectionRuleNotFound", f"Data collection rule '{rule_id}' was not found.")
        stream = self._streams.get((rule_id, stream_name))
        if stream is None:
            raise ApiError(
                404,
                "InvalidStream",
                f"Stream '{stream_name}' is not declared in data collection rule '{rule_id}'.",
            )
        if request.query.get("api-version") not in API_VERSIONS:
            raise ApiError(400, "UnsupportedApiVersion", f"api-version must be one of {sorted(API_VERSIONS)}.")
        fault = self._injector.next_fault()
        if fault == DROP:
            raise _DropConnection
        if isinstance(fault, int):
            raise _fault_error(fault, self.faults.retry_after_secs)
        if body is None or size > MAX_BODY_BYTES:
            raise content_too_large(size)
        data = decompress(body, request.headers.get("Content-Encoding", ""))
        if self.mode == "count":
            return _Accepted(stream, count_rows(data))
        rows = decode_rows(data)
        check_rows(rows, stream.name, stream.columns)
        if stream.plan == "Auxiliary":
            check_auxiliary_rows(rows)
        if stream.renames:  # the data flow's transform: the rows land under the names the table stores
            rows = [{stream.renames.get(name, name): value for name, value in row.items()} for row in rows]
        return _Accepted(stream, len(rows), [msgspec.json.encode(row).decode() for row in rows])

    def _record(self, record: RequestRecord, accepted: _Accepted | None) -> None:
        self._by_status["dropped" if record.status is None else str(record.status)] += 1
        if accepted is None:
            self._require_store().record(record)
            return
        totals = self._by_stream[record.stream]
        totals.requests += 1
        totals.rows += accepted.row_count
        totals.body_bytes += record.body_bytes
        self._require_store().record(record, accepted.stream.table_name, accepted.rows)

    async def _admin_stats(self, request: web.Request) -> web.Response:
        _require_loopback(request)
        return web.json_response(self.stats())

    async def _admin_faults(self, request: web.Request) -> web.Response:
        _require_loopback(request)
        try:
            changes = msgspec.json.decode(await request.read(), type=dict[str, Any])
            faults = self.update_faults(changes)
        except (msgspec.DecodeError, ValueError) as exc:
            return _error_response(ApiError(400, "InvalidFaults", str(exc)))
        return web.json_response(faults.to_dict())

    async def _admin_reset(self, request: web.Request) -> web.Response:
        _require_loopback(request)
        self.reset()
        return web.json_response(self.stats())


def _error_response(error: ApiError) -> web.Response:
    headers = {"x-ms-error-code": error.code, **error.headers}
    return web.json_response(error.body(), status=error.status, headers=headers)


def _fault_error(status: int, retry_after_secs: int) -> ApiError:
    if status == 429:
        return ApiError(
            429,
            "TooManyRequests",
            "Request rate is too high (injected fault).",
            headers={"Retry-After": str(retry_after_secs)},
        )
    code = {500: "InternalServerError", 503: "ServiceUnavailable"}.get(status, f"Http{status}")
    return ApiError(status, code, f"Injected fault: HTTP {status}.")


def _require_loopback(request: web.Request) -> None:
    try:
        loopback = request.remote is not None and ipaddress.ip_address(request.remote).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise web.HTTPForbidden(text="admin endpoints are loopback only")
