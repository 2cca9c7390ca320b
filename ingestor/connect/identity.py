"""Entra ID credentials of the source side (Event Hubs over Kafka or AMQP, the checkpoint store): a credential that
gives no token is a misconfiguration to report, not a transient fault to retry blindly.

`SourceCredentials` tracks which of them gives no token: one ERROR line per flip naming the setting to check,
`ingestor_source_authorized` at 0, `/readyz` 503 with the reason. `WatchedCredential` wraps one credential: it
reports each outcome, and while the credential fails it asks it again at most once per `retry_secs` (callers wait).
The sink's own credential is handled by the delivery loop (`sinks.events.SinkHealth`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError
from prometheus_client import Gauge

from ingestor.bounds import cut
from ingestor.metrics import Metrics

log = logging.getLogger(__name__)

# What azure-identity raises when it cannot give a token: no status code, no response. CredentialUnavailableError
# (nothing configured: no AZURE_CLIENT_ID, no projected token file) is a subclass.
NO_TOKEN_ERRORS = (ClientAuthenticationError,)


def gives_no_token(error: BaseException) -> bool:
    """Whether `error` is a credential's that gives no token (reported and paced by its WatchedCredential), not a
    service's 401/403 answer, which azure-core raises as the same ClientAuthenticationError with a status code."""
    return isinstance(error, NO_TOKEN_ERRORS) and getattr(error, "status_code", None) is None


# What to check when Entra ID gives a credential of the pod no token: the same for the sink's and the source's.
WORKLOAD_IDENTITY_CHECKS = (
    "With workload identity check the chart's workloadIdentity.clientId (the ServiceAccount's "
    "azure.workload.identity/client-id annotation; the pod's azure.workload.identity/use label), and that the "
    "managed identity's federated credential names this cluster's OIDC issuer and "
    "system:serviceaccount:<namespace>:<service account>; elsewhere the AZURE_* variables of the service principal"
)
SOURCE_CREDENTIAL_HELP = (
    "the credential gives no Entra ID token for {use}; consumption stops until it does (retried every "
    f"sink.auth_retry_secs). {WORKLOAD_IDENTITY_CHECKS}. The identity also needs {{role}}"
)

EVENT_HUBS = "Event Hubs"
CHECKPOINT_STORE = "the checkpoint store"
ROLES = {
    EVENT_HUBS: "the Azure Event Hubs Data Receiver role on the event hub or its namespace",
    CHECKPOINT_STORE: "the Storage Blob Data Contributor role on source.checkpoint_store's container",
}


# The configuration's default `sink.auth_retry_secs`, for sources built without the application (tests, tools).
DEFAULT_RETRY_SECS = 30.0


class Refusals:
    """What is refused now, by name, and why: `authorized` and `problem` for `/readyz`, `gauge` at 0 while anything
    is. `refuse` and `accept` say whether that name's state flipped, so that callers log once per flip."""

    def __init__(self, gauge: Gauge | None) -> None:
        self._gauge = gauge
        self._refused: dict[str, str] = {}

    @property
    def authorized(self) -> bool:
        return not self._refused

    @property
    def problem(self) -> str:
        return "; ".join(f"{name}: {reason}" for name, reason in sorted(self._refused.items()))

    def refuse(self, name: str, reason: str) -> bool:
        flipped = name not in self._refused
        self._refused[name] = reason
        if self._gauge is not None:
            self._gauge.set(0)
        return flipped

    def accept(self, name: str) -> bool:
        if self._refused.pop(name, None) is None:
            return False
        if not self._refused and self._gauge is not None:
            self._gauge.set(1)
        return True


class SourceCredentials(Refusals):
    """Which source-side credentials give no token now; flips are logged once. Without `metrics`, no gauge."""

    def __init__(self, metrics: Metrics | None = None, *, retry_secs: float = DEFAULT_RETRY_SECS) -> None:
        super().__init__(metrics.source_authorized if metrics is not None else None)
        self.retry_secs = retry_secs

    def failed(self, use: str, error: BaseException) -> None:
        text = cut(f"{error.__class__.__name__}: {error}")
        if self.refuse(use, f"no token: {text}"):
            log.error(
                SOURCE_CREDENTIAL_HELP.format(use=use, role=ROLES.get(use, "its data-plane role")),
                extra={"credential": use, "error": text},
            )

    def succeeded(self, use: str) -> None:
        if self.accept(use):
            log.info("the credential gives tokens again", extra={"credential": use})

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
