"""One request to the Logs Ingestion API through azure-monitor-ingestion's async client.

`LogsIngestionSink.send()` posts an already gzipped JSON array as-is (the SDK never re-serializes it), with an
`x-ms-client-request-id`, and raises UploadError classified for the delivery loop, with the exception it caught
(the SDK's, holding the response) as its `__cause__`. SDK retries are off: the delivery loop is the only, counted,
retry layer. A credential that gives no token (azure-identity's CredentialUnavailableError and
ClientAuthenticationError carry no status) is `unauthorized`, like a 401.
"""

from __future__ import annotations

import asyncio
import io
import logging
import ssl
import time
from types import TracebackType
from typing import Any

import aiohttp
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import AioHttpTransport
from azure.identity.aio import DefaultAzureCredential
from azure.monitor.ingestion.aio import LogsIngestionClient

from ingestor.config import LogsIngestionSinkConfig
from ingestor.errors import UploadError
from ingestor.models import Destination

log = logging.getLogger(__name__)
MONITOR_SCOPE = "https://monitor.azure.com/.default"
# A TCP connection that takes longer than this is a network that drops packets (a firewall, a missing route).
CONNECT_TIMEOUT_SECS = 10.0


class StaticTokenCredential:
    """A fixed bearer token: for the local emulator only, never for Azure."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)

    async def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        return AccessTokenInfo(self._token, int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> StaticTokenCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __repr__(self) -> str:
        return "StaticTokenCredential(token=***)"


def build_ssl_context(config: LogsIngestionSinkConfig) -> ssl.SSLContext:
    """System trust store plus `ca_file`; verification off only when explicitly asked for."""
    context = ssl.create_default_context()
    if config.ca_file is not None:
        context.load_verify_locations(cafile=str(config.ca_file))
    if config.insecure_skip_tls_verify:
        log.warning("TLS verification to the Logs Ingestion endpoint is OFF (sink.insecure_skip_tls_verify)")
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class LogsIngestionSink:
    def __init__(self, config: LogsIngestionSinkConfig, *, credential: AsyncTokenCredential | None = None) -> None:
        """`credential`: the one to use instead of what `config.credential` names (it is closed with the sink)."""
        self._config = config
        self._credential: AsyncTokenCredential | StaticTokenCredential
        if credential is not None:
            self._credential = credential
        elif config.credential.type == "static_token":
            assert config.credential.token is not None  # checked by the config model
            self._credential = StaticTokenCredential(config.credential.token.get_secret_value())
        else:
            self._credential = DefaultAzureCredential()
        self._session: aiohttp.ClientSession | None = None
        self._client: LogsIngestionClient | None = None

    async def __aenter__(self) -> LogsIngestionSink:
        connector = aiohttp.TCPConnector(ssl=build_ssl_context(self._config), limit=self._config.upload_concurrency * 2)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        transport = AioHttpTransport(session=self._session, session_owner=False)
        self._client = LogsIngestionClient(
            self._config.endpoint,
            self._credential,
            transport=transport,
            retry_total=0,
            credential_scopes=[MONITOR_SCOPE],
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            await self._client.close()
        if self._session is not None:
            await self._session.close()
        await self._credential.close()

    async def send(self, destination: Destination, payload: bytes, request_id: str) -> None:
        """POST one gzipped body; returns on 204, raises UploadError otherwise."""
        assert self._client is not None, "use `async with LogsIngestionSink(...)`"
        timeout = self._config.request_timeout_secs
        try:
            async with asyncio.timeout(timeout):
                await self._client.upload(
                    destination.rule_id,
                    destination.stream,
                    io.BytesIO(payload),
                    request_id=request_id,
                    connection_timeout=min(timeout, CONNECT_TIMEOUT_SECS),
                    read_timeout=timeout,
                )
        # Each UploadError keeps the SDK's exception as its cause (the response, for whoever debugs). Log lines
        # carry str(error) only; a traceback that shows the cause shows its message, which holds no secret: the
        # token travels in a request header, and tracebacks print no attributes.
        except ClientAuthenticationError as exc:
            if exc.status_code is None:  # raised by the credential, before any request: no token
                raise UploadError("unauthorized", f"no token: {exc.__class__.__name__}: {exc}") from exc
            raise classify_response(exc) from exc
        except HttpResponseError as exc:
            raise classify_response(exc) from exc
        except (ServiceRequestError, ServiceResponseError, aiohttp.ClientError, OSError) as exc:
            raise UploadError("transient", f"connection failed: {exc.__class__.__name__}: {exc}") from exc
        except TimeoutError as exc:
            raise UploadError("transient", f"no response within {timeout:g}s (sink.request_timeout_secs)") from exc


def classify_response(exc: HttpResponseError) -> UploadError:
    status = exc.status_code or 0
    headers: Any = getattr(exc.response, "headers", None) or {}
    code = headers.get("x-ms-error-code") or (exc.error.code if exc.error else None)
    message = _service_message(exc)
    if status == 429:
        return UploadError("throttled", message, status=status, retry_after=_retry_after(headers), error_code=code)
    if status == 413:
        return UploadError("too_large", message, status=status, error_code=code)
    if status in (401, 403, 404):
        return UploadError("unauthorized", message, status=status, error_code=code)
    if status == 400:
        return UploadError("bad_request", message, status=status, error_code=code)
    return UploadError("transient", message, status=status, retry_after=_retry_after(headers), error_code=code)


def _service_message(exc: HttpResponseError) -> str:
    if exc.error is not None and exc.error.message:
        return f"{exc.status_code} {exc.error.code}: {exc.error.message}"
    return f"{exc.status_code} {exc.reason or ''}".strip()


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") or headers.get("retry-after-ms")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds / 1000 if "retry-after-ms" in headers and "Retry-After" not in headers else seconds
