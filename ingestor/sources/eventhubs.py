"""Event Hubs source over AMQP (azure-eventhub), partitions balanced across processes by a blob checkpoint store.

The SDK's receive loop calls back with batches per partition; the batches go to `fetch()` as Messages whose
position offset is the event's sequence number, the same contract as the Kafka source. `commit()` writes a
checkpoint (offset and sequence number of the last settled event) only for what the OffsetTracker hands it.
Backpressure holds the callback, so a paused partition receives nothing more; the SDK's prefetch is the only
buffer. A partition the load balancer takes away (or the shutdown closes) is drained and checkpointed first.
Entra ID credentials (Event Hubs, the checkpoint store) report to `identity.SourceCredentials`; `start()` waits
while the store's gives no token, and while the store or the namespace cannot be reached (`reachability`: the
store's container listed, then the namespace's partition ids read, each retried with back-off). Once started, the
SDK retries by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlparse

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.eventhub import EventData
from azure.eventhub.aio import EventHubConsumerClient, PartitionContext
from azure.eventhub.amqp import AmqpMessageBodyType
from azure.eventhub.exceptions import EventHubError
from azure.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore

from ingestor.commit import Partition, Position
from ingestor.config import EventHubsSourceConfig
from ingestor.connect.identity import CHECKPOINT_STORE, EVENT_HUBS, SourceCredentials, gives_no_token
from ingestor.connect.reachability import HeldBack, Part, Unreachable
from ingestor.errors import ConfigError
from ingestor.models import Message
from ingestor.sources.base import PartitionCallback

log = logging.getLogger(__name__)
STARTING_POSITIONS = {"earliest": "-1", "latest": "@latest"}
PRIVATE_DNS = "resolves from the pod (DNS; for a private endpoint its {zone} zone linked to the cluster's network)"
# What the checkpoint store extension logs at WARNING for every failed listing: the start's wait logs once instead.
LIST_OWNERSHIP_FAILED = "An exception occurred during list_ownership"


def starting_position(config: EventHubsSourceConfig) -> str | datetime:
    """The SDK's starting position for partitions without a checkpoint."""
    position = config.starting_position
    return position if isinstance(position, datetime) else STARTING_POSITIONS[position]


def namespace_host(config: EventHubsSourceConfig) -> str:
    """The namespace's host name, as the SDK names checkpoint and ownership blobs: configured, or the connection
    string's `Endpoint=sb://<host>/`."""
    if config.fully_qualified_namespace is not None:
        return config.fully_qualified_namespace
    assert config.connection_string is not None  # one of the two, checked by the config model
    return urlparse(_fields(config.connection_string.get_secret_value()).get("Endpoint", "")).hostname or ""


def _fields(connection_string: str) -> dict[str, str]:
    """`Key=value;...` of a connection string as a dict (values may hold `=`)."""
    return dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)


def store_address(config: EventHubsSourceConfig) -> str:
    """`<blob endpoint>/<container>` of the checkpoint store, without scheme (no secret: the connection string's
    endpoint only)."""
    store = config.checkpoint_store
    if store.account_url is not None:
        endpoint = store.account_url
    else:
        assert store.connection_string is not None  # one of the two, checked by the config model
        fields = _fields(store.connection_string.get_secret_value())
        suffix = fields.get("EndpointSuffix", "core.windows.net")
        endpoint = fields.get("BlobEndpoint") or f"//{fields.get('AccountName', '')}.blob.{suffix}"
    url = urlparse(endpoint)
    return f"{url.netloc}{url.path.rstrip('/')}/{store.container}"


