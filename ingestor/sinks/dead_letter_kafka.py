"""The dead letter on a Kafka topic of the source's brokers: one message per entry, acknowledged by all in-sync
replicas before it counts as durable, an entry too big for a message cut to fit.
"""

from __future__ import annotations

import asyncio
import base64
import logging

import msgspec
from aiokafka import AIOKafkaProducer

from ingestor.bounds import MAX_DETAIL_CHARS, cut, fingerprint
from ingestor.config import KafkaSourceConfig
from ingestor.connect.identity import SourceCredentials
from ingestor.connect.kafka import EntraTokenProvider, connection_settings, start_client
from ingestor.metrics import Metrics
from ingestor.sinks.dead_letter import DeadLetterEntry, raw_bytes

log = logging.getLogger(__name__)


def fit_entry(line: bytes, max_bytes: int) -> bytes:
    """An encoded entry at most `max_bytes` long: `line` itself, or its entry with `raw` cut by encoded size.

    JSON escaping and UTF-8 make an entry up to six times longer than its raw text, so the cut is searched on the
    encoding itself. The detail gains the raw bytes' original length and SHA-256.
    """
    if len(line) <= max_bytes:
        return line
    entry = msgspec.json.decode(line, type=DeadLetterEntry)
    as_text = entry.raw is not None
    raw = raw_bytes(entry)
    entry.detail = cut(entry.detail, MAX_DETAIL_CHARS - 200)
    entry.detail += f"; raw cut to fit the dead-letter topic: {fingerprint(raw)}"
    entry.raw_original_bytes = entry.raw_original_bytes or len(raw)

    def encoded(size: int) -> bytes:
        head = raw[:size]
        if as_text:
            entry.raw = head.decode(errors="ignore")  # a character cut in two goes whole
        else:
            entry.raw_base64 = base64.b64encode(head).decode()
        return msgspec.json.encode(entry)

    low, high = 0, len(raw)  # the longest head whose entry fits: encoded size grows with the head
    while low < high:
        middle = (low + high + 1) // 2
        if len(encoded(middle)) <= max_bytes:
            low = middle
        else:
            high = middle - 1
    return encoded(low)


class KafkaStore:
    """One message per entry on a topic of the source's brokers, acknowledged by all in-sync replicas.

    An entry larger than the topic's message limit (Event Hubs: 1 MB) keeps as much of `raw` as fits once
    encoded (`fit_entry`), says so in `detail`, and is counted in `ingestor_dead_letter_truncated_entries_total`.
    """

    MAX_MESSAGE_BYTES = 1_000_000

    def __init__(
        self, source: KafkaSourceConfig, topic: str, metrics: Metrics, credentials: SourceCredentials | None = None
    ) -> None:
        self._settings = connection_settings(source, credentials)
        self._topic = topic
        self._metrics = metrics
        self._producer: AIOKafkaProducer | None = None

    async def write(self, lines: list[bytes]) -> None:
        if self._producer is None:
            producer = AIOKafkaProducer(
                **self._settings, acks="all", max_request_size=self.MAX_MESSAGE_BYTES + 4096, linger_ms=5
            )
            try:
                await start_client(producer)  # a broker's error named; the queue retries, logging once per flip
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        pending = [await self._producer.send(self._topic, self._fit(line.rstrip(b"\n"))) for line in lines]
        await asyncio.gather(*pending)

    def _fit(self, value: bytes) -> bytes:
        fitted = fit_entry(value, self.MAX_MESSAGE_BYTES)
        if fitted is not value:
            self._metrics.dead_letter_truncated.inc()
            log.warning("dead-letter entry cut to fit the topic", extra={"entry_bytes": len(value)})
        return fitted

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        provider = self._settings.get("sasl_oauth_token_provider")
        if isinstance(provider, EntraTokenProvider):
            await provider.close()
