"""`ingestor replay` as a user runs it, against the HTTPS emulator as a process: patient while the sink refuses (403),
throttles (429) or fails (503, connections cut), up to `--max-wait`; a summary that adds up
(`read = landed + dead-lettered again + skipped + left in place`, files named); exit codes 0, 1 and 4; input files
left as they were; a progress count of one per record.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import itertools
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from realparts import EmulatorProcess, ingestor_command, ingestor_config, wait_for

from ingestor.run.replay import (
    EXIT_DEAD_LETTERED,
    EXIT_LANDED,
    EXIT_LEFT_IN_PLACE,
    duration,
    parse_duration,
    storage_export_messages,
)
from ingestor.sinks.dead_letter_file import read_dead_letter_file, read_dead_letters
from ingestor.tables import load_schemas
from ingestor_tools.generate import TrafficGenerator

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parent.parent
TABLES = sorted(load_schemas())
StartEmulator = Callable[..., EmulatorProcess]


@pytest.fixture
def start_emulator(tmp_path: Path) -> Iterator[StartEmulator]:
    """Starts `ingestor emulator --state-dir tmp_path/emulator ARGS...` (fault knobs), stopped after the test."""
    started: list[EmulatorProcess] = []

    def start(*args: str) -> EmulatorProcess:
        started.append(EmulatorProcess(tmp_path / "emulator", *args))
        return started[-1]

    yield start
    for emulator in started:
        emulator.stop()


def records(count: int, seed: int = 7) -> list[dict[str, Any]]:
    generator = TrafficGenerator(seed=seed, devices=10)
    return [generator.record(TABLES[i % len(TABLES)]) for i in range(count)]


def export(path: Path, lines: list[str]) -> Path:
    """A Storage-export file (CRLF lines, as the export writes them)."""
    path.write_text("".join(f"{line}\r\n" for line in lines))
    return path


def write_config(tmp_path: Path, emulator: EmulatorProcess, **overrides: Any) -> Path:
    """A replay configuration with quick retries and a 1 s shutdown grace: replay must wait longer than it."""
    config = ingestor_config(tmp_path, "127.0.0.1:9", emulator, topic="t", group="g", shutdown_grace_secs=1,
                             sink__auth_retry_secs=0.5, **overrides)  # fmt: skip
    path = tmp_path / "replay.yaml"
    path.write_text(json.dumps(config))
    return path


def replay_command(config: Path, *args: str | Path) -> list[str]:
    return ingestor_command("replay", "--config", str(config), *map(str, args))


def run_replay(config: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(replay_command(config, *args), capture_output=True, text=True, cwd=config.parent, timeout=120)


def summary(stderr: str) -> str:
    (line,) = [line for line in stderr.splitlines() if " records read " in line]
    return line


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.emulator
def test_replay_sends_fixed_dead_letters_and_storage_exports_back(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    # records with a new column are dead-lettered under `reject`; after switching to `drop`, replay lands them
    emulator = start_emulator()
    generator = TrafficGenerator(seed=91, devices=10)
    fixed = [generator.record(t) for t in TABLES] * 3
    for record in fixed:
        record["properties"]["BrandNewColumn"] = "x"
    source = export(tmp_path / "PT1H.json", [json.dumps(r) for r in fixed])
    config = write_config(tmp_path, emulator, validation={"unknown_columns": "reject"})
    first = run_replay(config, "--progress", "always", source)
    (dead,) = (tmp_path / "dead-letter").glob("dead-letter-replay-*.jsonl.gz")
    assert first.returncode == EXIT_DEAD_LETTERED, first.stderr
    n = len(fixed)  # three records of every table
    assert summary(first.stderr) == (
        f"replay: {n} records read = 0 rows landed + {n} dead-lettered again (in {dead}) + 0 skipped + 0 left in place"
    )
    assert [e.reason for e in read_dead_letters(tmp_path / "dead-letter")] == ["unknown_column"] * n

    config = write_config(tmp_path, emulator, validation={"unknown_columns": "drop"},
                          dead_letter__path=str(tmp_path / "second"))  # fmt: skip
    second = run_replay(config, "--progress", "always", dead)
    assert second.returncode == EXIT_LANDED, second.stderr
    assert summary(second.stderr) == (
        f"replay: {n} records read = {n} rows landed + 0 dead-lettered again + 0 skipped + 0 left in place"
    )
    assert sum(emulator.counts().values()) == n
    assert not list((tmp_path / "second").glob("*.jsonl.gz"))


@pytest.mark.emulator
def test_replay_waits_while_the_role_propagates_and_lands_everything(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start_emulator("--fail-always", "403")
    config = write_config(tmp_path, emulator)
    source = export(tmp_path / "PT1H.json", [json.dumps(r) for r in records(20)])
    log = tmp_path / "replay.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(replay_command(config, "--progress", "always", "--max-wait", "2m", source),
                                   stderr=stderr, text=True, cwd=tmp_path)  # fmt: skip
        try:
            # Refused for longer than shutdown_grace_secs (1 s), at auth_retry_secs (0.5 s): replay keeps waiting.
            wait_for(lambda: emulator.statuses()[403] >= 4, timeout=30, what="four refused requests")
            waiting = "waiting: Logs Ingestion API answers 403 (role not propagated yet?), retry in "
            wait_for(lambda: waiting in log.read_text(), timeout=10, what="the wait on the progress line")
            assert process.poll() is None, log.read_text()
            emulator.set_faults(fail_always=None)  # the role assignment arrived
            assert process.wait(timeout=60) == EXIT_LANDED, log.read_text()
        finally:
            process.kill()
    stderr_text = log.read_text()
    assert re.search(r"waited \d+s of 2m", stderr_text)
    assert summary(stderr_text) == (
        "replay: 20 records read = 20 rows landed + 0 dead-lettered again + 0 skipped + 0 left in place"
    )
    assert sum(emulator.counts().values()) == 20 and emulator.statuses()[204] >= 1
    assert "read again" not in stderr_text
    assert not list((tmp_path / "dead-letter").glob("*.jsonl.gz"))


@pytest.mark.emulator
@pytest.mark.parametrize(
    ("knobs", "trouble"),
    [
        (("--fail-always", "403"), "Logs Ingestion API answers 403 (role not propagated yet?)"),
        (("--fail-always", "503"), "Logs Ingestion API answers 503"),
        (("--drop-connection-rate", "1"), "Logs Ingestion API cannot be reached"),
    ],
)
def test_replay_leaves_every_record_in_place_when_the_sink_never_recovers(
    tmp_path: Path, start_emulator: StartEmulator, knobs: tuple[str, ...], trouble: str
) -> None:
    emulator = start_emulator(*knobs)
    config = write_config(tmp_path, emulator)
    source = export(tmp_path / "PT1H.json", [json.dumps(r) for r in records(20)])
    before = digest(source)
    result = run_replay(config, "--progress", "never", "--max-wait", "3s", source)
    assert result.returncode == EXIT_LEFT_IN_PLACE, result.stderr
    assert summary(result.stderr) == (
        "replay: 20 records read = 0 rows landed + 0 dead-lettered again + 0 skipped + 20 left in place"
        f" (not delivered; still in {source})"
    )
    assert f"replay: nothing landed for 3s (--max-wait) while waiting for: {trouble}" in result.stderr
    assert f"replay:   {source}: 20 records not delivered" in result.stderr
    # Without a bar: one line per change of state, not one per attempt.
    assert result.stderr.count('"message":"replay waits: ') == 1, result.stderr
    assert f'"message":"replay waits: {trouble}"' in result.stderr
    assert sum(emulator.statuses().values()) >= 2 and not emulator.counts()
    assert digest(source) == before
    assert not list((tmp_path / "dead-letter").glob("*.jsonl.gz"))
    assert "read again" not in result.stderr and "replay [" not in result.stderr  # --progress never: no bar
    finished = [json.loads(line) for line in result.stderr.splitlines() if '"replay finished"' in line]
    assert [(f["read"], f["left_in_place"], f["left_in"], f["exit_code"]) for f in finished] == [
        (20, 20, [str(source)], EXIT_LEFT_IN_PLACE)
    ]


@pytest.mark.emulator
def test_replay_honours_retry_after_beyond_the_shutdown_grace(tmp_path: Path, start_emulator: StartEmulator) -> None:
    emulator = start_emulator("--fail-next", "429,429", "--retry-after-secs", "2")
    config = write_config(tmp_path, emulator, sink__upload_concurrency=1)
    source = export(tmp_path / "PT1H.json", [json.dumps(r) for r in records(20)])
    result = run_replay(config, "--progress", "never", "--max-wait", "1m", source)
    assert result.returncode == EXIT_LANDED, result.stderr
    assert summary(result.stderr) == (
        "replay: 20 records read = 20 rows landed + 0 dead-lettered again + 0 skipped + 0 left in place"
    )
    assert '"message":"replay waits: Logs Ingestion API answers 429 (throttled)"' in result.stderr
    assert sum(emulator.counts().values()) == 20
    answered = emulator.query("SELECT received_at, status FROM requests ORDER BY id")
    assert [status for _, status in answered[:3]] == [429, 429, 204]
    times = [datetime.fromisoformat(at) for at, _ in answered[:3]]
    assert all((b - a).total_seconds() >= 2 for a, b in itertools.pairwise(times))


@pytest.mark.emulator
def test_progress_counts_each_record_once(tmp_path: Path, start_emulator: StartEmulator) -> None:
    emulator = start_emulator()
    config = write_config(tmp_path, emulator)
    lines = [json.dumps(r) for r in records(1_234)]
    source = export(tmp_path / "PT1H.json", [*lines[:600], "", *lines[600:]])  # a blank line is no record
    assert len(list(storage_export_messages(source))) == 3  # 500 + 500 + 234 records
    result = run_replay(config, "--progress", "always", source)
    assert result.returncode == EXIT_LANDED, result.stderr
    drawn = [int(n.replace(",", "")) for n in re.findall(r"\] +[\d.]+% ([\d,]+) records", result.stderr)]
    assert drawn and drawn[-1] == 1_234 and max(drawn) == 1_234, drawn
    assert drawn == sorted(drawn)
    assert summary(result.stderr).startswith("replay: 1,234 records read = 1,234 rows landed + 0 dead-lettered")
    assert sum(emulator.counts().values()) == 1_234


@pytest.mark.emulator
@pytest.mark.parametrize("sink", ["accepts", "refuses"])
def test_the_summary_adds_up_for_a_mixed_file(tmp_path: Path, start_emulator: StartEmulator, sink: str) -> None:
    emulator = start_emulator(*(("--fail-always", "403") if sink == "refuses" else ()))
    config = write_config(tmp_path, emulator)
    valid = records(30)
    wrong_type = records(2, seed=8)
    for record in wrong_type:
        record["properties"]["Timestamp"] = {"not": "a time"}
    skipped = [{"time": "2026-01-01T00:00:00Z", "category": "AdvancedHunting-NotIngested", "properties": {}}] * 3
    lines = [json.dumps(r) for r in valid + wrong_type + skipped] + ["{not json", "[1, 2"]
    source = export(tmp_path / "PT1H.json", lines)
    before = digest(source)
    result = run_replay(config, "--progress", "never", "--max-wait", "3s", source)
    (written,) = (tmp_path / "dead-letter").glob("dead-letter-replay-*.jsonl.gz")
    assert len(list(read_dead_letter_file(written))) == 4
    head = f"replay: 37 records read = {{}} rows landed + 4 dead-lettered again (in {written}) + 3 skipped + {{}}"
    if sink == "accepts":
        assert result.returncode == EXIT_DEAD_LETTERED, result.stderr
        assert summary(result.stderr) == head.format(30, "0 left in place")
        assert sum(emulator.counts().values()) == 30
    else:
        assert result.returncode == EXIT_LEFT_IN_PLACE, result.stderr
        assert summary(result.stderr) == head.format(0, f"30 left in place (not delivered; still in {source})")
    assert digest(source) == before


@pytest.mark.emulator
def test_a_sink_that_never_recovers_stops_the_reading_and_says_where(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start_emulator("--fail-always", "403")
    config = write_config(tmp_path, emulator, sink__max_inflight_bytes=1_048_576)
    first = export(tmp_path / "first.json", [json.dumps(r) for r in records(3_000)])
    assert first.stat().st_size > 2 * 1_048_576  # more than the in-flight bound: reading must pause
    second = tmp_path / "dead-letter-earlier.jsonl.gz"
    entries = [{"time": "t", "reason": "unknown_column", "detail": "", "raw": json.dumps(r)} for r in records(5, 9)]
    second.write_bytes(gzip.compress("".join(json.dumps(e) + "\n" for e in entries).encode()))
    before = digest(first), digest(second)
    result = run_replay(config, "--progress", "never", "--max-wait", "3s", first, second)
    assert result.returncode == EXIT_LEFT_IN_PLACE, result.stderr
    (line,) = re.findall(rf"replay:   {re.escape(str(first))}: ([\d,]+) records not delivered, not read from line "
                         r"([\d,]+)", result.stderr)  # fmt: skip
    left, unread_from = (int(n.replace(",", "")) for n in line)
    assert 0 < left < 3_000 and unread_from == left + 1  # every line up to there read, every record left
    assert f"replay:   {second}: not read from line 1" in result.stderr
    assert summary(result.stderr) == (
        f"replay: {left:,} records read = 0 rows landed + 0 dead-lettered again + 0 skipped + {left:,} left in place"
        f" (not delivered; still in {first}, {second})"
    )
    assert (digest(first), digest(second)) == before
    assert not list(read_dead_letters(tmp_path / "dead-letter"))


def test_max_wait_takes_seconds_or_units_and_the_help_names_the_exit_codes(tmp_path: Path) -> None:
    assert [parse_duration(t) for t in ("90", "2.5", "90s", "45m", "1h30m", "1h", "2m30s")] == [
        90, 2.5, 90, 2700, 5400, 3600, 150
    ]  # fmt: skip
    for bad in ("", "m", "1d", "-3", "45 m", "1m1h"):
        with pytest.raises(argparse.ArgumentTypeError, match="no duration"):
            parse_duration(bad)
    assert [duration(s) for s in (2700, 192, 3, 0.4, 5400)] == ["45m", "3m12s", "3s", "0s", "1h30m"]
    usage = subprocess.run(ingestor_command("replay", "--help"), capture_output=True, text=True, check=True).stdout
    flat = " ".join(usage.split())
    assert "--max-wait DURATION" in flat and "default: 45m" in flat
    assert f"{EXIT_LEFT_IN_PLACE} some were left in place" in flat and f"{EXIT_DEAD_LETTERED} some were dead" in flat
    bad = subprocess.run(replay_command(tmp_path / "none.yaml", "--max-wait", "soon", "x"), capture_output=True,
                         text=True)  # fmt: skip
    assert bad.returncode == 2 and "'soon' is no duration" in bad.stderr


def readme_commands() -> str:
    """The shell block of the "Dead letter and replay" section of docs/operations.md."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("## Dead letter and replay\n", 1)[1].split("\n#", 1)[0]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


@pytest.mark.emulator
def test_the_readme_commands_run_as_written(tmp_path: Path, start_emulator: StartEmulator) -> None:
    emulator = start_emulator()
    (tmp_path / "ingestor.yaml").write_text(write_config(tmp_path, emulator).read_text())
    entries = [{"time": "t", "reason": "unknown_column", "detail": "", "raw": json.dumps(r)} for r in records(5, 3)]
    (tmp_path / "dead-letter").mkdir()
    dead = tmp_path / "dead-letter" / "dead-letter-20260101T000000Z-1-1.jsonl.gz"
    dead.write_bytes(gzip.compress("".join(json.dumps(e) + "\n" for e in entries).encode()))
    export(tmp_path / "PT1H.json", [json.dumps(r) for r in records(20)])
    commands = readme_commands()
    assert commands.count("ingestor replay ") == 3 and "--max-wait" in commands
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", commands], capture_output=True, text=True,
                            cwd=tmp_path, env={"PATH": path}, timeout=180)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [line.split(" = ")[1].split(" +")[0] for line in result.stderr.splitlines() if " records read " in line] == [
        "5 rows landed", "20 rows landed", "20 rows landed"
    ]  # fmt: skip
    assert sum(emulator.counts().values()) == 45
