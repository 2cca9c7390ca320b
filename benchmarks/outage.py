"""Sink outage under full input: peak RSS stays within the in-flight bound plus a fixed overhead.

Fills a topic on a local Tansu broker, starts the ingestor against the emulator (count mode) while the emulator
answers every request with 503, keeps the outage for `--outage-secs`, then heals it and measures how long the
ingestor takes to land and commit everything. RSS of the ingestor process is sampled every 0.2 s.
Prints the figures and writes them to benchmarks/results/outage-<time>.json. Not a test: run it by hand or
with `make bench-outage`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from realparts import (  # noqa: E402
    BrokerProcess,
    EmulatorProcess,
    IngestorProcess,
    committed_offsets,
    ingestor_config,
    produce,
    wait_for,
)

from ingestor_tools.generate import TrafficGenerator  # noqa: E402

MiB = 1_048_576


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--outage-secs", type=float, default=180.0)
    parser.add_argument("--max-inflight-mib", type=int, default=128)
    args = parser.parse_args()

    work = ROOT / "benchmarks" / "results" / "outage-work"
    subprocess.run(["rm", "-rf", str(work)], check=True)
    work.mkdir(parents=True)
    broker = BrokerProcess(work, own=True)
    emulator = EmulatorProcess(work / "emulator", "--mode", "count", "--fail-5xx-rate", "1.0")
    try:
        generator = TrafficGenerator(seed=1)
        messages = list(generator.messages(records=args.records))
        raw = sum(map(len, messages))
        per_partition = produce(broker.bootstrap, "defender", messages, partitions=4)
        del messages
        config = ingestor_config(
            work, broker.bootstrap, emulator, topic="defender", group="outage",
            sink__max_inflight_bytes=args.max_inflight_mib * MiB, sink__auth_retry_secs=30, sink__max_backoff_secs=60,
            sink__linger_secs=2.0,
        )  # fmt: skip
        ingestor = IngestorProcess(work, config)
        pid = ingestor.process.pid
        wait_for(lambda: ingestor.get("/healthz")[0] == 200, what="ingestor up")
        baseline = rss_bytes(pid)
        started = time.monotonic()
        peak_outage = 0
        while time.monotonic() - started < args.outage_secs:
            peak_outage = max(peak_outage, rss_bytes(pid))
            time.sleep(0.2)
        read_during_outage = ingestor.total("ingestor_read_events_total")
        inflight_during_outage = ingestor.total("ingestor_inflight_bytes")
        emulator.set_faults(fail_5xx_rate=0.0)
        healed = time.monotonic()
        peak_after = 0

        def caught_up() -> bool:
            nonlocal peak_after
            peak_after = max(peak_after, rss_bytes(pid))
            return committed_offsets(broker.bootstrap, "defender", "outage") == per_partition

        wait_for(caught_up, timeout=1800, interval=0.5, what="catch-up after the outage")
        catch_up = time.monotonic() - healed
        retries = ingestor.total("ingestor_retries_total")
        assert ingestor.terminate() == 0
    finally:
        emulator.stop()
        broker.stop()
    result = {
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=ROOT).stdout.strip(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "records": args.records,
        "raw_mb": round(raw / 1e6, 1),
        "outage_secs": args.outage_secs,
        "max_inflight_mib": args.max_inflight_mib,
        "rss_mib_at_start": round(baseline / MiB, 1),
        "read_during_outage": read_during_outage,
        "inflight_mib_during_outage": round(inflight_during_outage / MiB, 1),
        "peak_rss_mib_during_outage": round(peak_outage / MiB, 1),
        "peak_rss_mib_catching_up": round(peak_after / MiB, 1),
        "catch_up_secs": round(catch_up, 1),
        "catch_up_mb_per_sec": round(raw / 1e6 / catch_up, 1),
        "retries": retries,
    }  # fmt: skip
    out = ROOT / "benchmarks" / "results" / f"outage-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    subprocess.run(["rm", "-rf", str(work)], check=True)
    for key, value in result.items():
        print(f"{key:>28}: {value}")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
