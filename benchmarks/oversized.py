"""Oversized input alongside valid traffic: peak RSS of the ingestor while it refuses records and messages too big.

Fills a 2-partition topic on a local Tansu broker with valid generated traffic (TrafficGenerator) interleaved with
oversized input, spread evenly through it:

* `--records` messages under `validation.max_message_bytes` that each hold one record of about `--record-mb` MB
  (over `validation.max_record_bytes`) among `--companions` valid records: dead letter `oversized_record`;
* `--messages` messages of `--message-mb` MB (over `validation.max_message_bytes`), alternately one huge record and
  several records of 2-3 MB: dead letter `oversized_message`.

A big record is a valid DeviceProcessEvents record whose ProcessCommandLine is base64 text of random bytes, so it
is well-formed JSON (a decoder goes all the way through it) and gzip cannot hide a dead-letter copy that is not
bounded. The broker (Tansu 0.6.0, memory storage) accepted single messages of 30 MB in a probe; the producer's
max_request_size is raised to 32 MiB.

Then starts the ingestor (file dead letter, the emulator in count mode, the package's default
`sink.max_inflight_bytes` unless `--max-inflight-mib`) and samples its RSS from /proc every 0.1 s until every
message is committed (or the process dies: that is recorded, not raised). Reports RSS at start, peak RSS (sampled,
and the kernel's VmHWM), the bound, peak minus bound, the time until everything is committed, counts by outcome
from /metrics with the check read = landed + dead-lettered + skipped, and the dead-letter files' size and largest
raw copy. Prints the figures and writes them to benchmarks/results/oversized-<time>.json. Not a test: run it by
hand or with `make bench-oversized`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import msgspec  # noqa: E402
from realparts import (  # noqa: E402
    BrokerProcess,
    EmulatorProcess,
    IngestorProcess,
    committed_offsets,
    ingestor_config,
    wait_for,
)

import ingestor  # noqa: E402
from ingestor.config import KafkaSourceConfig, LogsIngestionSinkConfig, ValidationConfig  # noqa: E402
from ingestor_tools.generate import TrafficGenerator, ensure_topic  # noqa: E402

MiB = 1_048_576
MB = 1_000_000
TOPIC = "defender"
GROUP = "oversized"
PARTITIONS = 2
MAX_REQUEST_BYTES = 32 * MiB  # producer side; the largest message is `--message-mb` max
BOUNDED_COPY_BYTES = 65_536  # the contract: a refused oversized item keeps at most this much of its raw bytes
COMPANION_TABLES = ("DeviceNetworkEvents", "DeviceFileEvents", "DeviceRegistryEvents", "DeviceEvents")
_encode = msgspec.json.encode


def proc_status(pid: int, field: str) -> int:
    """A `kB` field of /proc/<pid>/status in bytes; 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def default(model: Any, name: str) -> Any:
    """The installed package's default for a config key, or None when that version has no such key."""
    field = model.model_fields.get(name)
    return field.default if field is not None else None


