"""In-process stand-ins for the application's declared seams (`sources.base.Source`, `sources.base.SourceFactory`,
`sinks.service.Uploader`), type-checked against them by `make typecheck` (mypy --strict on this file)."""

from __future__ import annotations

import asyncio
import json
import zlib
from types import TracebackType
from typing import Any

from ingestor.commit import Partition, Position
from ingestor.config import EventHubsSourceConfig, KafkaSourceConfig
from ingestor.connect.identity import SourceCredentials
from ingestor.connect.reachability import Unreachable
from ingestor.errors import UploadError
from ingestor.models import Destination, Message
from ingestor.sinks.service import Uploader
from ingestor.sources.base import PartitionCallback, Source, SourceFactory
from ingestor_tools import SAMPLES_DIR

SAMPLE: dict[str, Any] = json.loads((SAMPLES_DIR / "DeviceInfo.json").read_text())[0]


class RecordingUploader:
    """Accepts every request and keeps its rows, by destination."""

    def __init__(self) -> None:
        self.requests: list[tuple[Destination, list[dict[str, Any]]]] = []

    async def send(self, destination: Destination, payload: bytes, request_id: str) -> None:
        self.requests.append((destination, json.loads(zlib.decompress(payload, wbits=31))))

    async def __aenter__(self) -> RecordingUploader:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass


class ScriptedUploader(RecordingUploader):
    """Raises the next error of its script for each request, then accepts like RecordingUploader."""

    def __init__(self, *errors: UploadError) -> None:
        super().__init__()
        self.script = list(errors)
        self.request_ids: list[str] = []

    async def send(self, destination: Destination, payload: bytes, request_id: str) -> None:
        self.request_ids.append(request_id)
        if self.script:
            raise self.script.pop(0)
        await super().send(destination, payload, request_id)


class StillSource:
    """Holds partition 0 of `defender` and reads nothing."""

    def __init__(
        self,
        config: KafkaSourceConfig | EventHubsSourceConfig,
        *,
        on_revoked: PartitionCallback,
        on_assigned: PartitionCallback,
        credentials: SourceCredentials,
        unreachable: Unreachable,
    ) -> None:
        self.on_revoked, self.on_assigned = on_revoked, on_assigned
        self.paused: set[Partition] = set()
        self.setup()

    def setup(self) -> None:
        """What a subclass holds besides the callbacks."""

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def fetch(self, timeout_secs: float) -> list[Message]:
        await asyncio.sleep(timeout_secs)
        return []

    async def commit(self, offsets: dict[Partition, int]) -> bool:
        return True

    def pause(self, partitions: set[Partition]) -> None:
        self.paused |= partitions

    def resume(self) -> None:
        self.paused.clear()

    def assignment(self) -> set[Partition]:
        return {Partition("defender", 0)}

    def highwater(self, partition: Partition) -> int | None:
        return None


class MovingSource(StillSource):
    """A source whose one fetch holds partitions 0 and 1 of `t` (8 messages each), and whose brokers refuse any
    commit that names a partition after it was taken away, as Kafka does ("not assigned")."""

    def setup(self) -> None:
        self.owned = {Partition("t", 0), Partition("t", 1)}
        body = json.dumps({"records": [SAMPLE]}).encode()
        self.batch = [Message(body, Position("t", p, o)) for p in (0, 1) for o in range(8)]
        self.commits: list[dict[Partition, int]] = []

    async def start(self) -> None:
        await self.on_assigned(set(self.owned))

    async def fetch(self, timeout_secs: float) -> list[Message]:
        batch, self.batch = self.batch, []
        if not batch:
            await asyncio.sleep(timeout_secs)
        return batch

    async def commit(self, offsets: dict[Partition, int]) -> bool:
        if not set(offsets) <= self.owned:
            return False
        self.commits.append(offsets)
        return True

    def assignment(self) -> set[Partition]:
        return set(self.owned)

    def highwater(self, partition: Partition) -> int | None:
        return 8


# What mypy checks: each fake fits the seam it stands in for.
_UPLOADER: type[Uploader] = RecordingUploader
_FACTORIES: tuple[SourceFactory, ...] = (StillSource, MovingSource)
_SOURCE: type[Source] = MovingSource
