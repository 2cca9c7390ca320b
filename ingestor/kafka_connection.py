"""Kafka connection settings shared by the source and the dead-letter topic: TLS, and SASL for Event Hubs
(PLAIN with a connection string, or OAUTHBEARER with an Entra ID token from azure-identity).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from aiokafka.abc import AbstractTokenProvider
from aiokafka.helpers import create_ssl_context

from ingestor.config import KafkaSourceConfig

# Microsoft's recommended connection settings for the Event Hubs Kafka endpoint: the service drops idle
# connections after 240 s, and requests need more than 20 s (azure-apis.md section 4).
EVENT_HUBS_CONNECTION_SETTINGS: dict[str, Any] = {
    "metadata_max_age_ms": 180_000,
    "connections_max_idle_ms": 180_000,
}


class EntraTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """OAUTHBEARER tokens for Event Hubs from azure-identity, cached until five minutes before expiry."""

    def __init__(self, namespace_host: str) -> None:
        from azure.identity.aio import DefaultAzureCredential

        self._credential = DefaultAzureCredential()
        self._scope = f"https://{namespace_host}/.default"
        self._token = ""
        self._expires_on = 0.0

    async def token(self) -> str:
        if time.time() > self._expires_on - 300:
            access = await self._credential.get_token(self._scope)
            self._token, self._expires_on = access.token, float(access.expires_on)
        return self._token

    async def close(self) -> None:
        await self._credential.close()


def connection_settings(config: KafkaSourceConfig) -> dict[str, Any]:
    """Bootstrap servers, TLS and SASL keyword arguments for any aiokafka client of this configuration."""
    settings: dict[str, Any] = {"bootstrap_servers": config.bootstrap_servers}
    if config.is_event_hubs:
        settings.update(EVENT_HUBS_CONNECTION_SETTINGS)
    tls = config.tls or config.is_event_hubs or config.auth.type != "none"
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
        host = urlsplit("//" + config.bootstrap_servers[0]).hostname or ""
        settings.update(
            security_protocol="SASL_SSL",
            sasl_mechanism="OAUTHBEARER",
            sasl_oauth_token_provider=EntraTokenProvider(host),
        )
    elif tls:
        settings["security_protocol"] = "SSL"
    return settings
