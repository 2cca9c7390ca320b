"""Which tables are ingested is a choice (`schemas.tables`): records of a table outside the selection are skipped
and counted as a category of no table is (never dead-lettered, valid or not), replayed rows of one too, and
everything keyed by table follows the selection: the decoder's tables, the routes, what `provision` deploys (tables,
DCR streams and flows, workspace functions) and what `--check-queries` says a query needs. The configuration's own
errors are in test_config.py and test_config_check.py; here the selection at work, down to the ingestor process.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from helmchart import manifests, render, rendered_config
from realparts import EmulatorProcess, IngestorProcess, ingestor_config, produce, unique_names, wait_for
from test_helm import check_rendered_config, deployed

from ingestor.commit import OffsetTracker, Position
from ingestor.config import Config, parse_config
from ingestor.metrics import Metrics
from ingestor.pipeline.decode import MessageDecoder
from ingestor.provision.arm import DCR_TYPE, resources_of, template_tables
from ingestor.provision.azure_rules import check_template
from ingestor.provision.query_check import Query, needs
from ingestor.provision.template import build_template
from ingestor.run.flow import Flow
from ingestor.sinks.dead_letter_file import read_dead_letters
from ingestor.tables import load_schemas
from ingestor_tools import SAMPLES_DIR
from ingestor_tools.generate import TrafficGenerator

SCHEMAS = load_schemas()
RULE = "dcr-" + "ab" * 16
FUNCTIONS = "Microsoft.OperationalInsights/workspaces/savedSearches"
# Two tables ingested; every other table with a schema is not.
CHOSEN = ["DeviceProcessEvents", "DeviceNetworkEvents"]
OTHERS = [table for table in SCHEMAS if table not in CHOSEN]
# Tables with a captured sample record (tools/ingestor_tools/samples/), and one of them outside CHOSEN.
SAMPLED = [table for table in SCHEMAS if (SAMPLES_DIR / f"{table}.json").is_file()]
OTHER = next(table for table in SAMPLED if table not in CHOSEN)


def config(tables: Any = None, tmp: Path | None = None, **sections: Any) -> Config:
    doc: dict[str, Any] = {
        "source": {"bootstrap_servers": ["k:9092"], "topics": ["defender"], "group_id": "g"},
        "sink": {"endpoint": "https://x.example", "rule_id": RULE},
        "dead_letter": {"path": str(tmp or "/tmp/dl")},
        **sections,
    }
    if tables is not None:
        doc["schemas"] = {"tables": tables}
    return parse_config(doc)


def sample(table: str, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((SAMPLES_DIR / f"{table}.json").read_text())[0]
    record["properties"].update(changes)
    return record


def envelope(*records: dict[str, Any]) -> bytes:
    return json.dumps({"records": list(records)}).encode()


def decoder_of(cfg: Config) -> MessageDecoder:
    """The decoder as `Flow` builds it from the configuration."""
    return MessageDecoder(cfg.table_schemas(), routes=cfg.routes())


def test_by_default_every_table_with_a_schema_is_ingested() -> None:
    cfg = config()
    assert cfg.schemas.tables == "all"
    assert cfg.tables == tuple(SCHEMAS)
    assert set(cfg.routes()) == set(cfg.table_schemas()) == set(SCHEMAS)


def test_a_list_selects_those_tables_in_schema_order_whatever_the_order_written() -> None:
    cfg = config(list(reversed(CHOSEN)))
    assert cfg.tables == tuple(t for t in SCHEMAS if t in CHOSEN)
    assert set(cfg.routes()) == set(cfg.table_schemas()) == set(CHOSEN)


def test_records_of_a_table_not_selected_are_skipped_and_counted_not_dead_lettered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    decoder = decoder_of(config(CHOSEN))
    other = OTHER
    chosen = sample("DeviceProcessEvents")
    skipped = sample(other)
    # Wrong in a way no spelling rule converts: were the table ingested, this would be dead-lettered.
    broken = sample(other, Timestamp={"not": "a time"})
    with caplog.at_level(logging.INFO, logger="ingestor.pipeline.decode"):
        result = decoder.decode(envelope(skipped, chosen, broken, skipped))
    assert [row.table for row in result.rows] == ["DeviceProcessEvents"]
    assert result.rejected == []
    assert result.skipped == {other: 3} and result.read == 4
    sightings = [r for r in caplog.records if r.getMessage() == "skipping category we do not ingest"]
    assert len(sightings) == 1 and getattr(sightings[0], "category", None) == f"AdvancedHunting-{other}"
    # The same broken record of a table that is ingested goes to the dead letter: the skip is the selection's.
    everything = decoder_of(config()).decode(envelope(broken))
    assert [r.table for r in everything.rejected] == [other] and not everything.skipped


def test_a_message_mixing_tables_in_and_out_of_the_selection_is_decoded_in_one_typed_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Records of a table left out are skipped within the typed decode of the whole message, unread, whether a value
    of an ingested record needs converting or not: the message never goes record by record (`_split`)."""
    decoder = decoder_of(config(CHOSEN))

    def record_by_record(*args: Any) -> list[bytes]:
        raise AssertionError("the message went record by record")

    monkeypatch.setattr(decoder, "_split", record_by_record)
    drifted = sample("DeviceProcessEvents", InitiatingProcessParentId="")
    broken = sample(OTHER, Timestamp={"not": "a time"})
    for records, converted in [
        ((sample("DeviceProcessEvents"), sample(OTHER), broken), {}),
        ((drifted, sample(OTHER), sample("DeviceNetworkEvents"), broken),
         {("DeviceProcessEvents", "InitiatingProcessParentId", "empty_as_null"): 1}),
    ]:  # fmt: skip
        result = decoder.decode(envelope(*records))
        tables = [r["category"].removeprefix("AdvancedHunting-") for r in records]
        assert [row.table for row in result.rows] == [t for t in tables if t != OTHER] and not result.rejected
        assert result.skipped == {OTHER: 2} and result.read == len(records)
        assert result.converted == converted


