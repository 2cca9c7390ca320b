"""Entra ID credentials of the source side that give no token are a misconfiguration, not a transient fault (issue 12,
item 2): the Event Hubs credential (Kafka endpoint's OAUTHBEARER, or AMQP) and the checkpoint store's.

Each is driven with a credential that fails the way azure-identity's do (no status code: `CredentialUnavailableError`,
`ClientAuthenticationError`) and then heals. Asserted: `ingestor_source_authorized` at 0 and the problem named (what
`/readyz` says), one ERROR line naming the settings to check, one attempt per `sink.auth_retry_secs`, and recovery
by itself. The checkpoint store runs for real: Azurite over HTTPS with bearer tokens, behind a whole `Ingestor`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CredentialUnavailableError
from azure.storage.blob.aio import BlobServiceClient
from credentials import FailingCredential
from eventhubs_sdk import ReplayClient
from realparts import AzuriteProcess, emulator_sink, wait_for
from test_source_contract import traffic

from ingestor.config import parse_config
from ingestor.connect.identity import CHECKPOINT_STORE, EVENT_HUBS, SourceCredentials
from ingestor.metrics import Metrics
from ingestor.run.app import Ingestor
from ingestor.sources.eventhubs import EventHubsSource, checkpoint_store
from ingestor.sources.kafka import consumer_settings
from ingestor_tools.emulator import Emulator

RETRY_SECS = 0.2
NAMESPACE = "defender-test.servicebus.windows.net"
HUB = "defender"
GROUP = "$Default"
ERRORS = [
    CredentialUnavailableError("WorkloadIdentityCredential authentication unavailable. no AZURE_CLIENT_ID"),
    ClientAuthenticationError("AADSTS700213: No matching federated identity record found for presented assertion"),
]
IDS = ["unavailable", "refused"]


def failing_default_credential(
    error: Exception, monkeypatch: pytest.MonkeyPatch
) -> tuple[FailingCredential, Metrics, SourceCredentials]:
    """What `DefaultAzureCredential()` gives the code under test (it imports the class where it builds one): a
    credential failing with `error` until healed; and the metrics and SourceCredentials it reports to."""
    credential = FailingCredential(error, "eh-token")
    monkeypatch.setattr("azure.identity.aio.DefaultAzureCredential", lambda: credential)
    metrics = Metrics()
    return credential, metrics, SourceCredentials(metrics, retry_secs=RETRY_SECS)


def source_config(source: dict[str, Any]) -> Any:
    sink = {"endpoint": "https://dce.example.com", "rule_id": "dcr-" + "0" * 32}
    return parse_config({"source": source, "sink": sink, "dead_letter": {"path": "/tmp/unused"}})


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and "no Entra ID token" in r.getMessage()
    ]


def assert_paced(credential: FailingCredential, since: float) -> None:
    """At most one attempt per retry interval (plus the first)."""
    allowed = (time.monotonic() - since) / RETRY_SECS + 2
    assert 2 <= credential.attempts <= allowed, (credential.attempts, allowed)


@pytest.mark.parametrize("error", ERRORS, ids=IDS)
async def test_kafka_oauthbearer_waits_for_a_token_and_says_which_credential(
    error: Exception, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    credential, metrics, credentials = failing_default_credential(error, monkeypatch)
    config = source_config(
        {"bootstrap_servers": [f"{NAMESPACE}:9093"], "topics": [HUB], "group_id": "g", "auth": {"type": "entra"}}
    )
    provider = consumer_settings(config.source, credentials)["sasl_oauth_token_provider"]
    started = time.monotonic()
    with caplog.at_level(logging.ERROR):
        # aiokafka's SASL handshake awaits token(); it must wait for a token, not fail the consumer's start.
        handshake = asyncio.create_task(provider.token())
        await asyncio.sleep(RETRY_SECS * 4)
    assert not handshake.done()
    assert metrics.total("ingestor_source_authorized") == 0
    assert credentials.problem.startswith(f"{EVENT_HUBS}: no token: {error.__class__.__name__}: ")
    (line,) = errors_logged(caplog)
    assert "workloadIdentity.clientId" in line and "Azure Event Hubs Data Receiver" in line
    assert_paced(credential, started)

    credential.heal()
    assert await asyncio.wait_for(handshake, RETRY_SECS * 5) == "eh-token"
    assert credentials.authorized and metrics.total("ingestor_source_authorized") == 1
    await provider.close()


@pytest.mark.parametrize("error", ERRORS, ids=IDS)
async def test_the_amqp_clients_credential_reports_through_the_sdks_own_auth(
    error: Exception, azurite: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    credential, metrics, credentials = failing_default_credential(error, monkeypatch)
    config = source_config(
        {
            "type": "eventhubs",
            "fully_qualified_namespace": NAMESPACE,
            "eventhub_name": HUB,
            "checkpoint_store": {"connection_string": azurite.connection_string, "container": "unused"},
        }
    )
    source = EventHubsSource(config.source, on_revoked=None, on_assigned=None, credentials=credentials)  # type: ignore[arg-type]
    # The SDK's CBS link asks this object for the token after it connected (`_create_auth_async`: no Event Hubs
    # emulator exists to connect to, so the test asks it directly, as the link would).
    auth = await source._client._create_auth_async()
    with caplog.at_level(logging.ERROR), pytest.raises(type(error)):
        await auth.get_token()
    assert metrics.total("ingestor_source_authorized") == 0
    assert credentials.problem.startswith(f"{EVENT_HUBS}: no token: {error.__class__.__name__}")
    (line,) = errors_logged(caplog)
    assert "Azure Event Hubs Data Receiver" in line
    credential.heal()
    assert (await auth.get_token()).token == "eh-token"
    assert credentials.authorized and metrics.total("ingestor_source_authorized") == 1
    await source.stop()


async def test_a_checkpoint_store_credential_without_a_token_holds_the_start_and_readiness_says_why(
    azurite_oauth: AzuriteProcess,
    emulator: Emulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    container = f"credentials-{int(time.time() * 1000) % 10**8}"
    ca = str(azurite_oauth.ca_file)
    async with BlobServiceClient.from_connection_string(azurite_oauth.connection_string, connection_verify=ca) as svc:
        await svc.create_container(container)
    messages, manifest = traffic(seed=12, records=300)
    partitions = {p: messages[p::2] for p in range(2)}
    config = parse_config(
        {
            "source": {
                "type": "eventhubs",
                "fully_qualified_namespace": NAMESPACE,
                "eventhub_name": HUB,
                "checkpoint_store": {"account_url": azurite_oauth.account_url, "container": container},
            },
            "sink": emulator_sink(emulator, linger_secs=0.3, auth_retry_secs=RETRY_SECS),
            "dead_letter": {"path": str(tmp_path / "dead-letter")},
            "metrics": {"host": "127.0.0.1", "port": 0},
        }
    )
    error = CredentialUnavailableError("WorkloadIdentityCredential authentication unavailable. no AZURE_CLIENT_ID")
    credential = FailingCredential(error, AzuriteProcess.bearer_token)

    def build(source_config: Any, *, credentials: SourceCredentials, **callbacks: Any) -> EventHubsSource:
        # The store as EventHubsSource builds it (the credential watched as the checkpoint store's), with Azurite's
        # CA trusted and the Storage client's own retries off so that each attempt is one request.
        watched = credentials.watch(credential, CHECKPOINT_STORE)
        store = checkpoint_store(source_config, watched, connection_verify=ca, retry_total=0)
        client = ReplayClient(NAMESPACE, HUB, GROUP, store, partitions)
        return EventHubsSource(source_config, store=store, client=client, credentials=credentials, **callbacks)  # type: ignore[arg-type]

    metrics = Metrics()
    ingestor = Ingestor(config, metrics=metrics, source_factory=build)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR):
        running = asyncio.create_task(ingestor.run())
        await asyncio.to_thread(wait_for, lambda: not ingestor.credentials.authorized, timeout=30, what="the report")
        await asyncio.sleep(RETRY_SECS * 4)
    ready, reason = ingestor.readiness()
    assert not ready
    assert reason.startswith(f"an Entra ID credential gives no token ({CHECKPOINT_STORE}: no token: ")
    assert "CredentialUnavailableError" in reason
    assert metrics.total("ingestor_source_authorized") == 0 and metrics.total("ingestor_read_messages_total") == 0
    (line,) = errors_logged(caplog)
    assert "Storage Blob Data Contributor" in line and "federated credential" in line
    assert_paced(credential, started)

    credential.heal()
    valid = sum(manifest.valid.values())
    await asyncio.to_thread(
        wait_for,
        lambda: metrics.total("ingestor_accepted_events_total") == valid,
        timeout=60,
        what="every valid row to land",
    )
    ingestor.stop()
    assert await asyncio.wait_for(running, 60)
    assert metrics.total("ingestor_source_authorized") == 1
    # Checkpoints went to Azurite with the healed credential's bearer token.
    reader = BlobServiceClient.from_connection_string(azurite_oauth.connection_string, connection_verify=ca)
    async with reader:
        names = [blob.name async for blob in reader.get_container_client(container).list_blobs()]
    assert sum("/checkpoint/" in name for name in names) == 2, names
