"""Command line: `ingestor run | check-config | replay | provision`, plus the commands other installed
distributions add through the `ingestor.commands` entry points (the tools package adds `emulator` and `generate`).

`run` validates the configuration before building any client, installs uvloop, and exits 0 after a graceful
SIGTERM/SIGINT shutdown (also while its start waits for a part it cannot reach yet); configuration errors, also
those found while building the clients or at the start, exit 2 with one line per problem naming the key; an internal
task that died exits 3 after the graceful shutdown (its ERROR line names it), any other failure 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from ingestor import __version__
from ingestor.config import Config
from ingestor.errors import ConfigError, IngestorError, TaskDied
from ingestor.logs import setup_logging

log = logging.getLogger("ingestor")
EXIT_CONFIG = 2
EXIT_TASK_DIED = 3
# Entry points of this group name a `run(argv) -> int` that parses its own options; they cannot replace these.
COMMANDS_GROUP = "ingestor.commands"
BUILT_IN = {"run", "check-config", "replay", "provision"}
# The development tools' commands, named when they are asked for but not installed.
TOOLS = {"emulator", "generate"}


def _added_commands() -> dict[str, EntryPoint]:
    return {point.name: point for point in entry_points(group=COMMANDS_GROUP) if point.name not in BUILT_IN}


def _origin(point: EntryPoint) -> str:
    return point.dist.name if point.dist else point.module


def _parser(added: dict[str, EntryPoint]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ingestor", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ingestor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="consume, validate and deliver until stopped")
    run.add_argument("--config", type=Path, help="YAML file; INGESTOR_* environment variables override it")
    run.add_argument(
        "--workers", type=int, default=1, help="worker processes in one consumer group (metrics on port + index)"
    )
    check = commands.add_parser("check-config", help="validate the configuration and print it with secrets masked")
    check.add_argument("--config", type=Path)
    replay = commands.add_parser("replay", help="dead letters or Storage-export files back through the pipeline")
    from ingestor.run.replay import add_arguments

    add_arguments(replay)
    provision = commands.add_parser(
        "provision", help="ARM template for the configured destinations, and the configuration that uses it"
    )
    from ingestor.provision.cli import add_arguments as add_provision_arguments

    add_provision_arguments(provision)
    for name, point in sorted(added.items()):
        commands.add_parser(name, help=f"from {_origin(point)} (see `ingestor {name} --help`)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    added = _added_commands()
    if args_list and args_list[0] in added:
        point = added[args_list[0]]
        try:
            command = point.load()
        except (ImportError, AttributeError) as exc:  # its package is gone or broken, its metadata still there
            print(
                f"ingestor: `{point.name}` of {_origin(point)} cannot be loaded ({exc}); reinstall it", file=sys.stderr
            )
            return EXIT_CONFIG
        return int(command(args_list[1:]))
    if args_list and args_list[0] in TOOLS:
        print(
            f"ingestor: `{args_list[0]}` is a development tool of the defender-ingestor-tools package, which this "
            "install lacks (the image leaves it out); in a source checkout, `make install` installs it "
            "(or: pip install ./tools)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    args = _parser(added).parse_args(args_list)
    if args.command == "provision":
        from ingestor.provision.cli import main as provision

        try:
            return provision(args)
        except IngestorError as exc:  # the configuration, or the KQL analyzer of --check-queries (Node.js missing)
            print(f"ingestor provision: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    from ingestor.config_check import effective_yaml, load_runnable

    try:
        checked = load_runnable(args.config)
    except ConfigError as exc:
        print(f"ingestor: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    config = checked.config
    if args.command == "check-config":
        for warning in checked.warnings:
            print(f"ingestor: warning: {warning}", file=sys.stderr)
        print(effective_yaml(checked), end="")
        return 0
    setup_logging(config.log_level)
    for warning in checked.warnings:
        log.warning("configuration: %s", warning)
    if args.command == "replay":
        return replay(config, args)
    if args.workers < 1:
        print("ingestor run: --workers must be at least 1", file=sys.stderr)
        return EXIT_CONFIG
    if args.workers > 1:
        from ingestor.run.workers import supervise

        setup_logging(config.log_level)
        return supervise(args.config, args.workers, config.metrics.port)
    return run(config)


def replay(config: Config, args: argparse.Namespace) -> int:
    from ingestor.run.replay import replay as replay_files

    setup_logging(config.log_level)
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        print(f"ingestor replay: no such file: {', '.join(missing)}", file=sys.stderr)
        return EXIT_CONFIG
    target = args.dead_letter_dir or config.dead_letter.path or Path.cwd()
    files = list(dict.fromkeys(args.files))  # a file named twice (overlapping globs) is replayed once
    return asyncio.run(replay_files(config, files, target, progress=args.progress, max_wait_secs=args.max_wait))


def run(config: Config) -> int:
    setup_logging(config.log_level)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(_run(config))
    return uvloop.run(_run(config))


async def _run(config: Config) -> int:
    from ingestor.run.app import Ingestor

    try:
        ingestor = Ingestor(config)  # a CA file that holds no certificate is found here
    except ConfigError as exc:
        print(f"ingestor: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, ingestor.stop)
    try:
        await ingestor.run()
    except TaskDied:
        return EXIT_TASK_DIED  # logged when it died
    except ConfigError as exc:  # found at the start: a checkpoint container that does not exist
        print(f"ingestor: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:
        failures = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
        for failure in failures:
            log.error("ingestor failed", exc_info=failure)
        return 1
    return 0