def installed_matches_head() -> bool:
    """Whether the installed ingestor package is byte-for-byte the ingestor/ tree of HEAD (what `commit` says)."""
    installed = Path(ingestor.__file__).parent
    files = sorted(p for p in installed.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    tree = subprocess.run(["git", "ls-tree", "-r", "HEAD", "ingestor/"], capture_output=True, text=True, cwd=ROOT)
    head = {line.split("\t")[1]: line.split()[2] for line in tree.stdout.splitlines()}
    hashed = subprocess.run(
        ["git", "hash-object", "--stdin-paths"],
        input="\n".join(map(str, files)),
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout.split()
    mine = {f"ingestor/{p.relative_to(installed)}": h for p, h in zip(files, hashed, strict=True)}
    return all(mine.get(path) == blob for path, blob in head.items())  # schemas/ is added from outside


class Input:
    """The topic's content, built lazily in produce order: valid messages with oversized items spread among them."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.generator = TrafficGenerator(seed=args.seed)
        self.valid = list(self.generator.messages(records=args.valid_records))
        self.rng = random.Random(args.seed)
        self.noise = random.Random(args.seed + 1)  # blob bytes: sizes and order stay the same from run to run
        self.items = ["record"] * args.records + ["message"] * args.messages
        self.rng.shuffle(self.items)
        self.max_message_bytes = default(ValidationConfig, "max_message_bytes") or 4 * MiB
        self.counts: Counter[str] = Counter()  # messages by kind, and records landing by the contract
        self.sizes: Counter[str] = Counter()  # bytes by kind

    def blob_record(self, size: int) -> bytes:
        """A valid DeviceProcessEvents record of `size` bytes, its ProcessCommandLine base64 of random bytes."""
        record = self.generator.record("DeviceProcessEvents")
        record["properties"]["ProcessCommandLine"] = ""
        room = max(size - len(_encode(record)), 4)
        text = base64.b64encode(self.noise.randbytes(room * 3 // 4 + 3))[:room].decode()
        record["properties"]["ProcessCommandLine"] = text
        return _encode(record)

    def oversized_record_message(self) -> bytes:
        size = int(self.args.record_mb * MB * self.rng.uniform(0.9, 1.1))
        companions = [_encode(self.generator.record(COMPANION_TABLES[i % 4])) for i in range(self.args.companions)]
        records = [*companions[: len(companions) // 2], self.blob_record(size), *companions[len(companions) // 2 :]]
        body = b'{"records":[' + b",".join(records) + b"]}"
        if len(body) > self.max_message_bytes:
            raise SystemExit(f"--record-mb {self.args.record_mb} makes a {len(body)}-byte message, over "
                             f"validation.max_message_bytes {self.max_message_bytes}: lower it")  # fmt: skip
        self.counts["companion_records"] += len(companions)
        return body

    def oversized_message(self) -> bytes:
        lo, hi = self.args.message_mb
        size = int(self.rng.uniform(lo, hi) * MB)
        if self.counts["oversized_message"] % 2 == 0:
            records = [self.blob_record(size - 14)]
        else:
            records = []
            left = size - 14
            while left > 0:
                part = min(left, int(self.rng.uniform(2.0, 3.0) * MB))
                records.append(self.blob_record(max(part, 2 * MB)))
                left -= len(records[-1]) + 1
        self.counts["records_in_oversized_messages"] += len(records)
        return b'{"records":[' + b",".join(records) + b"]}"

    def __iter__(self) -> Iterator[bytes]:
        spacing = len(self.valid) / (len(self.items) + 1)
        at = [int((j + 1) * spacing) for j in range(len(self.items))]
        queue = deque(zip(at, self.items, strict=True))
        for index, body in enumerate(self.valid):
            while queue and queue[0][0] == index:
                kind = queue.popleft()[1]
                big = self.oversized_record_message() if kind == "record" else self.oversized_message()
                kind = "oversized_record" if kind == "record" else "oversized_message"
                self.counts[kind] += 1
                self.sizes[kind] += len(big)
                yield big
            self.counts["valid"] += 1
            self.sizes["valid"] += len(body)
            yield body


async def produce(bootstrap: str, source: Input) -> dict[int, int]:
    """Every body of `source` round-robin over the partitions, at most 64 MB awaiting acknowledgement."""
    from aiokafka import AIOKafkaProducer

    await ensure_topic(bootstrap, TOPIC, PARTITIONS)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, max_request_size=MAX_REQUEST_BYTES, acks="all", linger_ms=5
    )
    await producer.start()
    per_partition = dict.fromkeys(range(PARTITIONS), 0)
    pending: deque[tuple[asyncio.Future[Any], int]] = deque()
    pending_bytes = 0
    try:
        for index, body in enumerate(source):
            partition = index % PARTITIONS
            pending.append((await producer.send(TOPIC, body, partition=partition), len(body)))
            pending_bytes += len(body)
            per_partition[partition] += 1
            while pending_bytes > 64 * MB:
                future, size = pending.popleft()
                await future
                pending_bytes -= size
        for future, _ in pending:
            await future
    finally:
        await producer.stop()
    return per_partition


class Sampler(threading.Thread):
    """RSS of `pid` every `interval` seconds, as (seconds since start, bytes)."""

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []
        self.started = time.monotonic()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            rss = proc_status(self.pid, "VmRSS")
            if rss:
                self.samples.append((time.monotonic() - self.started, rss))
            self.stopped.wait(self.interval)

    def peak(self, since: float = 0.0) -> int:
        return max((rss for t, rss in self.samples if t >= since), default=0)

    def per_second(self) -> list[float]:
        """Peak RSS in MiB of each whole second."""
        seconds: dict[int, int] = {}
        for t, rss in self.samples:
            seconds[int(t)] = max(seconds.get(int(t), 0), rss)
        return [round(seconds.get(s, 0) / MiB, 1) for s in range(max(seconds, default=-1) + 1)]


def dead_letter_summary(directory: Path) -> dict[str, Any]:
    """Files, bytes on disk, entries by reason and the raw copies' sizes (bytes of `raw` or of `raw_base64`)."""
    files = sorted(directory.glob("*.jsonl.gz")) if directory.is_dir() else []
    reasons: Counter[str] = Counter()
    largest = total = 0
    for path in files:
        with gzip.open(path, "rb") as lines:
            for line in lines:
                entry = msgspec.json.decode(line)
                reasons[entry["reason"]] += 1
                if entry.get("raw") is not None:
                    size = len(entry["raw"].encode())
                else:
                    size = len(base64.b64decode(entry.get("raw_base64") or ""))
                largest = max(largest, size)
                total += size
    return {
        "files": len(files),
        "file_mb": round(sum(p.stat().st_size for p in files) / MB, 2),
        "entries_by_reason": dict(sorted(reasons.items())),
        "raw_copies_mb": round(total / MB, 2),
        "largest_raw_copy_bytes": largest,
        "copies_bounded": largest <= BOUNDED_COPY_BYTES,
    }


def metric_by_label(samples: dict[Any, float], name: str, label: str) -> dict[str, int]:
    out: Counter[str] = Counter()
    for (sample, labels), value in samples.items():
        if sample == name:
            out[dict(labels).get(label, "")] += int(value)
    return dict(sorted(out.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--valid-records", type=int, default=40_000, help="valid generated records (default 40000)")
    parser.add_argument("--records", type=int, default=80, help="messages with one oversized record (default 80)")
    parser.add_argument("--record-mb", type=float, default=3.0, help="size of each oversized record (default 3)")
    parser.add_argument("--companions", type=int, default=4, help="valid records beside each oversized record")
    parser.add_argument("--messages", type=int, default=30, help="messages over max_message_bytes (default 30)")
    parser.add_argument("--message-mb", type=float, nargs=2, default=(10.0, 20.0), metavar=("MIN", "MAX"),
                        help="size range of those messages in MB (default 10 20)")  # fmt: skip
    parser.add_argument(
        "--max-inflight-mib", type=int, default=None, help="sink.max_inflight_bytes (default: the package's)"
    )
    parser.add_argument("--interval", type=float, default=0.1, help="RSS sampling interval in seconds")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up waiting for the commits after this")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.message_mb[1] * MB > MAX_REQUEST_BYTES - 1024:
        parser.error(f"--message-mb above {MAX_REQUEST_BYTES // MB} MB does not fit the producer's request size")

    bound = (
        args.max_inflight_mib * MiB if args.max_inflight_mib else default(LogsIngestionSinkConfig, "max_inflight_bytes")
    )
    defaults = {
        "validation.max_record_bytes": default(ValidationConfig, "max_record_bytes"),
        "validation.max_message_bytes": default(ValidationConfig, "max_message_bytes"),
        "sink.max_inflight_bytes": bound,
        "source.fetch_max_bytes": default(KafkaSourceConfig, "fetch_max_bytes"),
        "source.max_partition_fetch_bytes": default(KafkaSourceConfig, "max_partition_fetch_bytes"),
    }
    work = Path(tempfile.mkdtemp(prefix="oversized-work-"))
    broker = BrokerProcess(work, own=True)
    emulator = EmulatorProcess(work / "emulator", "--mode", "count")
    outcome = "committed"
    try:
        source = Input(args)
        produce_started = time.monotonic()
        per_partition = asyncio.run(produce(broker.bootstrap, source))
        produce_secs = time.monotonic() - produce_started
        del source.valid
        overrides: dict[str, Any] = {"sink__max_inflight_bytes": bound} if args.max_inflight_mib else {}
        config = ingestor_config(work, broker.bootstrap, emulator, topic=TOPIC, group=GROUP, **overrides)
        installed_is_head = installed_matches_head()  # what the ingestor process is about to import
        process = IngestorProcess(work, config)
        pid = process.process.pid
        sampler = Sampler(pid, args.interval)
        sampler.start()
        wait_for(lambda: process.get("/healthz")[0] == 200 or process.process.poll() is not None, what="ingestor up")
        up_at = time.monotonic() - sampler.started
        at_start = proc_status(pid, "VmRSS")
        metrics: dict[Any, float] = {}
        deadline = time.monotonic() + args.timeout
        while True:
            if process.process.poll() is not None:
                outcome = f"ingestor exited with {process.process.returncode} (-9: killed, e.g. OOM)"
                break
            if time.monotonic() > deadline:
                outcome = f"timed out after {args.timeout:.0f} s"
                break
            try:
                metrics = process.metrics() or metrics
            except AssertionError:
                continue  # exited between the poll and the scrape: the next round says so
            if all(
                metrics.get(("ingestor_committed_offset", (("partition", str(p)), ("topic", TOPIC)))) == n
                for p, n in per_partition.items()
            ):
                break
            time.sleep(0.5)
        done_at = time.monotonic() - sampler.started
        hwm = proc_status(pid, "VmHWM")
        sampler.stopped.set()
        sampler.join()
        broker_committed = committed_offsets(broker.bootstrap, TOPIC, GROUP)
        exit_code = process.terminate() if process.process.poll() is None else process.process.returncode
        log_tail = process.log()[-3000:] if outcome != "committed" else ""
        dead_letter = dead_letter_summary(work / "dead-letter")
    finally:
        emulator.stop()
        broker.stop()

    read = int(sum(v for (n, _), v in metrics.items() if n == "ingestor_read_events_total"))
    landed = int(sum(v for (n, _), v in metrics.items() if n == "ingestor_accepted_events_total"))
    skipped = int(sum(v for (n, _), v in metrics.items() if n == "ingestor_skipped_events_total"))
    dead_by_reason = metric_by_label(metrics, "ingestor_dead_lettered_events_total", "reason")
    dead = sum(dead_by_reason.values())
    counts, sizes = source.counts, source.sizes
    expected = {
        "landed": args.valid_records + counts["companion_records"],
        "oversized_record": counts["oversized_record"],
        "oversized_message": counts["oversized_message"],
    }
    peak = sampler.peak(since=up_at)
    result = {
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=ROOT).stdout.strip(),
        "installed_package_is_head": installed_is_head,
        "ingestor_package": str(Path(ingestor.__file__).parent),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "config_defaults": defaults,
        "valid_messages": counts["valid"],
        "valid_records": args.valid_records + counts["companion_records"],
        "valid_mb": round(sizes["valid"] / MB, 1),
        "oversized_record_messages": counts["oversized_record"],
        "oversized_record_mb": round(sizes["oversized_record"] / MB, 1),
        "oversized_messages": counts["oversized_message"],
        "records_in_oversized_messages": counts["records_in_oversized_messages"],
        "oversized_message_mb": round(sizes["oversized_message"] / MB, 1),
        "largest_message_mb": round(max(args.message_mb) , 1),
        "produce_secs": round(produce_secs, 1),
        "outcome": outcome,
        "exit_code": exit_code,
        "rss_mib_at_start": round(at_start / MiB, 1),
        "peak_rss_mib": round(peak / MiB, 1),
        "vm_hwm_mib": round(hwm / MiB, 1),
        "bound_mib": round(bound / MiB, 1),
        "peak_minus_bound_mib": round((peak - bound) / MiB, 1),
        "secs_until_committed": round(done_at - up_at, 1) if outcome == "committed" else None,
        "committed_per_partition": {str(p): broker_committed.get(p) for p in per_partition},
        "messages_per_partition": {str(p): n for p, n in per_partition.items()},
        "read": read,
        "landed": landed,
        "dead_lettered": dead_by_reason,
        "skipped": skipped,
        "read_is_landed_dead_skipped": read == landed + dead + skipped,
        "expected_by_contract": expected,
        "matches_contract": landed == expected["landed"]
        and all(dead_by_reason.get(k, 0) == v for k, v in expected.items() if k != "landed")
        and dead == expected["oversized_record"] + expected["oversized_message"],
        "dead_letter": dead_letter,
        "rss_mib_per_second": sampler.per_second(),
    }  # fmt: skip
    if log_tail:
        result["ingestor_log_tail"] = log_tail
    out = ROOT / "benchmarks" / "results" / f"oversized-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    if outcome == "committed":
        shutil.rmtree(work)
    else:
        print(f"work directory kept: {work}")
    for key, value in result.items():
        if key not in ("rss_mib_per_second", "ingestor_log_tail"):
            print(f"{key:>32}: {value}")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