def parts(config: EventHubsSourceConfig) -> tuple[Part, Part]:
    """The checkpoint store and the namespace, as the start waits for them."""
    store = Part(
        "checkpoint_store",
        f"{CHECKPOINT_STORE} ({store_address(config)})",
        f"that the storage account's blob host {PRIVATE_DNS.format(zone='privatelink.blob.core.windows.net')}, "
        "that the account's firewall admits the cluster's network (until it does, Storage answers 403 "
        "AuthorizationFailure) and the cluster's egress allows TCP 443; and source.checkpoint_store",
    )
    namespace = Part(
        "eventhubs",
        f"the Event Hubs namespace ({namespace_host(config)})",
        f"that the namespace host {PRIVATE_DNS.format(zone='privatelink.servicebus.windows.net')}, that the "
        "private endpoint is approved, that the namespace's firewall and the cluster's egress (network policy, NSG) "
        "allow TCP 5671 (AMQP); and the event hub name, source.eventhub_name",
    )
    return store, namespace


def checkpoint_store(config: EventHubsSourceConfig, credential: Any = None, **options: Any) -> BlobCheckpointStore:
    """The configured blob checkpoint store; `options` go to the Storage client (`connection_verify`, say)."""
    store = config.checkpoint_store
    if store.connection_string is not None:
        secret = store.connection_string.get_secret_value()
        return BlobCheckpointStore.from_connection_string(secret, store.container, **options)
    assert store.account_url is not None  # one of the two, checked by the config model
    return BlobCheckpointStore(store.account_url, store.container, credential=credential, **options)


def event_bytes(event: EventData) -> bytes:
    """The event body as bytes: Defender sends AMQP data sections; any other body type as its text, or, when it
    has none (bytes that are not UTF-8, say), as its bytes or their repr, for the decoder to dead-letter."""
    if event.body_type == AmqpMessageBodyType.DATA:
        return b"".join(cast("Iterable[bytes]", event.body))
    try:
        return event.body_as_str().encode()
    except (TypeError, UnicodeError):
        body = event.body
        return body if isinstance(body, bytes) else repr(body).encode(errors="backslashreplace")