def test_a_refused_record_beside_skipped_ones_is_explained_and_each_skip_counted_once() -> None:
    decoder = decoder_of(config(CHOSEN))
    invalid = sample("DeviceProcessEvents", ProcessId="not a number")
    result = decoder.decode(envelope(sample(OTHER), invalid, sample(OTHER), sample("DeviceNetworkEvents")))
    assert [r.table for r in result.rejected] == ["DeviceProcessEvents"]
    assert [row.table for row in result.rows] == ["DeviceNetworkEvents"]
    assert result.skipped == {OTHER: 2} and result.read == 4


def test_the_selection_decides_what_is_skipped_not_the_table_name() -> None:
    """Any table can be selected out, the Device tables too, and any selected one lands."""
    for table in SAMPLED:
        rest = [t for t in SCHEMAS if t != table]
        result = decoder_of(config(rest)).decode(envelope(sample(table)))
        assert result.skipped == {table: 1} and not result.rows and not result.rejected, table
        alone = decoder_of(config([table])).decode(envelope(sample(table)))
        assert [r.table for r in alone.rows] == [table] and not alone.skipped, table


async def test_replayed_rows_of_a_table_not_selected_are_skipped_and_counted(tmp_path: Path) -> None:
    flow = Flow(config(CHOSEN, tmp_path), Metrics())
    tracker = OffsetTracker()
    ticket = tracker.track(Position("replay", 0, 0))
    flow.process_rows(OTHER, [b'{"RetentionTag":"default","x":1}', b'{"RetentionTag":"default","x":2}'], ticket)
    ticket.seal()
    assert ticket.done and all(b.open_bytes == 0 for b in flow.batchers.values())
    assert flow.metrics.total("ingestor_skipped_events_total") == 2
    assert flow.metrics.total("ingestor_read_events_total") == 2
    assert flow.metrics.total("ingestor_dead_lettered_events_total") == 0


def test_provision_deploys_only_the_selected_tables() -> None:
    retention = {
        "default_class": "hot",
        "classes": {"hot": {"plan": "Analytics"}, "archive": {"plan": "Auxiliary", "total_retention_days": 1095}},
        "rules": [{"tables": ["DeviceNetworkEvents"], "class": "archive"}],
    }
    template = build_template(config(CHOSEN, retention=retention))
    assert check_template(template) == []
    assert sorted(template_tables(template)) == ["DeviceNetworkEvents_archive_CL", "DeviceProcessEvents_CL"]
    streams = {s for rule in resources_of(template, DCR_TYPE) for s in rule["properties"]["streamDeclarations"]}
    assert streams == {"Custom-DeviceNetworkEvents_archive_CL", "Custom-DeviceProcessEvents_CL"}
    flows = [f for rule in resources_of(template, DCR_TYPE) for f in rule["properties"]["dataFlows"]]
    assert sorted(s for f in flows for s in f["streams"]) == sorted(streams)
    functions = {f["properties"]["functionAlias"] for f in resources_of(template, FUNCTIONS)}
    assert functions == set(CHOSEN)
    # All by default: a table, a stream and a function for every table with a schema.
    everything = build_template(config())
    assert set(template_tables(everything)) == {f"{t}_CL" for t in SCHEMAS}
    assert {f["properties"]["functionAlias"] for f in resources_of(everything, FUNCTIONS)} == set(SCHEMAS)


