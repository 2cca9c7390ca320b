"""The seams between the application and its sources: `Source` (what `run.app.Ingestor` needs of one),
`SourceFactory` (how it gets one; tests pass their own) and `PartitionCallback` (how a source says partitions go and
come)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from ingestor.commit import Partition
from ingestor.config import EventHubsSourceConfig, KafkaSourceConfig
from ingestor.connect.identity import SourceCredentials
from ingestor.connect.reachability import Unreachable
from ingestor.models import Message

# Called by a source before partitions go (the application lands and commits their rows) and after they come.
PartitionCallback = Callable[[set[Partition]], Awaitable[None]]


class Source(Protocol):
    """What the application needs of a source (KafkaSource, EventHubsSource).

    `fetch` returns the next messages, each partition's in offset order; `commit` commits exactly the offsets it is
    given (the next position to read) and says whether it could; pause/resume hold and release reading; the
    source calls the application back (`PartitionCallback`) before partitions go and after they come.
    """

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def fetch(self, timeout_secs: float) -> list[Message]: ...

    async def commit(self, offsets: dict[Partition, int]) -> bool: ...

    def pause(self, partitions: set[Partition]) -> None: ...

    def resume(self) -> None: ...

    @property
    def paused(self) -> set[Partition]: ...

    def assignment(self) -> set[Partition]: ...

    def highwater(self, partition: Partition) -> int | None: ...


class SourceFactory(Protocol):
    """Builds the source of a configuration (`make_source`; tests pass their own)."""

    def __call__(
        self,
        config: KafkaSourceConfig | EventHubsSourceConfig,
        *,
        on_revoked: PartitionCallback,
        on_assigned: PartitionCallback,
        credentials: SourceCredentials,
        unreachable: Unreachable,
    ) -> Source: ...
