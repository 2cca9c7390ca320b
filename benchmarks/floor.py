"""Floor: decode + validate + shape + gzip alone, in process, no I/O, on seeded generated traffic.

Prints the median of several runs: events/s, raw MB/s, CPU seconds per GB, compression ratio. This is the
ceiling the end-to-end pipeline is measured against (issue 4 builds the full harness on top of it).
"""

from __future__ import annotations

import argparse
import statistics
import time

from ingestor.generate import TrafficGenerator
from ingestor.pipeline.compress import BACKEND, gzip_rows
from ingestor.pipeline.decode import MessageDecoder
from ingestor.tables import load_schemas


def one_run(decoder: MessageDecoder, messages: list[bytes], level: int, rows_per_request: int) -> tuple[float, int]:
    started_cpu = time.process_time()
    pending: dict[str, list[bytes]] = {}
    compressed = 0
    for message in messages:
        for row in decoder.decode(message).rows:
            bucket = pending.setdefault(row.table, [])
            bucket.append(row.body)
            if len(bucket) >= rows_per_request:
                compressed += len(gzip_rows(bucket, level))
                bucket.clear()
    for bucket in pending.values():
        if bucket:
            compressed += len(gzip_rows(bucket, level))
    return time.process_time() - started_cpu, compressed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--level", type=int, default=1, help="gzip level (ISA-L 0-3)")
    parser.add_argument("--rows-per-request", type=int, default=2_000)
    args = parser.parse_args()

    generator = TrafficGenerator(seed=1)
    messages = list(generator.messages(records=args.records))
    raw = sum(map(len, messages))
    decoder = MessageDecoder(load_schemas())
    results = [one_run(decoder, messages, args.level, args.rows_per_request) for _ in range(args.runs)]
    cpu = statistics.median(r[0] for r in results)
    compressed = results[0][1]
    print(f"floor ({BACKEND} level {args.level}), {args.records:,} records, {raw / 1e6:.1f} MB, median of {args.runs}:")
    print(f"  {args.records / cpu:,.0f} events/s   {raw / cpu / 1e6:.1f} MB/s raw   {cpu / (raw / 1e9):.2f} CPU s/GB")
    print(f"  compression ratio {raw / compressed:.2f}x")


if __name__ == "__main__":
    main()
