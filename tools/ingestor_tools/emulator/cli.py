"""`run(argv)`: the `ingestor emulator` command. Serves until SIGINT/SIGTERM, then exits 0; readiness is
announced by atomically writing `<state_dir>/emulator.json` and logging one JSON "listening" line to stderr.
With `--template`, it serves the rules of an `ingestor provision` template instead of the default one and
writes the outputs a deployment would report to `<state_dir>/deployment-outputs.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from ingestor_tools.emulator.dcr import DEFAULT_RULE_ID, DcrDefinition, default_dcr, deployment_outputs, template_dcrs
from ingestor_tools.emulator.faults import Faults
from ingestor_tools.emulator.server import Emulator

TOKEN_ENV = "INGESTOR_EMULATOR_TOKEN"  # noqa: S105 - a variable name, not a secret
READY_FILE = "emulator.json"
OUTPUTS_FILE = "deployment-outputs.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingestor emulator", description="Serve an HTTPS Azure Monitor Logs Ingestion API emulator."
    )
    parser.add_argument("--state-dir", type=Path, required=True, help="certificate, SQLite file, emulator.json")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
    parser.add_argument("--token", help=f"bearer token clients must present (default: ${TOKEN_ENV})")
    parser.add_argument("--rule-id", default=DEFAULT_RULE_ID, help="immutable id of the default DCR")
    parser.add_argument(
        "--template", type=Path, help="serve the DCRs of this `ingestor provision` ARM template instead of --rule-id"
    )
    parser.add_argument("--mode", choices=("store", "count"), default="store", help="store rows or only count")
    faults = parser.add_argument_group("fault injection")
    faults.add_argument("--fail-429-rate", type=float, default=0.0, help="fraction of requests answered 429")
    faults.add_argument("--retry-after-secs", type=int, default=1, help="Retry-After of a 429 (default: 1)")
    faults.add_argument("--fail-5xx-rate", type=float, default=0.0, help="fraction answered --fail-5xx-status")
    faults.add_argument("--fail-5xx-status", type=int, default=503, help="500 or 503 (default: 503)")
    faults.add_argument("--latency-ms", type=float, default=0.0, help="delay added before every answer")
    faults.add_argument("--drop-connection-rate", type=float, default=0.0, help="fraction of connections cut")
    faults.add_argument("--fail-next", default="", help="comma-separated statuses for the next requests")
    faults.add_argument(
        "--fail-always", type=int, help="answer every request with this status (after --fail-next) until changed"
    )
    faults.add_argument("--seed", type=int, default=0, help="seed of the random fault draws (default: 0)")
    return parser


def run(argv: list[str]) -> int:
    """Parse `argv`, serve until SIGINT/SIGTERM, return the exit status (argparse exits 2 on bad usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        parser.error(f"--token is required (or set {TOKEN_ENV})")
    try:
        faults = Faults().merged(
            {
                "fail_429_rate": args.fail_429_rate,
                "retry_after_secs": args.retry_after_secs,
                "fail_5xx_rate": args.fail_5xx_rate,
                "fail_5xx_status": args.fail_5xx_status,
                "latency_ms": args.latency_ms,
                "drop_connection_rate": args.drop_connection_rate,
                "fail_next": [int(s) for s in args.fail_next.split(",") if s.strip()],
                "fail_always": args.fail_always,
                "seed": args.seed,
            }
        )
    except ValueError as exc:
        parser.error(f"invalid fault option: {exc}")
    try:
        dcrs = template_dcrs(json.loads(args.template.read_text(encoding="utf-8"))) if args.template else None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        parser.error(f"--template {args.template}: not a template written by `ingestor provision` ({exc!r})")
    emulator = Emulator(
        args.state_dir,
        host=args.host,
        port=args.port,
        token=token,
        dcrs=dcrs or [default_dcr(args.rule_id)],
        mode=args.mode,
        faults=faults,
    )
    try:
        asyncio.run(_serve(emulator, dcrs))
    except OSError as exc:  # e.g. the port is taken or the state directory is not writable
        _log("failed", {"error": str(exc)}, level="error")
        return 1
    return 0


async def _serve(emulator: Emulator, provisioned: list[DcrDefinition] | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    ready = emulator.state_dir / READY_FILE
    ready.unlink(missing_ok=True)  # a stale file from an earlier run must not look like readiness
    async with emulator:
        info = {
            "endpoint": emulator.endpoint,
            "port": emulator.port,
            "ca_file": str(emulator.ca_file),
            "db_path": str(emulator.db_path),
            "pid": os.getpid(),
            "rule_ids": emulator.rule_ids,
            "mode": emulator.mode,
        }
        if provisioned is not None:
            outputs = emulator.state_dir / OUTPUTS_FILE
            outputs.write_text(json.dumps(deployment_outputs(emulator.endpoint, provisioned), indent=2), "utf-8")
            info["outputs_file"] = str(outputs)
        tmp = ready.with_name(f".{READY_FILE}.tmp")
        tmp.write_text(json.dumps(info), encoding="utf-8")
        os.replace(tmp, ready)
        _log("listening", info)
        try:
            await stop.wait()
        finally:
            ready.unlink(missing_ok=True)
        stats = emulator.stats()
    _log("stopped", {"requests": stats["requests"], "rows_total": stats["rows_total"]})


def _log(event: str, fields: Mapping[str, object], *, level: str = "info") -> None:
    record = {"ts": datetime.now(UTC).isoformat(), "level": level, "logger": __package__, "event": event}
    print(json.dumps({**record, **fields}), file=sys.stderr, flush=True)
