"""A micro-benchmark of `MessageDecoder.decode` alone, in this process: the floor stage's decode, without batching
or gzip, on the bench's seeded Device traffic (`TrafficGenerator(seed=1)`), clean and with Defender's type drift.

- clean: the generator's messages as they are (the strict whole-message decode, the fast path);
- drifted: the same messages with every record's first long column (ReportId) written as a decimal string and,
  where the table has one, its first boolean column as "0"/"1" (the tolerant whole-message decode; before type
  drift was converted, the per-record path and a dead letter per record);
- narrowed: traffic of every table (`DEFAULT_MIX`) decoded by a decoder of the ten Device tables alone, as with
  `schemas.tables` a Device-only selection over a whole tenant's stream: the other tables' records are skipped
  (before the fast path learned to skip them, every message that held one went record by record).

Each pass decodes every message once; the figure is the median CPU time of `--runs` passes, as records per CPU
second. It measures whatever `ingestor` imports: for a before/after, run it once with this checkout installed
and once with `PYTHONPATH` pointing at an earlier checkout's root (`git worktree add /tmp/before REV`), on a
quiet machine, and compare the medians. `make bench` remains the measure the docs quote.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from ingestor.pipeline.decode import MessageDecoder
from ingestor.tables import load_schemas
from ingestor_tools.generate import DEFAULT_MIX, DEVICE_MIX, TrafficGenerator


def drifted(message: bytes, schemas: dict[str, Any]) -> bytes:
    """`message` with each record's first long column as a decimal string and first boolean as "0"/"1"."""
    document = json.loads(message)
    for record in document["records"]:
        schema = schemas[record["category"].removeprefix("AdvancedHunting-")]
        properties = record["properties"]
        for kind, spell in (("long", str), ("boolean", lambda v: "1" if v else "0")):
            names = (c.name for c in schema.columns if c.type == kind and properties.get(c.name) is not None)
            column = next(names, None)
            if column is not None:
                properties[column] = spell(properties[column])
    return json.dumps(document, separators=(",", ":")).encode()


def measure(decoder: MessageDecoder, messages: list[bytes], runs: int) -> dict[str, Any]:
    times = []
    rows = rejected = skipped = 0
    for _ in range(runs):
        rows = rejected = skipped = 0
        started = time.process_time()
        for message in messages:
            result = decoder.decode(message)
            rows += len(result.rows)
            rejected += len(result.rejected)
            skipped += result.skipped.total()
        times.append(time.process_time() - started)
    median = statistics.median(times)
    records = rows + rejected + skipped
    return {
        "median_cpu_secs": round(median, 4),
        "runs_cpu_secs": [round(t, 4) for t in times],
        "records_per_cpu_sec": round(records / median),
        "rows": rows,
        "rejected": rejected,
        "skipped": skipped,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    schemas = load_schemas()
    messages = [m for m in TrafficGenerator(seed=1).messages(records=args.records)]
    drift = [drifted(m, schemas) for m in messages]
    mixed = [m for m in TrafficGenerator(seed=1, mix=DEFAULT_MIX).messages(records=args.records)]
    decoder = MessageDecoder(schemas)
    device_only = MessageDecoder({table: schemas[table] for table in DEVICE_MIX})
    measure(decoder, messages[:200], 1)  # warm up
    results = {
        "records": args.records,
        "messages": len(messages),
        "clean": measure(decoder, messages, args.runs),
        "drifted": measure(decoder, drift, args.runs),
        "narrowed": measure(device_only, mixed, args.runs),
    }
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
