"""`make demo`: the main job end to end on local real parts, then what landed per table.

Starts the Tansu broker and the HTTPS Logs Ingestion emulator, generates realistic traffic for all ten tables
(with a little bad input), runs `ingestor run` until everything is consumed and committed, stops it with
SIGTERM, and prints rows landed, rows dead-lettered, raw and compressed bytes and requests per table.
Everything it writes stays in ./demo-output.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from realparts import (
    BrokerProcess,
    EmulatorProcess,
    IngestorProcess,
    ingestor_config,
    metric_total,
    produce,
    wait_for,
)

from ingestor.generate import TrafficGenerator

OUT = Path("demo-output").resolve()
RECORDS = 50_000
PARTITIONS = 4
TOPIC, GROUP = "defender", "defender-ingestor"


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    print(f"demo: working in {OUT}")
    broker = BrokerProcess(OUT)
    emulator = EmulatorProcess(OUT / "emulator")
    try:
        return run(broker, emulator)
    finally:
        emulator.stop()
        broker.stop()


def run(broker: BrokerProcess, emulator: EmulatorProcess) -> int:
    print(f"demo: broker on {broker.bootstrap}, Logs Ingestion emulator on {emulator.endpoint}")
    generator = TrafficGenerator(seed=1, invalid_rate=0.005)
    messages = list(generator.messages(records=RECORDS))
    manifest = generator.manifest
    per_partition = produce(broker.bootstrap, TOPIC, messages, partitions=PARTITIONS)
    print(
        f"demo: produced {manifest.records:,} records ({manifest.raw_bytes / 1e6:.1f} MB) in {len(messages):,} "
        f"messages; {manifest.dead_letter_records} are bad on purpose, {manifest.skipped} of a table we skip"
    )
    config = ingestor_config(OUT, broker.bootstrap, emulator, topic=TOPIC, group=GROUP, sink__linger_secs=1.0)
    started = time.monotonic()
    ingestor = IngestorProcess(OUT, config)
    print(f"demo: ingestor running (metrics on http://127.0.0.1:{ingestor.port}/metrics, log {ingestor.log_path})")
    wait_for(
        lambda: all(
            ingestor.total("ingestor_committed_offset", topic=TOPIC, partition=str(p)) == n
            for p, n in per_partition.items()
        ),
        timeout=300,
        what="every message committed",
    )
    elapsed = time.monotonic() - started
    samples = ingestor.metrics()
    code = ingestor.terminate()
    print(f"demo: consumed and committed everything in {elapsed:.1f}s; SIGTERM -> exit code {code}\n")
    report(samples, emulator)
    read = metric_total(samples, "ingestor_read_events_total")
    settled = sum(
        metric_total(samples, name)
        for name in (
            "ingestor_accepted_events_total",
            "ingestor_dead_lettered_events_total",
            "ingestor_skipped_events_total",
        )
    )
    print(f"\nread {read:,.0f} = landed + dead-lettered + skipped = {settled:,.0f}")
    print(f"rows are in {emulator.db_path} (table `rows`), dead letters in {OUT / 'dead-letter'}")
    return 0 if code == 0 and read == settled == manifest.records else 1


def report(samples: dict, emulator: EmulatorProcess) -> None:  # type: ignore[type-arg]
    requests = dict(emulator.query("SELECT stream, count(*) FROM requests WHERE status = 204 GROUP BY stream"))
    landed = emulator.counts()
    header = (
        f"{'table':<28}{'landed':>10}{'dead-lettered':>15}{'raw MB':>10}{'gzip MB':>10}{'ratio':>8}{'requests':>10}"
    )
    print(header)
    print("-" * len(header))
    totals = [0.0] * 5
    tables = sorted({t for (n, labels), _ in samples.items() for k, t in labels if k == "table"} - {"unknown"})
    for table in [*tables, "unknown"]:
        dest = f"{table}_CL"
        row = [
            landed.get(dest, 0),
            metric_total(samples, "ingestor_dead_lettered_events_total", table=table),
            metric_total(samples, "ingestor_raw_bytes_total", table=table) / 1e6,
            metric_total(samples, "ingestor_compressed_bytes_total", destination=dest) / 1e6,
            requests.get(f"Custom-{dest}", 0),
        ]
        if table == "unknown" and not row[1]:
            continue
        totals = [a + b for a, b in zip(totals, row, strict=True)]
        ratio = f"{row[2] / row[3]:.1f}x" if row[3] else "-"
        print(f"{table:<28}{row[0]:>10,}{row[1]:>15,.0f}{row[2]:>10.2f}{row[3]:>10.2f}{ratio:>8}{row[4]:>10,}")
    print("-" * len(header))
    ratio = f"{totals[2] / totals[3]:.1f}x" if totals[3] else "-"
    print(
        f"{'total':<28}{totals[0]:>10,.0f}{totals[1]:>15,.0f}{totals[2]:>10.2f}{totals[3]:>10.2f}{ratio:>8}"
        f"{totals[4]:>10,.0f}"
    )


if __name__ == "__main__":
    sys.exit(main())
