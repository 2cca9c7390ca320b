"""The Event Hubs SDK's side of the AMQP source's boundary, for tests (no Event Hubs emulator exists).

`received()` builds an `EventData` as the SDK hands a received one over (body plus the broker's annotations).
`ReplayClient` plays `EventHubConsumerClient` for the source: it opens partitions, resumes each after its
checkpoint in the real blob store, delivers the events in batches through the source's callbacks, and closes
partitions on `close()` or `lose()`, like the load balancer and shutdown do.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from azure.eventhub import EventData
from azure.eventhub.aio import PartitionContext

ENQUEUED_MS = 1_764_547_200_000


def received(body: bytes, sequence: int, enqueued_ms: int = ENQUEUED_MS) -> EventData:
    """An EventData as a receiver yields it: its body plus the sequence number, offset and enqueued time."""
    event = EventData(body)
    annotations = event.raw_amqp_message.annotations
    annotations[b"x-opt-sequence-number"] = sequence
    annotations[b"x-opt-offset"] = str(1000 + sequence * 100).encode()
    annotations[b"x-opt-enqueued-time"] = enqueued_ms
    return event


class ReplayClient:
    """Replays fixed event bodies per partition through the callbacks `receive_batch` is given."""

    def __init__(
        self, namespace: str, hub: str, group: str, store: Any, partitions: dict[int, list[bytes]], *, batch: int = 25
    ) -> None:
        self._names = (namespace, hub, group)
        self._store = store
        self._partitions = partitions
        self._batch = batch
        self._closing = asyncio.Event()
        self._open: dict[int, PartitionContext] = {}
        self._feeders: dict[int, asyncio.Task[None]] = {}
        self._on_close: Callable[[PartitionContext, str], Awaitable[None]] | None = None
        self.options: dict[str, Any] = {}

    async def get_partition_ids(self) -> list[str]:
        """What the source's start reads first: the event hub's partitions."""
        return [str(partition) for partition in self._partitions]

    async def receive_batch(
        self,
        on_event_batch: Callable[[PartitionContext, list[EventData]], Awaitable[None]],
        *,
        on_partition_initialize: Callable[[PartitionContext], Awaitable[None]],
        on_partition_close: Callable[[PartitionContext, str], Awaitable[None]],
        **options: Any,
    ) -> None:
        self.options = options
        self._on_close = on_partition_close
        namespace, hub, group = self._names
        done = {c["partition_id"]: c["sequence_number"] for c in await self._store.list_checkpoints(*self._names)}
        for partition, bodies in self._partitions.items():
            context = PartitionContext(namespace, hub, group, str(partition), checkpoint_store=self._store)
            self._open[partition] = context
            await on_partition_initialize(context)
            start = done.get(str(partition), -1) + 1  # resume after the checkpoint, as the SDK does
            self._feeders[partition] = asyncio.create_task(self._feed(on_event_batch, context, bodies, start))
        await self._closing.wait()
        for partition in list(self._open):
            await self._close(partition, "SHUTDOWN")

    async def _feed(
        self,
        on_event_batch: Callable[[PartitionContext, list[EventData]], Awaitable[None]],
        context: PartitionContext,
        bodies: list[bytes],
        start: int,
    ) -> None:
        for first in range(start, len(bodies), self._batch):
            chunk = bodies[first : first + self._batch]
            events = [received(body, first + i) for i, body in enumerate(chunk)]
            # What the SDK's receiver does with track_last_enqueued_event_properties: the context exposes the
            # partition's last enqueued event, read from the last received event's delivery annotations.
            events[-1]._last_enqueued_event_properties = {"sequence_number": len(bodies) - 1}
            context._last_received_event = events[-1]
            await on_event_batch(context, events)

    async def _close(self, partition: int, reason: str) -> None:
        feeder = self._feeders.pop(partition)
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        context = self._open.pop(partition)
        assert self._on_close is not None
        await self._on_close(context, reason)

    async def lose(self, partition: int) -> None:
        """The load balancer gave the partition to another process."""
        await self._close(partition, "OWNERSHIP_LOST")

    async def close(self) -> None:
        self._closing.set()
        while self._open:
            await asyncio.sleep(0.01)
