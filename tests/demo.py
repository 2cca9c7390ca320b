"""`make demo`: the main job end to end on local real parts, then what landed per table.

Starts the Tansu broker, provisions docs/retention.md's example (`ingestor provision`) and starts the HTTPS
Logs Ingestion emulator on the DCRs of the template it wrote, generates realistic traffic for every table the
Streaming API exports (the generator's DEFAULT_MIX, with a little bad input), runs `ingestor run` until everything
is consumed and committed, stops it with SIGTERM, and prints rows landed, rows dead-lettered, raw and compressed
bytes and requests for every table of the schemas, then rows, billed bytes and projected GB per month per table
and retention class. Everything it writes stays in ./demo-output.
"""

from __future__ import annotations

import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

from realparts import (
    BrokerProcess,
    EmulatorProcess,
    IngestorProcess,
    ingestor_config,
    metric_total,
    produce,
    provisioned_emulator,
    use_provisioned,
)

from ingestor.tables import load_schemas
from ingestor_tools.generate import DEFAULT_MIX, TrafficGenerator

OUT = Path("demo-output").resolve()
RECORDS = 50_000
PARTITIONS = 4
TOPIC, GROUP = "defender", "defender-ingestor"
# docs/retention.md's worked example: high-volume network and file events to a
# long, cheap class, the rest in Analytics.
RETENTION = {
    "default_class": "hot",
    "classes": {
        "hot": {"plan": "Analytics", "retention_days": 90, "total_retention_days": 365},
        "archive": {"plan": "Auxiliary", "total_retention_days": 1095},
    },
    "rules": [
        {"tables": ["DeviceNetworkEvents"], "when": {"column": "ActionType", "equals": "ConnectionFailed"},
         "class": "hot"},
        {"tables": ["DeviceNetworkEvents", "DeviceFileEvents"], "class": "archive"},
    ],
    "destinations": {
        "DeviceFileEvents": {"archive": {"drop_columns": [
            f"InitiatingProcessVersionInfo{name}"
            for name in ("CompanyName", "ProductName", "ProductVersion", "InternalFileName", "OriginalFileName",
                         "FileDescription")
        ]}},
    },
}  # fmt: skip
SECONDS_PER_MONTH = 30 * 86_400


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    print(f"demo: working in {OUT}")
    broker = BrokerProcess(OUT)
    try:
        emulator, provisioned = provisioned_emulator(OUT, RETENTION)
        try:
            return run(broker, emulator, provisioned)
        finally:
            emulator.stop()
    finally:
        broker.stop()


def run(broker: BrokerProcess, emulator: EmulatorProcess, provisioned: dict) -> int:  # type: ignore[type-arg]
    print(f"demo: provisioned {OUT / 'deploy'}/azuredeploy.json and ingestor.yaml (`ingestor provision`)")
    print(f"demo: broker on {broker.bootstrap}, Logs Ingestion emulator on {emulator.endpoint} serving its DCRs")
    generator = TrafficGenerator(seed=1, mix=DEFAULT_MIX, invalid_rate=0.005)
    messages = list(generator.messages(records=RECORDS))
    manifest = generator.manifest
    per_partition = produce(broker.bootstrap, TOPIC, messages, partitions=PARTITIONS)
    print(
        f"demo: produced {manifest.records:,} records ({manifest.raw_bytes / 1e6:.1f} MB) in {len(messages):,} "
        f"messages; {manifest.dead_letter_records} are bad on purpose, {manifest.skipped} of a table we skip"
    )
    config = ingestor_config(OUT, broker.bootstrap, emulator, topic=TOPIC, group=GROUP, sink__linger_secs=1.0)
    use_provisioned(config, provisioned)
    started = time.monotonic()
    ingestor = IngestorProcess(OUT, config)
    print(f"demo: ingestor running (metrics on http://127.0.0.1:{ingestor.port}/metrics, log {ingestor.log_path})")
    ingestor.wait_committed(TOPIC, per_partition, timeout=300)
    elapsed = time.monotonic() - started
    samples = ingestor.metrics()
    code = ingestor.terminate()
    print(f"demo: consumed and committed everything in {elapsed:.1f}s; SIGTERM -> exit code {code}\n")
    report(samples, emulator)
    report_classes(samples, event_time_span(emulator))
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
    missing = sorted(t for t in load_schemas() if not metric_total(samples, "ingestor_accepted_events_total", table=t))
    if missing:
        print(f"no rows landed for {', '.join(missing)}")
    # Only the records broken on purpose are dead-lettered: every table's valid records land.
    dead = metric_total(samples, "ingestor_dead_lettered_events_total")
    ok = code == 0 and read == settled == manifest.records and not missing and dead == manifest.dead_letter_records
    return 0 if ok else 1


