"""`make bench`: floor, baseline and ingestor on the same seeded input, in one run on this machine.

- floor: decode + validate + shape + batch + gzip in this process, no I/O;
- baseline: `baseline.py`, the hand-written aiokafka + `LogsIngestionClient.upload(list)` pipeline;
- ingestor: Tansu broker -> `ingestor run` (its own process) -> emulator over HTTPS, offsets committed; its
  rate and CPU are taken between 10% and 90% of the records settled (steady state, without the last linger wait).
The topic is filled before anything is timed; the emulator runs in count mode (checks the size limit and the
gzip stream, counts rows, stores nothing) for both baseline and ingestor. A last run paces input at half the
ingestor's measured rate and reads the event-to-acknowledgement latency histogram.
Writes benchmarks/results/bench-<time>.json and the same figures to latest.json (which the docs quote, with
the date, the commit and the machine), latest.md and latest.png; `--profile` adds a py-spy profile of
one ingestor run with the share of time per stage. `--against REV` also runs the ingestor of an earlier commit
(its `ingestor/` and `schemas/` taken from git), alternating with this one run by run, for a before/after in one
run on the same input. `--mix all` (the default: every table the Streaming API exports, in the generator's
DEFAULT_MIX, as the product ingests by default), `--mix device` (the ten Device tables, the input of every run
before issue 21; use it `--against` a commit of then) or a tenant's own weights (`Table=weight,...`, as `ingestor
generate --mix` takes them) picks the input's tables; `input.mix` records it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests"))

from realparts import (  # noqa: E402
    TOKEN,
    BackgroundProducer,
    BrokerProcess,
    EmulatorProcess,
    IngestorProcess,
    committed_offsets,
    http_get,
    ingestor_config,
    metric_total,
    parse_metrics,
    produce,
    wait_for,
)

from ingestor.commit import OffsetTracker, Position  # noqa: E402
from ingestor.config import LogsIngestionSinkConfig  # noqa: E402
from ingestor.pipeline.batch import Batcher  # noqa: E402
from ingestor.pipeline.decode import MessageDecoder  # noqa: E402
from ingestor.retention import build_routes  # noqa: E402
from ingestor.sinks.compress import BACKEND, gzip_array  # noqa: E402
from ingestor.tables import load_schemas  # noqa: E402
from ingestor_tools.generate import TrafficGenerator  # noqa: E402
from ingestor_tools.generate.cli import parse_mix  # noqa: E402

PARTITIONS = 4
MiB = 1_048_576
LIMIT = 1_048_576
# py-spy frames -> pipeline stage, first match wins
STAGES = (
    ("compress (gzip)", ("gzip_array", "compress.py")),
    ("shape + encode", ("_shape", "_parse_dynamic")),
    ("decode + validate", ("MessageDecoder.", "_split_message")),
    ("kafka fetch", ("aiokafka",)),
    ("https upload", ("aiohttp", "azure/core", "azure/monitor", "ssl.py", "logs_ingestion.py")),
    ("batch + delivery", ("batch.py", "delivery.py", "flow.py", "commit.py")),
    ("metrics", ("prometheus_client", "health.py")),
)


def cpu_secs(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


# -- floor ---------------------------------------------------------------------------------------------------


def floor(messages: list[bytes], records: int) -> dict[str, Any]:
    """Decode, validate, shape, batch by compressed size and gzip, single-threaded, no I/O."""
    sink = LogsIngestionSinkConfig.model_validate({"endpoint": "https://x.example", "rule_id": "dcr-" + "0" * 32})
    routes = build_routes(sink)
    decoder = MessageDecoder(load_schemas(), routes=routes)
    batchers = {
        r.fallback: Batcher(r.fallback, max_request_bytes=sink.max_request_bytes, linger_secs=3600)
        for r in routes.values()
    }
    ticket = OffsetTracker().track(Position("bench", 0, 0))
    sizes: list[int] = []

    def send(batch: Any) -> None:
        if batch is not None:
            payload = gzip_array(batch.body, sink.compression_level)
            batchers[batch.destination].observe(batch.raw_bytes, len(payload))
            sizes.append(len(payload))

    started = time.process_time()
    for message in messages:
        for row in decoder.decode(message).rows:
            send(batchers[row.destination].add(row.body, ticket))
    for batcher in batchers.values():
        for batch in batcher.close():
            send(batch)
    cpu = time.process_time() - started
    return {"cpu_secs": cpu, "wall_secs": cpu, "requests": len(sizes), "body_bytes": sum(sizes), "records": records}


# -- runs against real parts ---------------------------------------------------------------------------------


def bench_config(
    work: Path, broker: BrokerProcess, emulator: EmulatorProcess, topic: str, group: str
) -> dict[str, Any]:
    """The production defaults, except what the local parts need (emulator token and CA, Tansu's join delay)."""
    config = ingestor_config(work, broker.bootstrap, emulator, topic=topic, group=group)
    for test_setting in ("linger_secs", "auth_retry_secs", "max_backoff_secs"):
        del config["sink"][test_setting]
    config["log_level"] = "WARNING"
    return config


def children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (the workers of `ingestor run --workers N`)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return found


def ingestor_run(work: Path, broker: BrokerProcess, emulator: EmulatorProcess, topic: str, records: int,
                 run: int, profile: bool, workers: int = 1) -> dict[str, Any]:  # fmt: skip
    group = f"bench-{run}-{time.time_ns()}"
    before = emulator.stats()
    parts = [pid for pid in (broker.pid, emulator.pid) if pid is not None]
    config = bench_config(work, broker, emulator, topic, group)
    args = ("--workers", str(workers)) if workers > 1 else ()
    ingestor = IngestorProcess(work, config, name=f"ingestor-{run}", args=args)
    ports = [ingestor.port + i for i in range(workers)]
    spy = None
    try:
        wait_for(lambda: all(http_get(port, "/readyz")[0] == 200 for port in ports), timeout=60, interval=0.05,
                 what="partitions assigned")  # fmt: skip
        pids = children(ingestor.process.pid) if workers > 1 else [ingestor.process.pid]
        if profile:
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pids[0]), "-f", "raw", "-r", "250",
                 "-o", str(work / "profile.txt"), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        started = time.monotonic()
        samples: list[tuple[float, float, float, float]] = []  # (time, ingestor cpu, broker+emulator cpu, settled)
        names = ("ingestor_accepted_events_total", "ingestor_dead_lettered_events_total")

        def settled_all() -> bool:
            settled = sum(
                metric_total(parse_metrics(http_get(port, "/metrics")[1]), n) for port in ports for n in names
            )
            now = time.monotonic()
            samples.append((now, sum(map(cpu_secs, pids)), sum(map(cpu_secs, parts)), settled))
            return settled >= records

        wait_for(settled_all, timeout=1800, interval=0.25, what="every record settled")
        rss = sum(peak_rss(p) for p in pids)
        # Steady state: from 10% to 90% settled, so neither the start nor the last linger wait counts.
        first = next(s for s in samples if s[3] >= 0.1 * records)
        last = next(s for s in samples if s[3] >= 0.9 * records)
        elapsed, cpu, parts_cpu, counted = (b - a for a, b in zip(first, last, strict=True))
        total_secs = samples[-1][0] - started
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
        assert ingestor.terminate() == 0
    after = emulator.stats()
    return {
        "records": records,
        "workers": workers,
        "steady": {"records": counted, "wall_secs": elapsed, "cpu_secs": cpu},
        "total_secs": total_secs,
        "wall_secs": elapsed * records / counted,
        "cpu_secs": cpu * records / counted,
        "parts_cpu_secs": parts_cpu * records / counted,
        "peak_rss_bytes": rss,
        "requests": after["requests_total"] - before["requests_total"],
        "body_bytes": _bytes(after) - _bytes(before),
    }


