"""Where generated message bodies go: a file (one body per line) or a topic on a Kafka broker.

`produce_kafka` creates the topic if needed and spreads bodies round-robin over its partitions. It connects in
plaintext without authentication (a local broker): no TLS or SASL, so not to Event Hubs.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1_048_576
TOPIC_ALREADY_EXISTS = 36
_IN_FLIGHT = 1000  # delivery futures held before awaiting the oldest


def write_file(path: str | os.PathLike[str], messages: Iterable[bytes]) -> int:
    """Write each body followed by a newline; returns the number of bodies.

    "lines" bodies make the file a Storage-export JSON Lines file (one record per line); "records" bodies
    make it newline-delimited Event Hubs messages (one `{"records":[...]}` per line).
    """
    count = 0
    with open(path, "wb", buffering=1 << 20) as out:
        for body in messages:
            out.write(body)
            out.write(b"\n")
            count += 1
    return count


async def ensure_topic(bootstrap_servers: str, topic: str, partitions: int | None = None) -> None:
    """Create `topic` with `partitions` (default 1) unless it exists; an existing topic is left as it is."""
    if partitions is not None and partitions < 1:
        raise ValueError("partitions must be at least 1")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        if topic in await admin.list_topics():
            if partitions is not None:
                log.info("topic %s exists; producing to its existing partitions", topic)
            return
        response = await admin.create_topics([NewTopic(topic, partitions or 1, 1)])
        for name, code, *rest in response.topic_errors:
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"cannot create topic {name}: error {code} {rest[0] if rest else ''}".rstrip())
    finally:
        await admin.close()


async def produce_kafka(
    bootstrap_servers: str, topic: str, messages: Iterable[bytes], *, partitions: int | None = None
) -> int:
    """Produce every body to `topic` (key None, partitions round-robin) and await delivery of all of them.

    Returns the number of bodies delivered; raises if any delivery fails.
    """
    await ensure_topic(bootstrap_servers, topic, partitions)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, max_request_size=MAX_REQUEST_BYTES, acks="all", linger_ms=5
    )
    await producer.start()
    try:
        ids = sorted(await producer.partitions_for(topic) or ())
        if not ids:
            raise RuntimeError(f"topic {topic} has no partitions in the broker's metadata")
        in_flight: deque[asyncio.Future[object]] = deque()
        count = 0
        for body in messages:
            in_flight.append(await producer.send(topic, body, key=None, partition=ids[count % len(ids)]))
            count += 1
            if len(in_flight) >= _IN_FLIGHT:
                await in_flight.popleft()
        while in_flight:
            await in_flight.popleft()
    finally:
        await producer.stop()
    return count