def destinations(samples: dict) -> dict[tuple[str, str], str]:  # type: ignore[type-arg]
    """(table, retention tag) -> destination table, for every destination that accepted rows."""
    found = {}
    for (name, labels), _ in samples.items():
        if name == "ingestor_accepted_events_total":
            label = dict(labels)
            found[(label["table"], label["retention_tag"])] = label["destination"]
    return dict(sorted(found.items()))


def report(samples: dict, emulator: EmulatorProcess) -> None:  # type: ignore[type-arg]
    requests = dict(emulator.query("SELECT stream, count(*) FROM requests WHERE status = 204 GROUP BY stream"))
    landed = emulator.counts()
    by_table: dict[str, list[str]] = {}
    for (table, _tag), destination in destinations(samples).items():
        by_table.setdefault(table, []).append(destination)
    header = (
        f"{'table':<28}{'landed':>10}{'dead-lettered':>15}{'raw MB':>10}{'gzip MB':>10}{'ratio':>8}{'requests':>10}"
    )
    print(header)
    print("-" * len(header))
    totals = [0.0] * 5
    for table in [*sorted(set(load_schemas()) | set(by_table)), "unknown"]:  # every table, landed or not
        dests = by_table.get(table, [])
        row = [
            sum(landed.get(d, 0) for d in dests),
            metric_total(samples, "ingestor_dead_lettered_events_total", table=table),
            metric_total(samples, "ingestor_raw_bytes_total", table=table) / 1e6,
            sum(metric_total(samples, "ingestor_compressed_bytes_total", destination=d) for d in dests) / 1e6,
            sum(requests.get(f"Custom-{d}", 0) for d in dests),
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


def event_time_span(emulator: EmulatorProcess) -> float:
    """Seconds of event time (`Timestamp`) the landed rows cover: the traffic's own rate, not the backlog's."""
    stamps = [datetime.fromisoformat(t) for (t,) in emulator.query("SELECT json_extract(row, '$.Timestamp') FROM rows")]
    return (max(stamps) - min(stamps)).total_seconds()


def report_classes(samples: dict, seconds: float) -> None:  # type: ignore[type-arg]
    """Rows and billed (uncompressed) bytes per table and retention class, projected to a month at the rate of
    the traffic (its rows over the event time they cover)."""
    plans = {name: spec["plan"] for name, spec in RETENTION["classes"].items()}  # type: ignore[attr-defined]
    header = f"{'table':<28}{'class':<10}{'plan':<11}{'destination':<32}{'rows':>9}{'raw MB':>9}{'GB/month':>10}"
    print(f"\nvolume by retention class; GB per month at the traffic's rate ({seconds / 3600:.1f} h of event time)")
    print(header)
    print("-" * len(header))
    by_plan: dict[str, float] = {}
    for (table, tag), destination in destinations(samples).items():
        rows = metric_total(samples, "ingestor_accepted_events_total", table=table, retention_tag=tag)
        raw = metric_total(samples, "ingestor_raw_bytes_total", table=table, retention_tag=tag)
        monthly = raw / seconds * SECONDS_PER_MONTH / 1e9
        by_plan[plans[tag]] = by_plan.get(plans[tag], 0.0) + monthly
        print(f"{table:<28}{tag:<10}{plans[tag]:<11}{destination:<32}{rows:>9,.0f}{raw / 1e6:>9.2f}{monthly:>10,.1f}")
    print("-" * len(header))
    print("projected GB per month by plan: " + ", ".join(f"{plan} {gb:,.1f}" for plan, gb in sorted(by_plan.items())))


if __name__ == "__main__":
    sys.exit(main())
