"""Baseline: the pipeline a user would write by hand, for the harness to measure beside the ingestor.

Consumes the topic with aiokafka, parses each message with the standard library, builds a list of dicts per
table, and calls `LogsIngestionClient.upload(rule_id, stream, list)` (the SDK's own 1 MiB chunking, json.dumps
and gzip) after every fetched batch, then commits. Run as a process by `harness.py`; prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import ssl
import time
from collections import defaultdict
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer
from azure.core.pipeline.transport import AioHttpTransport
from azure.monitor.ingestion.aio import LogsIngestionClient

from ingestor.sinks.logs_ingestion import StaticTokenCredential


async def run(args: argparse.Namespace) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(
        args.topic, bootstrap_servers=args.bootstrap, group_id=args.group, enable_auto_commit=False,
        auto_offset_reset="earliest", session_timeout_ms=6000,
    )  # fmt: skip
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=args.ca_file)))
    client = LogsIngestionClient(
        args.endpoint,
        StaticTokenCredential(args.token),
        transport=AioHttpTransport(session=session, session_owner=False),
    )  # type: ignore[arg-type]
    await consumer.start()
    rows = started = cpu_started = 0.0
    try:
        while rows < args.records:
            batches = await consumer.getmany(timeout_ms=1000)
            if not batches:
                continue
            if not started:
                started, cpu_started = time.monotonic(), time.process_time()
            per_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for messages in batches.values():
                for message in messages:
                    for record in json.loads(message.value)["records"]:
                        table = record["category"].removeprefix("AdvancedHunting-")
                        row = dict(record["properties"])
                        row["TimeGenerated"] = row["Timestamp"]
                        per_table[table].append(row)
                        rows += 1
            for table, logs in per_table.items():
                await client.upload(args.rule_id, f"Custom-{table}_CL", logs)
            await consumer.commit()
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_started
    finally:
        await consumer.stop()
        await client.close()
        await session.close()
    return {
        "records": rows,
        "wall_secs": elapsed,
        "cpu_secs": cpu,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("bootstrap", "topic", "group", "endpoint", "ca-file", "token", "rule-id"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--records", type=int, required=True)
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
