"""What retention classes cost on the hot path: decode, route, shape and batch, single-threaded, no I/O or gzip.

Three configurations on the same generated input, interleaved round by round: one class (the default), classes
by table only (no row is looked at), and docs/retention.md's example with a column predicate and an Auxiliary
class (TimeGenerated re-rendered and half-hour windows). Prints median rows/s and the ratio to one class.

    .venv/bin/python benchmarks/retention.py [--records N] [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from ingestor.commit import OffsetTracker, Position
from ingestor.config import parse_config
from ingestor.pipeline.batch import batcher_for
from ingestor.pipeline.decode import MessageDecoder
from ingestor.tables import load_schemas
from ingestor_tools.generate import TrafficGenerator

CLASSES = {
    "hot": {"plan": "Analytics", "retention_days": 90},
    "basic": {"plan": "Basic"},
    "archive": {"plan": "Auxiliary", "total_retention_days": 1095},
}
CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "one class": {},
    "classes by table": {
        "default_class": "hot",
        "classes": CLASSES,
        "rules": [{"tables": ["DeviceNetworkEvents", "DeviceFileEvents"], "class": "basic"}],
    },
    "predicate + Auxiliary": {
        "default_class": "hot",
        "classes": CLASSES,
        "rules": [
            {"tables": ["DeviceNetworkEvents"], "when": {"column": "ActionType", "equals": "ConnectionFailed"},
             "class": "hot"},
            {"tables": ["DeviceNetworkEvents", "DeviceFileEvents"], "class": "archive"},
        ],
    },
}  # fmt: skip


def build(retention: dict[str, Any]) -> tuple[MessageDecoder, dict[Any, Any]]:
    config = parse_config(
        {
            "source": {"bootstrap_servers": ["k:9092"], "topics": ["t"], "group_id": "g"},
            "sink": {"endpoint": "https://x.example", "rule_id": "dcr-" + "0" * 32},
            "dead_letter": {"path": "/tmp/unused"},
            "retention": retention,
        }
    )
    routes = config.routes()
    decoder = MessageDecoder(load_schemas(), routes=routes)
    sink = config.sink
    batchers = {
        d: batcher_for(d, max_request_bytes=sink.max_request_bytes, linger_secs=3600)
        for route in routes.values()
        for d in route.destinations
    }
    return decoder, batchers


def run(messages: list[bytes], retention: dict[str, Any]) -> tuple[float, int]:
    decoder, batchers = build(retention)
    ticket = OffsetTracker().track(Position("bench", 0, 0))
    rows = 0
    started = time.process_time()
    for message in messages:
        result = decoder.decode(message)
        for row in result.rows:
            batchers[row.destination].add(row.body, ticket, row.window)
        rows += len(result.rows)
    return time.process_time() - started, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    load_schemas()
    messages = list(TrafficGenerator(seed=7, events_per_second=20).messages(records=args.records))
    for retention in CONFIGURATIONS.values():  # warm-up, not counted
        run(messages[: len(messages) // 10], retention)
    rates: dict[str, list[float]] = {name: [] for name in CONFIGURATIONS}
    for _ in range(args.rounds):
        for name, retention in CONFIGURATIONS.items():
            cpu, rows = run(messages, retention)
            rates[name].append(rows / cpu)
    base = statistics.median(rates["one class"])
    print(f"{args.records:,} records, {args.rounds} interleaved rounds; decode + route + shape + batch, one thread")
    print(f"{'configuration':<24}{'rows/s (median)':>17}{'min':>10}{'max':>10}{'vs one class':>14}")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:<24}{median:>17,.0f}{min(values):>10,.0f}{max(values):>10,.0f}{median / base:>14.3f}")


if __name__ == "__main__":
    main()
