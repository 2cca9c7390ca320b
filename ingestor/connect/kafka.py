"""Kafka connection settings shared by the source and the dead-letter topic: TLS, and SASL for Event Hubs
(PLAIN with a connection string, or OAUTHBEARER with an Entra ID token from azure-identity). A credential that gives
no token is reported through `identity.SourceCredentials` and asked again every `sink.auth_retry_secs`.
`start_client` starts an aiokafka client and, when it cannot bootstrap, raises with each broker's error.
"""

from __future__ import annotations

import ssl
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiokafka.abc import AbstractTokenProvider
from aiokafka.errors import KafkaConnectionError
from aiokafka.helpers import create_ssl_context

from ingestor.config import KafkaSourceConfig
from ingestor.connect.identity import EVENT_HUBS, SourceCredentials, WatchedCredential
from ingestor.connect.reachability import HeldBack, Part
from ingestor.errors import ConfigError, describe

# Microsoft's recommended connection settings for the Event Hubs Kafka endpoint: the service drops idle
# connections after 240 s, and requests need more than 20 s (learn.microsoft.com/azure/event-hubs/
# apache-kafka-configurations).
EVENT_HUBS_CONNECTION_SETTINGS: dict[str, Any] = {
    "metadata_max_age_ms": 180_000,
    "connections_max_idle_ms": 180_000,
}


class EntraTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """OAUTHBEARER tokens for Event Hubs from azure-identity, cached until five minutes before expiry.

    While the credential gives no token, `token()` waits for one (asking once per retry interval) instead of
    raising: aiokafka would take any error from here as fatal to the consumer's start.
    """

    def __init__(self, namespace_host: str, credential: WatchedCredential) -> None:
        self._credential = credential
        self._scope = f"https://{namespace_host}/.default"
        self._token = ""
        self._expires_on = 0.0

    async def token(self) -> str:
        if time.time() > self._expires_on - 300:
            access = await self._credential.token_when_given(self._scope)
            self._token, self._expires_on = access.token, float(access.expires_on)
        return self._token

    async def close(self) -> None:
        await self._credential.close()


def connection_settings(config: KafkaSourceConfig, credentials: SourceCredentials | None = None) -> dict[str, Any]:
    """Bootstrap servers, TLS and SASL keyword arguments for any aiokafka client of this configuration; an Entra ID
    credential reports to `credentials`."""
    settings: dict[str, Any] = {"bootstrap_servers": config.bootstrap_servers}
    if config.is_event_hubs:
        settings.update(EVENT_HUBS_CONNECTION_SETTINGS)
    tls = config.uses_tls
    if tls:
        settings["ssl_context"] = _ssl_context(config)
    if config.auth.type == "connection_string":
        assert config.auth.connection_string is not None
        settings.update(
            security_protocol="SASL_SSL",
            sasl_mechanism="PLAIN",
            sasl_plain_username="$ConnectionString",
            sasl_plain_password=config.auth.connection_string.get_secret_value(),
        )
    elif config.auth.type == "entra":
        from azure.identity.aio import DefaultAzureCredential

        host = urlsplit("//" + config.bootstrap_servers[0]).hostname or ""
        credential = (credentials or SourceCredentials()).watch(DefaultAzureCredential(), EVENT_HUBS)
        settings.update(
            security_protocol="SASL_SSL",
            sasl_mechanism="OAUTHBEARER",
            sasl_oauth_token_provider=EntraTokenProvider(host, credential),
        )
    elif tls:
        settings["security_protocol"] = "SSL"
    return settings


def _ssl_context(config: KafkaSourceConfig) -> ssl.SSLContext:
    try:
        context: ssl.SSLContext = create_ssl_context(cafile=str(config.ca_file) if config.ca_file else None)
    except (ssl.SSLError, OSError) as exc:  # a file that holds no PEM certificate, or that cannot be read
        raise ConfigError(
            [
                f"source.ca_file: {config.ca_file} cannot be used as a CA certificate ({describe(exc)}); give the "
                "PEM file of the CA that signed the brokers' certificate, or leave ca_file out to trust the system's"
            ]
        ) from None
    return context


def brokers(config: KafkaSourceConfig) -> Part:
    """The Kafka brokers as the start waits for them (the source's, which the Kafka dead letter shares)."""
    dns, port = "", "the brokers' port"
    if config.is_event_hubs:
        dns, port = (
            "; for a private endpoint, its privatelink.servicebus.windows.net zone linked to the cluster",
            "9093",
        )
    return Part(
        "kafka",
        f"the Kafka brokers ({', '.join(config.bootstrap_servers)})",
        f"that each host of source.bootstrap_servers resolves from the pod (DNS{dns}), that a private endpoint is "
        f"approved, that the brokers' firewall and the cluster's egress (network policy, NSG) allow TCP to {port}; "
        "if the TLS handshake fails, source.ca_file; if the brokers refuse the login (SASL), source.auth",
    )


class KafkaClient(Protocol):
    """An aiokafka consumer or producer."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


# What aiokafka logs, once per broker and attempt, when its bootstrap cannot reach a broker; the error it raises
# then names none of them.
BOOTSTRAP_FAILURES = ('Unable connect to "%s:%s": %s', 'Unable to request metadata from "%s:%s": %s')


async def start_client(client: KafkaClient) -> None:
    """Start `client`; if it cannot bootstrap, KafkaConnectionError naming each broker's error (held back from
    aiokafka's log, where it would be one ERROR line per attempt). A failed bootstrap leaves no connection or task
    behind: the client may be started again."""
    with HeldBack("aiokafka", *BOOTSTRAP_FAILURES) as failures:
        try:
            await client.start()
        except KafkaConnectionError:
            errors = "; ".join(_bootstrap_failure(record.args) for record in failures.records)
            raise KafkaConnectionError(f"Unable to bootstrap from {errors or 'any broker'}") from None


def _bootstrap_failure(args: Any) -> str:
    if isinstance(args, tuple) and len(args) == 3:
        host, port, error = args
        return f"{host}:{port}: {describe(error) if isinstance(error, BaseException) else error}"
    return str(args)