def _bytes(stats: dict[str, Any]) -> int:
    return sum(int(s["body_bytes"]) for s in stats["streams"].values())


def baseline_run(
    broker: BrokerProcess, emulator: EmulatorProcess, topic: str, records: int, run: int
) -> dict[str, Any]:
    before = emulator.stats()
    command = [
        sys.executable, str(ROOT / "benchmarks" / "baseline.py"), "--bootstrap", broker.bootstrap, "--topic", topic,
        "--group", f"baseline-{run}-{time.time_ns()}", "--endpoint", emulator.endpoint, "--ca-file",
        str(emulator.ca_file), "--token", TOKEN, "--rule-id", "dcr-" + "0" * 32, "--records", str(records),
    ]  # fmt: skip
    result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    after = emulator.stats()
    result["requests"] = after["requests_total"] - before["requests_total"]
    result["body_bytes"] = _bytes(after) - _bytes(before)
    return result


def latency_run(
    work: Path, broker: BrokerProcess, emulator: EmulatorProcess, rate: float, seconds: float
) -> dict[str, Any]:
    topic = f"latency-{time.time_ns()}"
    produce(broker.bootstrap, topic, [], partitions=PARTITIONS)
    ingestor = IngestorProcess(work, bench_config(work, broker, emulator, topic, topic), name="ingestor-latency")
    try:
        wait_for(lambda: ingestor.get("/readyz")[0] == 200, timeout=60, what="partitions assigned")
        producer = BackgroundProducer(broker.bootstrap, topic, PARTITIONS, seed=7, rate_records=rate)
        time.sleep(seconds)  # the paced input runs for this long
        producer.stop()
        wait_for(lambda: committed_offsets(broker.bootstrap, topic, topic) == producer.per_partition, timeout=120,
                 interval=0.5, what="latency run committed")  # fmt: skip
        samples = ingestor.metrics()
    finally:
        assert ingestor.terminate() == 0
    buckets: dict[float, float] = {}
    for (name, labels), value in samples.items():
        if name == "ingestor_ack_latency_seconds_bucket":
            le = float(dict(labels)["le"])
            buckets[le] = buckets.get(le, 0.0) + value
    return {"rate_records": rate, "seconds": seconds, "p50": quantile(buckets, 0.5), "p99": quantile(buckets, 0.99)}