class EventHubsSource:
    """A `sources.base.Source` over AMQP: start/stop, fetch, commit, pause/resume, assignment, highwater."""

    def __init__(
        self,
        config: EventHubsSourceConfig,
        *,
        on_revoked: PartitionCallback,
        on_assigned: PartitionCallback,
        credentials: SourceCredentials | None = None,
        credential: AsyncTokenCredential | None = None,
        store: Any = None,
        client: EventHubConsumerClient | None = None,
        unreachable: Unreachable | None = None,
    ) -> None:
        """`credentials`: where an Entra ID credential reports that it gives no token; `unreachable`: where the
        start reports the parts it cannot reach yet (both: `/readyz`, a gauge). `credential` replaces
        DefaultAzureCredential; `store` and `client` the ones built from the configuration (tests)."""
        self._config = config
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned
        self._credentials = credentials or SourceCredentials()
        self._unreachable = unreachable or Unreachable()
        self._credential: AsyncTokenCredential | None = None
        # Entra ID for whichever of the two is built here without a connection string of its own.
        if (client is None and config.connection_string is None) or (
            store is None and config.checkpoint_store.connection_string is None
        ):
            if credential is None:
                from azure.identity.aio import DefaultAzureCredential

                credential = DefaultAzureCredential()
            self._credential = credential
        self._owns_store = store is None
        self._store = store if store is not None else checkpoint_store(config, self._watched(CHECKPOINT_STORE))
        self._client = client if client is not None else self._build_client()
        self._queue: asyncio.Queue[list[Message]] = asyncio.Queue()
        self._assigned: set[Partition] = set()
        self._paused: set[Partition] = set()
        self._resumed = asyncio.Event()
        self._resumed.set()
        # Per partition: (sequence number, offset) of received events, oldest first, until checkpointed past.
        self._offsets: dict[Partition, deque[tuple[int, str]]] = {}
        self._checkpointing: dict[Partition, asyncio.Lock] = {}
        self._highwater: dict[Partition, int] = {}
        self._receiving: asyncio.Task[None] | None = None
        self._namespace = namespace_host(config)

    def _watched(self, use: str) -> Any:
        return None if self._credential is None else self._credentials.watch(self._credential, use)

    def _build_client(self) -> EventHubConsumerClient:
        config = self._config
        options: dict[str, Any] = {
            "checkpoint_store": self._store,
            "load_balancing_interval": config.load_balancing_interval_secs,
            "partition_ownership_expiration_interval": config.ownership_expiration_secs,
        }
        if config.connection_string is not None:
            return EventHubConsumerClient.from_connection_string(
                config.connection_string.get_secret_value(),
                config.consumer_group,
                eventhub_name=config.eventhub_name,
                **options,
            )
        assert config.fully_qualified_namespace is not None  # checked by the config model
        return EventHubConsumerClient(
            config.fully_qualified_namespace,
            config.eventhub_name,
            config.consumer_group,
            self._watched(EVENT_HUBS),
            **options,
        )

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the checkpoint container, read the namespace's partition ids, then start the SDK's receive loop
        (load balancing included). While the store or the namespace cannot be reached, wait and retry with
        back-off; while a credential gives no token, wait: it is asked again every `sink.auth_retry_secs`."""
        config = self._config
        store, namespace = parts(config)
        await self._unreachable.until_reached(
            store, self._check_container, transient=_storage_transient, paced_elsewhere=gives_no_token
        )
        await self._unreachable.until_reached(
            namespace,
            self._client.get_partition_ids,
            transient=lambda error: isinstance(error, EventHubError),
            paced_elsewhere=gives_no_token,
        )
        self._receiving = asyncio.create_task(
            self._client.receive_batch(
                self.on_event_batch,
                max_batch_size=config.max_batch_size,
                max_wait_time=config.max_wait_time_secs,
                prefetch=config.prefetch,
                starting_position=starting_position(config),
                track_last_enqueued_event_properties=True,
                on_error=self._on_error,
                on_partition_initialize=self.on_partition_initialize,
                on_partition_close=self.on_partition_close,
            ),
            name="eventhubs-receive",
        )

    async def _check_container(self) -> None:
        config = self._config
        try:
            # One request per attempt (the Storage client's own retries would take minutes); the wait paces them.
            with HeldBack(BlobCheckpointStore.__module__, LIST_OWNERSHIP_FAILED):
                await self._store.list_ownership(
                    self._namespace, config.eventhub_name, config.consumer_group, retry_total=0
                )
        except ResourceNotFoundError:
            # Without its container the store reports claims as granted and fails later, partition by partition.
            raise ConfigError(
                [
                    f"source.checkpoint_store.container: {config.checkpoint_store.container!r} does not exist in the "
                    "storage account; create it (one container per consumer group)"
                ]
            ) from None

    async def stop(self) -> None:
        self._resumed.set()  # let held callbacks return so the receivers can close
        await self._client.close()  # closes each partition (on_partition_close) and releases ownership
        if self._receiving is not None:
            # The SDK's balancing loop would only notice at its next round (load_balancing_interval_secs).
            self._receiving.cancel()
            await asyncio.gather(self._receiving, return_exceptions=True)
        if self._owns_store:
            await self._store.close()
        if self._credential is not None:
            await self._credential.close()

    # -- the SDK's callbacks -----------------------------------------------------------------------------

    def _key(self, context: PartitionContext) -> Partition:
        return Partition(self._config.eventhub_name, int(context.partition_id))

    async def on_partition_initialize(self, context: PartitionContext) -> None:
        key = self._key(context)
        self._assigned.add(key)
        if not self._resumed.is_set():
            self._paused.add(key)  # joins the pause in force
        await self._on_assigned({key})

    async def on_partition_close(self, context: PartitionContext, reason: Any) -> None:
        """Ownership lost or shutdown: the application lands and checkpoints the partition's rows first."""
        key = self._key(context)
        log.info("partition closing", extra={"partition": context.partition_id, "reason": str(reason)})
        await self._on_revoked({key})
        self._assigned.discard(key)
        self._paused.discard(key)
        self._offsets.pop(key, None)
        self._highwater.pop(key, None)

    async def on_event_batch(self, context: PartitionContext, events: list[EventData]) -> None:
        """Hot path: one call per received batch of one partition; returns once the source may read more."""
        key = self._key(context)
        properties = context.last_enqueued_event_properties
        if properties and properties.get("sequence_number") is not None:
            self._highwater[key] = int(properties["sequence_number"]) + 1
        if events:
            topic, partition = key
            offsets = self._offsets.setdefault(key, deque())
            messages = []
            for event in events:
                sequence = cast(int, event.sequence_number)  # set on every received event
                offsets.append((sequence, str(event.offset)))
                stamp = event.enqueued_time
                millis = int(stamp.timestamp() * 1000) if stamp else None
                messages.append(Message(event_bytes(event), Position(topic, partition, sequence), millis))
            self._queue.put_nowait(messages)
        while key in self._paused and not self._resumed.is_set():
            await self._resumed.wait()

    async def _on_error(self, context: PartitionContext | None, error: Exception) -> None:
        partition = context.partition_id if context is not None else None
        # While a credential gives no token, every partition fails with it; SourceCredentials said so once.
        level = logging.WARNING if self._credentials.authorized else logging.DEBUG
        extra = {"partition": partition, "error": repr(error)}
        log.log(level, "Event Hubs receive error; the SDK retries", extra=extra)

    # -- the application's side --------------------------------------------------------------------------

    async def fetch(self, timeout_secs: float) -> list[Message]:
        """Messages received since the last call (waiting up to `timeout_secs` for the first)."""
        if self._receiving is not None and self._receiving.done():
            self._receiving.result()  # the receive loop ended: raise its error
            raise RuntimeError("the Event Hubs receive loop ended")
        try:
            batches = [await asyncio.wait_for(self._queue.get(), timeout_secs)]
        except TimeoutError:
            return []
        while not self._queue.empty():
            batches.append(self._queue.get_nowait())
        return [message for batch in batches for message in batch]

    async def commit(self, offsets: dict[Partition, int]) -> bool:
        """Checkpoint each partition at the event before `offsets[p]` (next sequence number to read)."""
        ok = True
        for key, next_sequence in offsets.items():
            # One writer per partition: a periodic commit and a revocation's must land in the order they were
            # taken, or the later write could carry the lower sequence number and move the checkpoint back.
            async with self._checkpointing.setdefault(key, asyncio.Lock()):
                ok = await self._checkpoint(key, next_sequence) and ok
        return ok

    async def _checkpoint(self, key: Partition, next_sequence: int) -> bool:
        config = self._config
        received = self._offsets.setdefault(key, deque())
        last: tuple[int, str] | None = None
        while received and received[0][0] < next_sequence:
            last = received.popleft()
        if last is None:
            return True
        checkpoint = {
            "fully_qualified_namespace": self._namespace,
            "eventhub_name": config.eventhub_name,
            "consumer_group": config.consumer_group,
            "partition_id": str(key.partition),
            "sequence_number": last[0],
            "offset": last[1],
        }
        try:
            await self._store.update_checkpoint(checkpoint)
        except Exception as exc:  # noqa: BLE001 - any Storage failure: checkpoint at `last` next time
            received.appendleft(last)
            log.warning("checkpoint failed; it will be retried", extra={"error": repr(exc)})
            return False
        return True

    def assignment(self) -> set[Partition]:
        return set(self._assigned)

    def pause(self, partitions: set[Partition]) -> None:
        self._paused |= partitions & self._assigned
        if self._paused:
            self._resumed.clear()

    def resume(self) -> None:
        self._paused.clear()
        self._resumed.set()

    @property
    def paused(self) -> set[Partition]:
        return set(self._paused)

    def highwater(self, partition: Partition) -> int | None:
        return self._highwater.get(partition)


def _storage_transient(error: BaseException) -> bool:
    """Whatever the network or Storage answers, but that the container does not exist (configuration)."""
    return isinstance(error, AzureError) and not isinstance(error, ResourceNotFoundError)
