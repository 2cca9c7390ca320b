"""`ingestor provision`: the ARM template against Azure's documented rules, the configuration it writes, and, end
to end, the emulator serving the template's DCRs while the ingestor writes exactly what they declare.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from realparts import (
    ingestor_command,
    ingestor_config,
    produce,
    provisioned_emulator,
    run_until_committed,
    unique_names,
    use_provisioned,
)
from test_retention import WORKED_EXAMPLE, config_doc

from ingestor import provision
from ingestor.config import parse_config
from ingestor.errors import ConfigError
from ingestor.provision import template as provision_template
from ingestor.provision.azure_rules import check_template
from ingestor.provision.resolve import resolve_config
from ingestor.provision.template import build_template, plan_rules
from ingestor.tables import load_schemas
from ingestor_tools.generate import TrafficGenerator

SCHEMAS = load_schemas()
TABLES, RULES = provision.TABLE_TYPE, provision.DCR_TYPE
resources, tables_of = provision.resources_of, provision.template_tables


def worked_example() -> dict[str, Any]:
    return build_template(parse_config(config_doc(WORKED_EXAMPLE)))


def test_default_configuration_is_ten_tables_in_one_rule() -> None:
    template = build_template(parse_config(config_doc({})))
    assert check_template(template) == []
    assert sorted(tables_of(template)) == sorted(f"{t}_CL" for t in SCHEMAS)
    (rule,) = resources(template, RULES)
    assert len(rule["properties"]["dataFlows"]) == 10
    assert len(resources(template, "Microsoft.Insights/dataCollectionEndpoints")) == 1
    assert len(resources(template, "Microsoft.Authorization/roleAssignments")) == 1
    functions = resources(template, "Microsoft.OperationalInsights/workspaces/savedSearches")
    assert {f["properties"]["functionAlias"]: f["properties"]["query"] for f in functions} == {
        t: f"{t}_CL" for t in SCHEMAS
    }


def test_worked_example_tables_carry_plan_retention_and_columns() -> None:
    template = worked_example()
    assert check_template(template) == []
    tables = tables_of(template)
    hot, archive = tables["DeviceProcessEvents_CL"], tables["DeviceNetworkEvents_archive_CL"]
    assert (hot["plan"], hot["retentionInDays"], hot["totalRetentionInDays"]) == ("Analytics", 90, 365)
    assert archive["plan"] == "Auxiliary" and archive["totalRetentionInDays"] == 1095
    assert "retentionInDays" not in archive  # read-only (30) on Auxiliary
    # DeviceFileEvents goes to archive unconditionally: no hot table for it.
    assert "DeviceFileEvents_CL" not in tables and "DeviceFileEvents_archive_CL" in tables
    file_columns = {c["name"]: c["type"] for c in tables["DeviceFileEvents_archive_CL"]["schema"]["columns"]}
    assert "InitiatingProcessVersionInfoFileDescription" not in file_columns
    assert file_columns["TimeGenerated"] == "dateTime" and file_columns["RetentionTag"] == "string"
    assert file_columns["AdditionalFields"] == "string"  # Auxiliary tables take no dynamic columns
    hot_columns = {c["name"]: c["type"] for c in hot["schema"]["columns"]}
    assert hot_columns["AdditionalFields"] == "dynamic"
    union = {
        f["properties"]["functionAlias"]: f["properties"]["query"]
        for f in resources(template, "Microsoft.OperationalInsights/workspaces/savedSearches")
    }
    # The Analytics leg as it is; the Auxiliary leg casts its text columns back (tests/test_hunting_queries.py).
    network = union["DeviceNetworkEvents"]
    assert network.startswith("union isfuzzy=true DeviceNetworkEvents_CL, (DeviceNetworkEvents_archive_CL | extend ")
    assert "AdditionalFields = todynamic(AdditionalFields)" in network
    assert network.splitlines()[-1].startswith("| project-reorder Timestamp, DeviceId, DeviceName, ")


def test_auxiliary_destinations_get_a_rule_each_and_other_classes_share_one() -> None:
    config = parse_config(config_doc(WORKED_EXAMPLE))
    rules = {rule.key: [d.table_name for d in rule.destinations] for rule in plan_rules(config)}
    archive = [k for k in rules if k.startswith("archive_")]
    assert all(len(rules[k]) == 1 for k in archive)
    archived = (
        "DeviceNetworkEvents",
        "DeviceFileEvents",
        "DeviceRegistryEvents",
        "DeviceEvents",
        "DeviceImageLoadEvents",
    )
    assert sorted(rules[k][0] for k in archive) == sorted(f"{t}_archive_CL" for t in archived)
    assert len(rules["hot"]) == 9  # every table but DeviceFileEvents has a hot destination


def test_rules_split_at_the_data_flow_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provision_template, "MAX_FLOWS_PER_DCR", 4)
    rules = plan_rules(parse_config(config_doc({})))
    assert [len(r.destinations) for r in rules] == [4, 4, 2]
    assert len({d.table for r in rules for d in r.destinations}) == 10


def test_stream_declarations_are_exactly_the_columns_the_ingestor_sends() -> None:
    config = parse_config(config_doc(WORKED_EXAMPLE))
    declared = {
        stream: {c["name"] for c in declaration["columns"]}
        for rule in resources(build_template(config), RULES)
        for stream, declaration in rule["properties"]["streamDeclarations"].items()
    }
    for route in config.routes().values():
        for destination in route.destinations:
            schema = SCHEMAS[destination.table]
            # the schema's columns and UnmappedColumns, where unknown columns are kept (the default)
            expected = {*schema.column_names, "UnmappedColumns"} - set(destination.dropped_columns)
            assert declared[destination.stream] == expected
            assert {c.name for c in provision.sent_columns(config, destination)} == expected


def test_longest_names_fit_azure_limits() -> None:
    longest_class = "A" * 20
    doc = config_doc(
        {"classes": {"default": {}, longest_class: {"plan": "Auxiliary"}}, "rules": [{"class": longest_class}]}
    )
    template = build_template(parse_config(doc))
    assert check_template(template) == []
    prefix = template["parameters"]["namePrefix"]["maxLength"]
    longest = max(len(r.name_suffix) for r in plan_rules(parse_config(doc)))
    assert prefix + 1 + longest <= provision.MAX_DCR_NAME_CHARS
    assert max(len(name) for name in tables_of(template)) <= 63


def _first(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return resources(template, kind)[0]


def _break_flows(t: dict[str, Any]) -> None:
    flows = _first(t, RULES)["properties"]["dataFlows"]
    flows.extend(copy.deepcopy(flows[0]) for _ in range(11 - len(flows)))


def _stream_columns(t: dict[str, Any]) -> list[dict[str, Any]]:
    declarations = _first(t, RULES)["properties"]["streamDeclarations"]
    return declarations[next(iter(declarations))]["columns"]


def _table_properties(t: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = _first(t, TABLES)["properties"]
    return properties


BREAKAGES = {
    "11 data flows": (_break_flows, "11 data flows"),
    "guid in a stream": (lambda t: _stream_columns(t).append({"name": "X", "type": "guid"}), "cannot declare"),
    "stream column not in the table": (
        lambda t: _stream_columns(t).append({"name": "Extra", "type": "string"}),
        "the DCR would drop it",
    ),
    "type differs": (lambda t: _stream_columns(t).__setitem__(0, {"name": "Timestamp", "type": "string"}), "is string"),
    "long transform": (
        lambda t: _first(t, RULES)["properties"]["dataFlows"][0].update(transformKql="source" + " " * 15_360),
        "the limit is 15360",
    ),
    "stream prefix": (
        lambda t: _first(t, RULES)["properties"]["streamDeclarations"].update({"Nope": {"columns": []}}),
        "must start with Custom-",
    ),
    "flow to an undeclared table": (
        lambda t: _first(t, RULES)["properties"]["dataFlows"][0].update(outputStream="Custom-Nope_CL"),
        "does not declare",
    ),
    "long column name": (
        lambda t: _table_properties(t)["schema"]["columns"].append({"name": "C" * 46, "type": "string"}),
        "<= 45 chars",
    ),
    "reserved column": (
        lambda t: _table_properties(t)["schema"]["columns"].append({"name": "TenantId", "type": "string"}),
        "reserved",
    ),
    "bad table type": (
        lambda t: _table_properties(t)["schema"]["columns"].append({"name": "When", "type": "datetime"}),
        "not a Tables API type",
    ),
    "501 columns": (
        lambda t: _table_properties(t)["schema"]["columns"].extend(
            {"name": f"C{i}", "type": "string"} for i in range(501)
        ),
        "a table may have 500",
    ),
    "no TimeGenerated": (
        lambda t: _table_properties(t)["schema"].update(
            columns=[c for c in _table_properties(t)["schema"]["columns"] if c["name"] != "TimeGenerated"]
        ),
        "needs TimeGenerated",
    ),
    "table name": (lambda t: _table_properties(t)["schema"].update(name="DeviceInfo"), "custom table name"),
    "retention on Basic": (lambda t: _table_properties(t).update(plan="Basic", retentionInDays=90), "only settable"),
    "total retention": (lambda t: _table_properties(t).update(totalRetentionInDays=800), "not 4-730"),
    "dynamic on Auxiliary": (lambda t: _table_properties(t).update(plan="Auxiliary"), "cannot have dynamic columns"),
    "no role assignment": (
        lambda t: t["resources"].remove(_first(t, "Microsoft.Authorization/roleAssignments")),
        "no Monitoring Metrics Publisher",
    ),
    "function over an unknown table": (
        lambda t: _first(t, "Microsoft.OperationalInsights/workspaces/savedSearches")["properties"].update(
            query="union Nope_CL"
        ),
        "unknown tables ['Nope_CL']",
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_checks_catch_each_broken_rule(breakage: str) -> None:
    template = build_template(parse_config(config_doc({})))
    assert check_template(template) == []
    break_it, expected = BREAKAGES[breakage]
    break_it(template)
    problems = check_template(template)
    assert any(expected in p for p in problems), problems


def test_resolve_config_fills_outputs_and_names_placeholders() -> None:
    doc = config_doc(WORKED_EXAMPLE)
    config = parse_config(doc)
    keys = [rule.key for rule in plan_rules(config)]
    pending = resolve_config(doc, config, None)
    assert pending["sink"]["endpoint"] == "${logsIngestionEndpoint}"
    assert pending["retention"]["destinations"]["DeviceNetworkEvents"]["archive"]["rule_id"] == (
        "${dataCollectionRuleIds.archive_DeviceNetworkEvents}"
    )
    with pytest.raises(ConfigError, match="rule_id"):
        parse_config(pending)
    ids = {key: f"dcr-{index:032x}" for index, key in enumerate(keys)}
    outputs = {
        "logsIngestionEndpoint": {"type": "String", "value": "https://dce.westeurope-1.ingest.monitor.azure.com"},
        "dataCollectionRuleIds": {"type": "Object", "value": ids},
    }
    resolved = parse_config(resolve_config(doc, config, outputs))
    assert resolved.sink.endpoint == "https://dce.westeurope-1.ingest.monitor.azure.com"
    by_table = {rule.key: {d.table_name for d in rule.destinations} for rule in plan_rules(config)}
    for route in resolved.routes().values():
        for destination in route.destinations:
            key = next(k for k, names in by_table.items() if destination.table_name in names)
            assert destination.rule_id == ids[key]
    # the input's own settings survive
    kept = resolved.retention.destinations["DeviceFileEvents"]["archive"]
    assert kept.drop_columns == ["InitiatingProcessVersionInfoFileDescription"]
    del ids[keys[0]]
    with pytest.raises(ConfigError, match=keys[0]):
        resolve_config(doc, config, outputs)


@pytest.mark.parametrize(
    ("outputs", "problem"),
    [
        ([], "expected a JSON object of outputs, got list"),
        ({"properties": {"outputs": {}}}, "this is the whole deployment, not its outputs"),
        ({"dataCollectionRuleIds": {"type": "Object", "value": {}}}, "no output 'logsIngestionEndpoint'"),
        ({"logsIngestionEndpoint": {"type": "Object", "value": {}}}, "'logsIngestionEndpoint' is not a str"),
    ],
)
def test_outputs_that_are_not_the_deployments_are_refused_with_the_command_to_use(outputs: Any, problem: str) -> None:
    doc = config_doc(WORKED_EXAMPLE)
    with pytest.raises(ConfigError) as refused:
        resolve_config(doc, parse_config(doc), outputs)
    (line,) = refused.value.problems
    assert problem in line and "--query properties.outputs" in line


@pytest.mark.process
def test_command_writes_template_and_config(tmp_path: Path) -> None:
    config_path = tmp_path / "in.yaml"
    config_path.write_text(yaml.safe_dump(config_doc(WORKED_EXAMPLE)))
    out = tmp_path / "deploy"
    done = subprocess.run(
        ingestor_command("provision", "--config", str(config_path), "--out", str(out)), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert check_template(json.loads((out / "azuredeploy.json").read_text())) == []
    assert "${dataCollectionRuleIds.hot}" in (out / "ingestor.yaml").read_text()
    bad = subprocess.run(
        ingestor_command("provision", "--config", str(config_path), "--out", str(out), "--function-name", "X"),
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--function-name" in bad.stderr
    missing = subprocess.run(
        ingestor_command(
            "provision", "--config", str(config_path), "--out", str(out), "--outputs", str(tmp_path / "nope.json")
        ),
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "nope.json" in missing.stderr


# -- end to end: what provision declares is exactly what the ingestor writes ----------------------------------

ARCHIVE_EXAMPLE = {
    "default_class": "hot",
    "classes": {
        "hot": {"plan": "Analytics", "retention_days": 90, "total_retention_days": 365},
        "basic": {"plan": "Basic", "total_retention_days": 180},
        "archive": {"plan": "Auxiliary", "total_retention_days": 1095},
    },
    "rules": [
        {"tables": ["DeviceNetworkEvents"], "when": {"column": "ActionType", "equals": "ConnectionFailed"},
         "class": "hot"},
        {"tables": ["DeviceNetworkEvents", "DeviceFileEvents"], "class": "archive"},
        {"tables": ["DeviceRegistryEvents"], "when": {"column": "ActionType", "prefix": "RegistryValue"},
         "class": "basic"},
    ],
    "destinations": {
        "DeviceFileEvents": {"archive": {"drop_columns": ["InitiatingProcessVersionInfoFileDescription"]}},
        "DeviceProcessEvents": {"hot": {"drop_columns": ["ProcessVersionInfoFileDescription"]}},
    },
}  # fmt: skip


@pytest.mark.emulator
@pytest.mark.process
def test_ingestor_writes_exactly_what_the_template_declares(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic, group = unique_names()
    # 6,000 records over about 3 hours of event time, read from 4 partitions: Auxiliary rows arrive out of order.
    generator = TrafficGenerator(seed=11, devices=50, events_per_second=0.5)
    messages = list(generator.messages(records=6_000))
    per_partition = produce(kafka_bootstrap, topic, messages, partitions=4)
    manifest = generator.manifest
    emulator, provisioned = provisioned_emulator(tmp_path, ARCHIVE_EXAMPLE)
    try:
        config = ingestor_config(tmp_path, kafka_bootstrap, emulator, topic=topic, group=group)
        use_provisioned(config, provisioned)
        assert config["sink"]["endpoint"] == emulator.endpoint
        samples = run_until_committed(tmp_path, config, topic, per_partition, timeout=180)
        statuses = emulator.statuses()
        assert set(statuses) == {204}, statuses  # no stream, column, type or time-span refusal
        valid = sum(manifest.valid.values())
        landed = emulator.counts()
        assert sum(landed.values()) == valid
        template_tables = set(tables_of(json.loads((tmp_path / "deploy" / "azuredeploy.json").read_text())))
        assert set(landed) <= template_tables
        assert {
            "DeviceNetworkEvents_archive_CL",
            "DeviceFileEvents_archive_CL",
            "DeviceRegistryEvents_basic_CL",
        } <= set(landed)
        assert "DeviceFileEvents_CL" not in landed
        for table_name in landed:
            rows = emulator.rows(table_name)
            tags = {row["RetentionTag"] for row in rows}
            expected_tag = table_name.removesuffix("_CL").rpartition("_")[2] if table_name.count("_") > 1 else "hot"
            assert tags == {expected_tag}, table_name
        network_hot = emulator.rows("DeviceNetworkEvents_CL")
        assert network_hot and {r["ActionType"] for r in network_hot} == {"ConnectionFailed"}
        assert all(r["ActionType"] != "ConnectionFailed" for r in emulator.rows("DeviceNetworkEvents_archive_CL"))
        archive_rows = emulator.rows("DeviceFileEvents_archive_CL")
        assert all("InitiatingProcessVersionInfoFileDescription" not in r for r in archive_rows)
        assert all(isinstance(r.get("AdditionalFields", ""), str) for r in archive_rows)
        # Auxiliary requests each within 30 minutes though the rows span hours (the emulator refuses otherwise).
        times = sorted(r["TimeGenerated"] for r in emulator.rows("DeviceNetworkEvents_archive_CL"))
        assert times[-1][:13] != times[0][:13]  # more than one hour of event time
        accepted = sum(v for (name, _), v in samples.items() if name == "ingestor_accepted_events_total")
        assert accepted == valid
    finally:
        emulator.stop()