def quantile(buckets: dict[float, float], q: float) -> float:
    """Linear interpolation inside cumulative histogram buckets (as Prometheus' histogram_quantile)."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * ((rank - below) / max(count - below, 1e-9))
        lower, below = bound, count
    return lower


def summarize(runs: list[dict[str, Any]], raw_bytes: int) -> dict[str, Any]:
    median = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    wall, cpu = median("wall_secs"), median("cpu_secs")
    records = runs[0]["records"]
    requests, body = median("requests"), median("body_bytes")
    out = {
        "runs": len(runs),
        "events_per_sec": round(records / wall),
        "raw_mb_per_sec": round(raw_bytes / 1e6 / wall, 1),
        "events_per_cpu_sec": round(records / cpu),
        "cpu_secs_per_gb": round(cpu / (raw_bytes / 1e9), 2),
        "requests_per_gb": round(requests / (raw_bytes / 1e9), 1),
        "mean_request_bytes": round(body / max(requests, 1)),
        "mean_request_share_of_limit": round(body / max(requests, 1) / LIMIT, 3),
    }
    if "peak_rss_bytes" in runs[0]:
        out["peak_rss_mib"] = round(max(r["peak_rss_bytes"] for r in runs) / MiB, 1)
    if "total_secs" in runs[0]:
        out["first_to_last_ack_secs"] = round(median("total_secs"), 2)
        # Cores the process used, and the broker and emulator beside it, in steady state: what scale-out has left.
        out["ingestor_cores"] = round(cpu / wall, 2)
        out["broker_emulator_cores"] = round(median("parts_cpu_secs") / wall, 2)
    return out


def profile_summary(path: Path) -> dict[str, float]:
    """Share of samples per stage; a sample belongs to the stage of its innermost recognised frame."""
    shares: dict[str, float] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        stage = next(
            (name for frame in reversed(stack.split(";")) for name, marks in STAGES if any(m in frame for m in marks)),
            "other (event loop, startup)",
        )
        shares[stage] = shares.get(stage, 0) + int(count)
    return {k: round(v / max(total, 1), 3) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])}


def arguments(argv: list[str] | None = None) -> tuple[argparse.Namespace, dict[str, float]]:
    """`make bench`'s arguments (`BENCH_ARGS`) and the input's table weights; exits naming a bad one."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-secs", type=float, default=20.0)
    parser.add_argument("--profile", action="store_true", help="py-spy profile of one extra ingestor run")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--workers", type=int, default=2, help="also run `ingestor run --workers N` (0: skip)")
    parser.add_argument("--against", metavar="REV", help="also run the ingestor of commit REV, alternating runs")
    parser.add_argument(
        "--mix",
        default="all",
        help="tables of the input: all (the default: every table the Streaming API exports, in the generator's "
        "DEFAULT_MIX), device (the ten Device tables, the input of every run before issue 21, for --against one) "
        "or your tenant's weights, as `ingestor generate --mix` takes them (DeviceProcessEvents=30,...)",
    )
    args = parser.parse_args(argv)
    try:
        mix = parse_mix(args.mix)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"--mix: {exc}")
    return args, mix


