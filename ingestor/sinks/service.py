"""The service that sends a request: one gzipped body to the Logs Ingestion API (`Uploader`, the client), and what
the retry policy (`retry.RetryPolicy`) decides when it fails, carried out: wait and send again (throttled, transient,
unauthorized, forever), or hand back a split, a bisect or a dead letter for the caller to act on.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from ingestor.errors import UploadError
from ingestor.models import Batch, Destination
from ingestor.sinks.events import SinkEvents
from ingestor.sinks.retry import Decision, RetryPolicy


class Uploader(Protocol):
    """What the sink needs of the Logs Ingestion API client (`sinks.logs_ingestion.LogsIngestionSink`): one gzipped
    request to a destination, returning once the service accepted it (204) and raising UploadError otherwise; used
    inside `async with`."""

    async def send(self, destination: Destination, payload: bytes, request_id: str) -> None: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Undelivered:
    """A request the service will not take as it is: `decision` is a split, a bisect or a dead letter."""

    decision: Decision
    error: UploadError


class UploadService:
    def __init__(self, client: Uploader, policy: RetryPolicy, events: SinkEvents) -> None:
        self._client = client
        self._policy = policy
        self._events = events
        # While the service throttles (429), the source pauses until this monotonic time.
        self.throttled_until = 0.0

    async def send(self, batch: Batch, payload: bytes) -> Undelivered | None:
        """Send `payload` (the gzipped `batch`) until the service takes it (None) or a retry cannot help."""
        attempt = 0
        while True:
            request_id = str(uuid.uuid4())
            started = time.monotonic()
            try:
                await self._client.send(batch.destination, payload, request_id)
            except UploadError as error:
                self._events.answered(batch, error.status_class, time.monotonic() - started)
                decision = self._policy.decide(error, attempt, len(batch))
                if decision.action != "retry":
                    return Undelivered(decision, error)
                if decision.throttled:
                    self.throttled_until = max(self.throttled_until, time.monotonic() + decision.wait_secs)
                self._events.retrying(batch, error, decision, request_id, attempt)
                attempt += 1
                with self._events.waiting(batch, decision.wait_secs):
                    await asyncio.sleep(decision.wait_secs)
                continue
            self._events.answered(batch, "2xx", time.monotonic() - started)
            self._events.landed(batch, len(payload))
            return None
