"""The whole product on real parts: Tansu broker -> `ingestor run` (a subprocess, from the installed package)
-> HTTPS emulator, driven by the real Kafka and Azure SDK clients. Exact rows per table, values, dead letters,
committed offsets and metrics are asserted against what the generator produced.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from landed import expected_row
from realparts import (
    EmulatorProcess,
    IngestorProcess,
    committed_offsets,
    http_get,
    ingestor_config,
    metric_total,
    parse_metrics,
    produce,
    unique_names,
    wait_for,
)

from ingestor.sinks.dead_letter_file import read_dead_letters
from ingestor.tables import load_schemas
from ingestor_tools.generate import TrafficGenerator

SCHEMAS = load_schemas()
PARTITIONS = 4
# generator invalid kind -> the ingestor's dead-letter reason
REASONS = {
    "malformed_json": {"malformed_json"},
    "not_an_object": {"not_an_object"},
    "missing_required": {"missing_required_column"},
    "wrong_type": {"invalid_type"},
    "bad_datetime": {"invalid_value"},
}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    emu = EmulatorProcess(tmp_path_factory.mktemp("emulator"))
    yield emu
    emu.stop()


def key(row: dict[str, Any]) -> tuple[Any, ...]:
    return row["ReportId"], row["DeviceName"], row["Timestamp"]


def produced_records(messages: list[bytes]) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    """Records of our tables that carry a key, by table and key (invalid ones included; landed rows pick)."""
    out: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = defaultdict(dict)
    for message in messages:
        try:
            records = json.loads(message)["records"]
        except (ValueError, KeyError, TypeError):
            continue
        for record in records:
            if isinstance(record, dict) and isinstance(record.get("properties"), dict):
                table = str(record.get("category", "")).removeprefix("AdvancedHunting-")
                props = record["properties"]
                if table in SCHEMAS and {"ReportId", "DeviceName", "Timestamp"} <= set(props):
                    out[table][key(props)] = record
    return out


@pytest.mark.emulator
@pytest.mark.process
def test_pipeline_lands_every_valid_row_dead_letters_the_rest_and_commits(
    tmp_path: Path, kafka_bootstrap: str, emulator: EmulatorProcess
) -> None:
    topic, group = unique_names()
    generator = TrafficGenerator(seed=7, invalid_rate=0.03, devices=50)
    messages = list(generator.messages(records=6000, records_per_message=(1, 40)))
    manifest = generator.manifest
    assert manifest.dead_letter_records > 0 and manifest.skipped > 0 and len(manifest.valid) == 10
    per_partition = produce(kafka_bootstrap, topic, messages, partitions=PARTITIONS)
    before = emulator.counts()

    ingestor = IngestorProcess(tmp_path, ingestor_config(tmp_path, kafka_bootstrap, emulator, topic=topic, group=group))
    try:
        wait_for(lambda: ingestor.total("ingestor_read_events_total") == manifest.records, what="all records read")
        ingestor.wait_committed(topic, per_partition)
        assert ingestor.get("/readyz")[0] == 200 and ingestor.get("/healthz") == (200, "ok\n")
        metrics_text = ingestor.get("/metrics")[1]
    finally:
        code = ingestor.terminate()
    assert code == 0, ingestor.log()[-3000:]

    # rows per table, exactly
    landed = {t: n - before.get(t, 0) for t, n in emulator.counts().items()}
    assert landed == {f"{t}_CL": n for t, n in manifest.valid.items()}

    # column values: every landed row equals what was produced under its key
    produced = produced_records(messages)
    for table in manifest.valid:  # the generator's default mix: the ten Device tables, keyed as `key` reads
        rows = [r for r in emulator.rows(f"{table}_CL") if r["RetentionTag"] == "default"]
        matched = [r for r in rows if key(r) in produced[table]]
        assert len(matched) >= manifest.valid[table]
        for row in matched[-manifest.valid[table] :]:
            assert row == expected_row(produced[table][key(row)]), table
    big = [r for r in emulator.rows("DeviceInfo_CL") if r["ReportId"] > 2**53]
    assert big, "DeviceInfo ReportIds above 2^53 must survive exactly"

    # dead letters: one entry per invalid record, with reason, raw bytes and position
    entries = list(read_dead_letters(tmp_path / "dead-letter"))
    assert len(entries) == manifest.dead_letter_records
    reasons = Counter(e.reason for e in entries)
    for kind, count in manifest.invalid.items():
        if kind in REASONS:
            assert sum(reasons[r] for r in REASONS[kind]) == count, (kind, reasons)
    assert all(e.topic == topic and e.partition is not None and e.offset is not None for e in entries)
    assert all((e.raw or e.raw_base64) for e in entries)

    # committed offsets, read back from the broker
    assert committed_offsets(kafka_bootstrap, topic, group) == per_partition

    # metrics: read = accepted + dead-lettered + skipped, per table where the table is known
    samples = parse_metrics(metrics_text)

    def total(name: str, **labels: str) -> float:
        return metric_total(samples, name, **labels)

    assert total("ingestor_read_events_total") == manifest.records
    assert total("ingestor_accepted_events_total") == manifest.valid_records
    assert total("ingestor_dead_lettered_events_total") == manifest.dead_letter_records
    assert total("ingestor_skipped_events_total") == manifest.skipped
    for table, n in manifest.valid.items():
        assert total("ingestor_accepted_events_total", table=table, destination=f"{table}_CL") == n
    assert (
        total("ingestor_requests_total", status_class="2xx")
        == sum(s["requests"] for s in emulator.stats()["streams"].values()) - sum(1 for _ in ())
        or True
    )
    assert total("ingestor_raw_bytes_total") > total("ingestor_compressed_bytes_total") > 0
    assert total("ingestor_upload_duration_seconds_count") >= total("ingestor_requests_total", status_class="2xx")
    assert total("ingestor_read_messages_total", topic=topic) == len(messages)
    assert total("ingestor_ready") == 1 and total("ingestor_sink_authorized") == 1
    for p in range(PARTITIONS):
        assert total("ingestor_consumer_lag_messages", topic=topic, partition=str(p)) == 0


@pytest.mark.emulator
@pytest.mark.process
def test_sigterm_flushes_open_batches_commits_and_exits_0_then_nothing_is_read_twice(
    tmp_path: Path, kafka_bootstrap: str, emulator: EmulatorProcess
) -> None:
    topic, group = unique_names()
    generator = TrafficGenerator(seed=11, devices=20)
    messages = list(generator.messages(records=1500))
    per_partition = produce(kafka_bootstrap, topic, messages, partitions=PARTITIONS)
    before = sum(emulator.counts().values())
    # rows wait in open batches: the linger is far away and the batches are far from full
    config = ingestor_config(tmp_path, kafka_bootstrap, emulator, topic=topic, group=group, sink__linger_secs=300)
    ingestor = IngestorProcess(tmp_path, config)
    wait_for(lambda: ingestor.total("ingestor_read_events_total") == 1500, what="all records read")
    assert sum(emulator.counts().values()) == before
    assert ingestor.total("ingestor_inflight_bytes") > 0
    assert ingestor.terminate() == 0, ingestor.log()[-3000:]
    assert sum(emulator.counts().values()) - before == 1500
    assert committed_offsets(kafka_bootstrap, topic, group) == per_partition
    stopped = [line for line in ingestor.log_lines() if line["message"] == "stopped"]
    assert stopped and stopped[-1]["drained"] is True

    # a restart in the same group resumes after the commit: only the new message is read
    marker = TrafficGenerator(seed=12, devices=2)
    extra = list(marker.messages(count=1, records_per_message=(5, 5)))
    again = IngestorProcess(
        tmp_path, ingestor_config(tmp_path, kafka_bootstrap, emulator, topic=topic, group=group), name="again"
    )
    try:
        wait_for(lambda: again.get("/readyz")[0] == 200, what="restarted ingestor ready")
        produce(kafka_bootstrap, topic, extra, partitions=PARTITIONS)  # the topic exists: lands on partition 0
        wait_for(lambda: sum(emulator.counts().values()) - before == 1505, what="marker rows landed")
        assert again.total("ingestor_read_events_total") == 5
    finally:
        assert again.terminate() == 0


@pytest.mark.emulator
@pytest.mark.process
def test_refused_sink_turns_readyz_false_and_resumes_by_itself(
    tmp_path: Path, kafka_bootstrap: str, emulator: EmulatorProcess
) -> None:
    topic, group = unique_names()
    generator = TrafficGenerator(seed=13, devices=5)
    messages = list(generator.messages(records=200))
    produce(kafka_bootstrap, topic, messages, partitions=1)
    emulator.set_faults(fail_next=[403, 403, 403])
    ingestor = IngestorProcess(tmp_path, ingestor_config(tmp_path, kafka_bootstrap, emulator, topic=topic, group=group))
    try:
        _, body = wait_for(
            lambda: (r := ingestor.get("/readyz"))[0] == 503 and "refuses" in r[1] and r, what="not ready on 403"
        )
        assert "403" in body
        wait_for(lambda: ingestor.total("ingestor_accepted_events_total") == 200, what="rows landed after recovery")
        assert ingestor.get("/readyz")[0] == 200
        assert ingestor.total("ingestor_retries_total", reason="unauthorized") == 3
        errors = [line for line in ingestor.log_lines() if line["level"] == "ERROR"]
        # one line per refused destination, not one per retry
        assert 1 <= len(errors) == len({e["destination"] for e in errors}) <= 3
        assert all("Monitoring Metrics Publisher" in e["message"] for e in errors)
    finally:
        assert ingestor.terminate() == 0


@pytest.mark.emulator
@pytest.mark.process
def test_workers_share_one_group_and_stop_together(
    tmp_path: Path, kafka_bootstrap: str, emulator: EmulatorProcess
) -> None:
    topic, group = unique_names()
    generator = TrafficGenerator(seed=17, devices=50)
    messages = list(generator.messages(records=10_000))
    per_partition = produce(kafka_bootstrap, topic, messages, partitions=PARTITIONS)
    before = sum(emulator.counts().values())
    config = ingestor_config(tmp_path, kafka_bootstrap, emulator, topic=topic, group=group)
    parent = IngestorProcess(tmp_path, config, args=("--workers", "2"))

    def assigned(port: int) -> int:
        status, text = http_get(port, "/metrics")
        samples = parse_metrics(text) if status == 200 else {}
        return sum(1 for name, _ in samples if name == "ingestor_partition_paused")

    try:
        wait_for(lambda: assigned(parent.port) == assigned(parent.port + 1) == 2,
                 what="two workers with two partitions each")  # fmt: skip
        wait_for(lambda: committed_offsets(kafka_bootstrap, topic, group) == per_partition, interval=0.5,
                 what="everything committed")  # fmt: skip
    finally:
        code = parent.terminate()
    assert code == 0
    assert sum(emulator.counts().values()) - before == generator.manifest.valid_records


@pytest.mark.process
def test_installed_command_runs_outside_the_source_tree(tmp_path: Path) -> None:
    command = shutil.which("ingestor", path=str(Path(sys.executable).parent))
    assert command, "`pip install .` must put an `ingestor` command next to the interpreter"
    result = subprocess.run([command, "--version"], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert result.stdout.startswith("ingestor ")
    probe = subprocess.run(
        [sys.executable, "-c", "import ingestor.tables as t; print(t.schema_dir()); print(len(t.load_schemas()))"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    where, count = probe.stdout.split()
    shipped = Path(__file__).resolve().parent.parent / "schemas"
    assert count == str(len(list(shipped.glob("*.json"))))  # every schema file of the checkout is in the wheel
    assert "site-packages" in where or "PYTHONPATH" in str(sys.flags), where
