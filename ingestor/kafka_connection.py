"""Kafka connection settings shared by the source and the dead-letter topic: TLS, and SASL for Event Hubs
(PLAIN with a connection string, or OAUTHBEARER with an Entra ID token from azure-identity). A credential that gives
no token is reported through `identity.SourceCredentials` and asked again every `sink.auth_retry_secs`.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from aiokafka.abc import AbstractTokenProvider
from aiokafka.helpers import create_ssl_context

from ingestor.config import KafkaSourceConfig
from ingestor.identity import EVENT_HUBS, SourceCredentials, WatchedCredential

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
        settings["ssl_context"] = create_ssl_context(cafile=str(config.ca_file) if config.ca_file else None)
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