def main() -> None:
    args, mix = arguments()
    generator = TrafficGenerator(seed=1, mix=mix)
    messages = list(generator.messages(records=args.records))
    records, raw = generator.manifest.records, sum(map(len, messages))
    print(f"input: {records:,} records, {raw / 1e6:.0f} MB, {len(messages):,} messages, "
          f"{raw / records:.0f} B/record")  # fmt: skip
    results: dict[str, Any] = {
        "commit": commit(),
        "machine": machine(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "input": {
            "records": records,
            "raw_mb": round(raw / 1e6, 1),
            "messages": len(messages),
            "seed": 1,
            "mix": args.mix,
            "tables": {t: n for t, n in generator.manifest.valid.items() if n},
        },
    }
    results["floor"] = summarize([floor(messages, records) for _ in range(args.runs)], raw)
    print("floor", results["floor"])

    work = RESULTS / "bench-work"
    subprocess.run(["rm", "-rf", str(work)], check=True)
    work.mkdir(parents=True)
    broker = BrokerProcess(work, own=True)
    emulator = EmulatorProcess(work / "emulator", "--mode", "count")
    try:
        produce(broker.bootstrap, "bench", messages, partitions=PARTITIONS)
        del messages
        if args.against:
            earlier = checkout(args.against, work / "against")
            runs, before = [], []
            for i in range(args.runs):  # alternate, so that both see the same machine
                runs.append(ingestor_run(work, broker, emulator, "bench", records, i, False))
                with python_path(earlier):
                    before.append(ingestor_run(work, broker, emulator, "bench", records, 50 + i, False))
            results[f"ingestor@{args.against}"] = summarize(before, raw)
            print(f"ingestor@{args.against}", results[f"ingestor@{args.against}"])
        else:
            runs = [ingestor_run(work, broker, emulator, "bench", records, i, False) for i in range(args.runs)]
        results["ingestor"] = summarize(runs, raw)
        print("ingestor", results["ingestor"])
        if args.workers > 1:
            scaled = [ingestor_run(work, broker, emulator, "bench", records, 10 + i, False, args.workers)
                      for i in range(args.runs)]  # fmt: skip
            results[f"ingestor x{args.workers}"] = summarize(scaled, raw)
            print(f"ingestor x{args.workers}", results[f"ingestor x{args.workers}"])
        if not args.skip_baseline:
            results["baseline"] = summarize([baseline_run(broker, emulator, "bench", records, i)
                                             for i in range(args.runs)], raw)  # fmt: skip
            print("baseline", results["baseline"])
        half = results["ingestor"]["events_per_sec"] / 2
        results["latency"] = latency_run(work, broker, emulator, half, args.latency_secs)
        print("latency", results["latency"])
        if args.profile:
            ingestor_run(work, broker, emulator, "bench", records, 99, True)
            results["profile"] = profile_summary(work / "profile.txt")
            print("profile", results["profile"])
    finally:
        emulator.stop()
        broker.stop()
    subprocess.run(["rm", "-rf", str(work)], check=True)
    write(results)


def commit() -> str:
    """The commit measured, `+dirty` when tracked files differ from it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=True)
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=ROOT).returncode != 0
    return head.stdout.strip() + ("+dirty" if dirty else "")


def machine() -> dict[str, Any]:
    """What the figures depend on: cores, CPU model, Python, the gzip backend, and how busy the machine was."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "unknown")
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "arch": platform.machine(),
        "python": platform.python_version(),
        "gzip": BACKEND,
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }


def describe(machine: dict[str, Any]) -> str:
    """The machine in one line."""
    return (f"{machine['cores']} cores {machine['cpu']} ({machine['arch']}), Python {machine['python']}, "
            f"gzip {machine['gzip']}, load {machine['load_average_1m_at_start']} at start")  # fmt: skip


def checkout(rev: str, directory: Path) -> Path:
    """`ingestor/` and `schemas/` of commit `rev` in `directory`, importable with `python_path`."""
    subprocess.run(["rm", "-rf", str(directory)], check=True)
    directory.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev, "ingestor", "schemas"], cwd=ROOT, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive.stdout, check=True)
    return directory


