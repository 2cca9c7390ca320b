"""Entra ID credentials of the source side (Event Hubs over Kafka or AMQP, the checkpoint store): a credential that
gives no token is a misconfiguration to report, not a transient fault to retry blindly.

`SourceCredentials` tracks which of them gives no token: one ERROR line per flip naming the setting to check,
`ingestor_source_authorized` at 0, `/readyz` 503 with the reason. `WatchedCredential` wraps one credential: it
reports each outcome, and while the credential fails it asks it again at most once per `retry_secs` (callers wait).
The sink's own credential is handled by the delivery loop (`sinks.delivery.SinkHealth`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError

from ingestor.bounds import cut
from ingestor.metrics import Metrics

log = logging.getLogger(__name__)

# What azure-identity raises when it cannot give a token: no status code, no response. CredentialUnavailableError
# (nothing configured: no AZURE_CLIENT_ID, no projected token file) is a subclass.
NO_TOKEN_ERRORS = (ClientAuthenticationError,)

SOURCE_CREDENTIAL_HELP = (
    "the credential gives no Entra ID token for {use}; consumption stops until it does (retried every "
    "sink.auth_retry_secs). With workload identity check the chart's workloadIdentity.clientId (the "
    "ServiceAccount's azure.workload.identity/client-id annotation; the pod's azure.workload.identity/use label), "
    "and that the managed identity's federated credential names this cluster's OIDC issuer and "
    "system:serviceaccount:<namespace>:<service account>; elsewhere the AZURE_* variables of the service principal. "
    "The identity also needs {role}"
)

EVENT_HUBS = "Event Hubs"
CHECKPOINT_STORE = "the checkpoint store"
ROLES = {
    EVENT_HUBS: "the Azure Event Hubs Data Receiver role on the event hub or its namespace",
    CHECKPOINT_STORE: "the Storage Blob Data Contributor role on source.checkpoint_store's container",
}


# The configuration's default `sink.auth_retry_secs`, for sources built without the application (tests, tools).
DEFAULT_RETRY_SECS = 30.0


class SourceCredentials:
    """Which source-side credentials give no token now; flips are logged once. Without `metrics`, no gauge."""

    def __init__(self, metrics: Metrics | None = None, *, retry_secs: float = DEFAULT_RETRY_SECS) -> None:
        self._metrics = metrics
        self.retry_secs = retry_secs
        self._failing: dict[str, str] = {}

    @property
    def authorized(self) -> bool:
        return not self._failing

    @property
    def problem(self) -> str:
        return "; ".join(f"{use}: no token: {error}" for use, error in sorted(self._failing.items()))

    def failed(self, use: str, error: BaseException) -> None:
        text = cut(f"{error.__class__.__name__}: {error}")
        if use not in self._failing:
            log.error(
                SOURCE_CREDENTIAL_HELP.format(use=use, role=ROLES.get(use, "its data-plane role")),
                extra={"credential": use, "error": text},
            )
        self._failing[use] = text
        if self._metrics is not None:
            self._metrics.source_authorized.set(0)

    def succeeded(self, use: str) -> None:
        if self._failing.pop(use, None) is not None:
            log.info("the credential gives tokens again", extra={"credential": use})
            if not self._failing and self._metrics is not None:
                self._metrics.source_authorized.set(1)

    def watch(self, credential: AsyncTokenCredential, use: str) -> WatchedCredential:
        return WatchedCredential(credential, use, self)


class WatchedCredential:
    """An AsyncTokenCredential reporting to SourceCredentials; while failing, one attempt per `retry_secs`."""

    def __init__(self, credential: AsyncTokenCredential, use: str, credentials: SourceCredentials) -> None:
        self._credential = credential
        self._use = use
        self._credentials = credentials
        self._next_attempt = 0.0  # monotonic; 0 while the credential works

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        await self._wait_turn()
        try:
            token = await self._credential.get_token(*scopes, **kwargs)
        except NO_TOKEN_ERRORS as exc:
            self._failed(exc)
            raise
        self._succeeded()
        return token

    async def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        await self._wait_turn()
        try:
            info: AccessTokenInfo = await self._credential.get_token_info(*scopes, options=options)  # type: ignore[attr-defined]
        except NO_TOKEN_ERRORS as exc:
            self._failed(exc)
            raise
        self._succeeded()
        return info

    async def token_when_given(self, scope: str) -> AccessToken:
        """A token for `scope`, waiting (one attempt per `retry_secs`) until the credential gives one: for callers
        such as aiokafka's SASL handshake, which treat any other error as fatal."""
        while True:
            try:
                return await self.get_token(scope)
            except NO_TOKEN_ERRORS:
                continue

    async def _wait_turn(self) -> None:
        delay = self._next_attempt - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def _failed(self, error: BaseException) -> None:
        self._next_attempt = time.monotonic() + self._credentials.retry_secs
        self._credentials.failed(self._use, error)

    def _succeeded(self) -> None:
        self._next_attempt = 0.0
        self._credentials.succeeded(self._use)

    async def close(self) -> None:
        await self._credential.close()

    async def __aenter__(self) -> WatchedCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