def test_check_queries_says_a_query_reads_a_table_not_ingested() -> None:
    other = OTHER
    queries = [
        Query(Path("hunt.kql"), "", f"{other}\n| join DeviceProcessEvents on DeviceId\n| take 10"),
        Query(Path("fine.kql"), "", "DeviceProcessEvents | take 10"),
    ]
    (finding,) = needs(queries, config(CHOSEN))
    assert finding.startswith(f"hunt.kql: {other} is not ingested (not in schemas.tables)")
    assert finding.endswith(f"fix: add {other} to schemas.tables")
    assert needs(queries, config()) == []


@pytest.mark.helm
@pytest.mark.process
def test_the_chart_ingests_every_table_by_default_and_passes_a_selection_on(tmp_path: Path) -> None:
    done = check_rendered_config(manifests(deployed({})), tmp_path)
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["schemas"]["tables"] == "all"
    values = deployed({"config": {"schemas": {"tables": CHOSEN}}})
    assert rendered_config(values)["schemas"] == {"tables": CHOSEN}
    done = check_rendered_config(manifests(values), tmp_path)
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["schemas"]["tables"] == CHOSEN


@pytest.mark.helm
@pytest.mark.parametrize("tables", [5, [1], {"DeviceInfo": True}, [["DeviceInfo"]]])
def test_the_values_schema_takes_only_text_or_a_list_of_table_names(tables: Any) -> None:
    with pytest.raises(helm_python.HelmError, match="schemas/tables"):
        render(deployed({"config": {"schemas": {"tables": tables}}}))


@pytest.mark.helm
@pytest.mark.process
def test_names_are_the_ingestors_to_check_and_a_wrong_one_stops_the_pod_with_its_key(tmp_path: Path) -> None:
    """The schema takes any text (`all`, or `a,b` as the environment writes lists); the ingestor knows the tables."""
    done = check_rendered_config(
        manifests(deployed({"config": {"schemas": {"tables": "DeviceInfo,Devicefile"}}})), tmp_path
    )
    assert done.returncode == 2
    assert "schemas.tables.1: 'Devicefile' is no table with a schema" in done.stderr


@pytest.mark.emulator
@pytest.mark.process
def test_the_ingestor_lands_the_selected_tables_and_counts_the_others_as_skipped(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """`ingestor run` with two tables selected, on traffic of every table: the two land in full, every record of
    the others is counted under its table in /metrics as skipped, none is dead-lettered, and all is committed."""
    topic, group = unique_names()
    generator = TrafficGenerator(seed=21, invalid_rate=0.0, devices=30)
    messages = list(generator.messages(records=3000, records_per_message=(1, 30)))
    manifest = generator.manifest
    others = {t: n for t, n in manifest.valid.items() if t not in CHOSEN}
    assert all(manifest.valid.get(t, 0) > 0 for t in CHOSEN) and len(others) >= 2, manifest.valid
    per_partition = produce(kafka_bootstrap, topic, messages, partitions=2)
    emulator = EmulatorProcess(tmp_path / "emulator")
    try:
        settings = ingestor_config(tmp_path, kafka_bootstrap, emulator, topic=topic, group=group)
        settings["schemas"] = {"tables": CHOSEN}
        ingestor = IngestorProcess(tmp_path, settings)
        try:
            wait_for(lambda: ingestor.total("ingestor_read_events_total") == manifest.records, what="all read")
            ingestor.wait_committed(topic, per_partition)
            wait_for(
                lambda: ingestor.total("ingestor_accepted_events_total") == sum(manifest.valid[t] for t in CHOSEN),
                what="the selected tables' rows accepted",
            )
            samples = ingestor.metrics()
        finally:
            code = ingestor.terminate()
        assert code == 0, ingestor.log()[-3000:]
        landed = emulator.counts()
    finally:
        emulator.stop()
    assert landed == {f"{t}_CL": manifest.valid[t] for t in CHOSEN}
    skipped = {
        dict(labels)["category"]: value
        for (name, labels), value in samples.items()
        if name == "ingestor_skipped_events_total"
    }
    assert skipped == others
    dead = [v for (name, _), v in samples.items() if name == "ingestor_dead_lettered_events_total"]
    assert sum(dead) == 0
    dead_letter = tmp_path / "dead-letter"
    assert not dead_letter.exists() or list(read_dead_letters(dead_letter)) == []
    lines = [json.loads(line) for line in ingestor.log().splitlines() if line.startswith("{")]
    sighted = {line.get("category") for line in lines if line.get("message") == "skipping category we do not ingest"}
    assert sighted == {f"AdvancedHunting-{t}" for t in others}