@contextlib.contextmanager
def python_path(directory: Path) -> Iterator[None]:
    """Processes started meanwhile import the ingestor from `directory` instead of the installed one."""
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(directory)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = previous


def ratios(results: dict[str, Any]) -> dict[str, float]:
    ingestor, floor_ = results["ingestor"], results["floor"]
    out = {"ingestor_vs_floor_rate": round(ingestor["events_per_sec"] / floor_["events_per_sec"], 3)}
    for name in results:
        if name.startswith("ingestor x"):
            out[f"{name.replace(' ', '_')}_vs_one"] = round(
                results[name]["events_per_sec"] / ingestor["events_per_sec"], 2
            )
        if name.startswith("ingestor@"):
            out[f"events_per_cpu_sec_vs_{name.removeprefix('ingestor@')}"] = round(
                ingestor["events_per_cpu_sec"] / results[name]["events_per_cpu_sec"], 3
            )
    if "baseline" in results:
        baseline = results["baseline"]
        out["events_per_cpu_sec_vs_baseline"] = round(
            ingestor["events_per_cpu_sec"] / baseline["events_per_cpu_sec"], 2
        )
        out["requests_vs_baseline"] = round(baseline["requests_per_gb"] / ingestor["requests_per_gb"], 2)
    return out


def write(results: dict[str, Any]) -> None:
    results["ratios"] = ratios(results)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    text = json.dumps(results, indent=2) + "\n"
    (RESULTS / f"bench-{stamp}.json").write_text(text)  # the history, one file per run
    (RESULTS / "latest.json").write_text(text)  # the figures docs/performance.md and the README quote
    rows = [name for name in results if name in ("floor", "baseline") or name.startswith("ingestor")]
    columns = ("events_per_sec", "raw_mb_per_sec", "events_per_cpu_sec", "cpu_secs_per_gb", "requests_per_gb",
               "mean_request_bytes", "peak_rss_mib", "ingestor_cores", "broker_emulator_cores")  # fmt: skip
    lines = [
        f"Benchmark {results['time']}, commit {results['commit']}, {describe(results['machine'])}; input "
        f"{results['input']['records']:,} records of the {results['input']['mix']} mix "
        f"({results['input']['raw_mb']} MB), medians of "
        f"{results['ingestor']['runs']} runs.",
        "",
        "| | " + " | ".join(columns) + " |",
        "| --- |" + " --- |" * len(columns),
    ]
    for name in rows:
        cells = [results[name].get(c) for c in columns]
        lines.append(f"| {name} | " + " | ".join(f"{v:,}" if v is not None else "-" for v in cells) + " |")
    latency = results["latency"]
    lines += ["", f"Event-to-acknowledgement latency at {latency['rate_records']:,.0f} events/s (half the ingestor's "
              f"rate): p50 {latency['p50']:.2f} s, p99 {latency['p99']:.2f} s.", "",
              "Ratios: " + ", ".join(f"{k} {v}" for k, v in results["ratios"].items())]  # fmt: skip
    if "profile" in results:
        lines += ["", "Profile of the ingestor process (share of samples): "
                  + ", ".join(f"{k} {v:.0%}" for k, v in results["profile"].items())]  # fmt: skip
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")
    chart(results, rows)
    print("\n".join(lines))


def chart(results: dict[str, Any], rows: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    panels = (
        ("events_per_sec", "events/s"),
        ("events_per_cpu_sec", "events per CPU second"),
        ("requests_per_gb", "requests per GB"),
    )
    for axis, (key, title) in zip(axes, panels, strict=True):
        values = [results[name][key] for name in rows]
        axis.bar(rows, values, color=[("#9aa", "#2a6", "#6b8", "#c64", "#68b")[i % 5] for i in range(len(rows))])
        axis.set_title(title)
        for i, value in enumerate(values):
            axis.annotate(f"{value:,.0f}", (i, value), ha="center", va="bottom", fontsize=8)
    records, where = results["input"]["records"], describe(results["machine"])
    fig.suptitle(f"{records:,} Defender records, commit {results['commit']}, {where}")
    fig.tight_layout()
    fig.savefig(RESULTS / "latest.png", dpi=100)


if __name__ == "__main__":
    main()
