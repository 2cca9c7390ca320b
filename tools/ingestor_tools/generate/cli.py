"""`ingestor generate`: write seeded synthetic Defender traffic to a file or a Kafka topic, plus a manifest.

`run(argv)` parses the options, generates, prints a one-line summary on stderr and returns the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from ingestor.tables import load_schemas
from ingestor_tools.generate.manifest import ENVELOPES, INVALID_KINDS
from ingestor_tools.generate.sinks import produce_kafka, write_file
from ingestor_tools.generate.traffic import DEFAULT_MIX, MIXES, TrafficGenerator


def parse_mix(text: str) -> dict[str, float]:
    """A named mix (`all`, `device`) or `"DeviceProcessEvents=30,DeviceNetworkEvents=25"` -> weights; unknown
    tables name the valid ones."""
    if text.strip() in MIXES:
        return dict(MIXES[text.strip()])
    valid = sorted(load_schemas())
    mix: dict[str, float] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, weight = item.partition("=")
        name = name.strip()
        if name not in valid:
            raise argparse.ArgumentTypeError(f"unknown table {name!r}; valid tables: {', '.join(valid)}")
        try:
            value = float(weight) if sep else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"weight for {name} must be a number, not {weight!r}") from None
        if value < 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"weight for {name} must be a finite number >= 0")
        mix[name] = value
    if not mix or sum(mix.values()) <= 0:
        raise argparse.ArgumentTypeError("the mix needs at least one table with a positive weight")
    return mix


def parse_range(text: str) -> tuple[int, int]:
    """`"1-40"` -> (1, 40); `"10"` -> (10, 10)."""
    lo, sep, hi = text.partition("-")
    try:
        low = int(lo)
        high = int(hi) if sep else low
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX, not {text!r}") from None
    if not 1 <= low <= high:
        raise argparse.ArgumentTypeError(f"need 1 <= MIN <= MAX, not {text!r}")
    return low, high


def parse_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, not {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, not {text!r}")
    return value


def parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO-8601 time, not {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingestor generate",
        description="Generate seeded synthetic Defender XDR Streaming API traffic for every table it exports "
        "(Device, alert, mail, identity, cloud-app and URL-click tables), with a manifest of what was made.",
    )
    parser.add_argument("--seed", type=int, default=1, help="RNG seed; same options + seed = same bytes")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--events", type=positive, help="records to generate (default 1000)")
    amount.add_argument("--messages", type=positive, help="message bodies to generate")
    parser.add_argument(
        "--mix",
        type=parse_mix,
        help=f"a named mix ({', '.join(MIXES)}: the ten Device tables alone) or table weights, e.g. "
        "DeviceProcessEvents=30,DeviceNetworkEvents=25 (default: all, every table in a realistic tenant's "
        "proportions: " + ",".join(f"{t}={w:g}" for t, w in DEFAULT_MIX.items()) + ")",
    )
    parser.add_argument("--devices", type=positive, default=200, help="size of the device pool (default 200)")
    parser.add_argument(
        "--records-per-message",
        type=parse_range,
        default=(1, 40),
        metavar="MIN-MAX",
        help="records per message body (default 1-40)",
    )
    parser.add_argument(
        "--envelope",
        choices=ENVELOPES,
        default="records",
        help='"records": {"records":[...]} bodies; "lines": JSON Lines (Storage export)',
    )
    parser.add_argument(
        "--invalid-rate",
        type=parse_rate,
        default=0.0,
        help=f"share of invalid records, of kinds {', '.join(INVALID_KINDS)} (default 0)",
    )
    parser.add_argument(
        "--drift-rate",
        type=parse_rate,
        default=0.0,
        help='share of valid records with one value in another of Defender\'s own spellings ("" for null, '
        '"0"/"1" for a flag, a number as text or text as a number, a dynamic object as JSON text); they land where '
        "the decoder converts them (default 0: every value typed as its schema says)",
    )
    parser.add_argument("--start-time", type=parse_time, help="ISO-8601 time of the first event (default: now)")
    parser.add_argument("--out", help="write bodies to this file, one per line")
    parser.add_argument(
        "--bootstrap-servers", metavar="HOST:PORT", help="Kafka bootstrap servers (plaintext, no authentication)"
    )
    parser.add_argument("--topic", help="topic to produce to (with --bootstrap-servers)")
    parser.add_argument("--partitions", type=positive, help="partitions when the topic must be created")
    parser.add_argument("--manifest", help="write the manifest (what was generated) as JSON to this file")
    return parser


def run(argv: Sequence[str]) -> int:
    """Entry point of `ingestor generate`; returns the process exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
        kafka = args.bootstrap_servers is not None or args.topic is not None
        if kafka and (args.bootstrap_servers is None or args.topic is None):
            parser.error("--bootstrap-servers and --topic go together")
        if kafka == (args.out is not None):
            parser.error("give exactly one destination: --out FILE, or --bootstrap-servers with --topic")
        if args.partitions is not None and not kafka:
            parser.error("--partitions needs --bootstrap-servers and --topic")
    except SystemExit as exc:  # argparse reports usage errors (and --help) by exiting
        return exc.code if isinstance(exc.code, int) else 2

    generator = TrafficGenerator(
        args.seed,
        mix=DEFAULT_MIX if args.mix is None else args.mix,
        devices=args.devices,
        start_time=args.start_time,
        invalid_rate=args.invalid_rate,
        drift_rate=args.drift_rate,
    )
    records = args.events if args.messages is None else None
    if records is None and args.messages is None:
        records = 1000
    bodies = generator.messages(
        args.messages, records=records, records_per_message=args.records_per_message, envelope=args.envelope
    )
    started = time.perf_counter()
    try:
        if kafka:
            asyncio.run(produce_kafka(args.bootstrap_servers, args.topic, bodies, partitions=args.partitions))
            destination = f"{args.bootstrap_servers}/{args.topic}"
        else:
            write_file(args.out, bodies)
            destination = args.out
    except OSError as exc:
        print(f"ingestor generate: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    manifest = generator.manifest
    if args.manifest:
        with open(args.manifest, "w", encoding="utf-8") as out:
            out.write(manifest.to_json() + "\n")
    tables = " ".join(f"{t}={n}" for t, n in sorted(manifest.valid.items(), key=lambda kv: -kv[1]) if n)
    print(
        f"generated {manifest.records} records ({manifest.valid_records} valid, {manifest.invalid_records} invalid,"
        f" {manifest.skipped} of them unknown-category; {manifest.drifted_records} valid with type drift)"
        f" in {manifest.messages} messages,"
        f" {manifest.raw_bytes / 1e6:.2f} MB -> {destination} in {elapsed:.1f}s; {tables}",
        file=sys.stderr,
    )
    return 0
