"""The Kusto.Language bridge (`ingestor.provision.kql`) against the real analyzer: Node.js runs Microsoft's npm package.

Nothing is mocked. Without Node.js 18+ or access to the npm registry (first run only) these tests fail, never
skip. The package is installed once into the analyzer's cache directory ($INGESTOR_KQL_ANALYZER_DIR or
~/.cache/defender-ingestor/kql-analyzer-<version>); later runs reuse it until package-lock.json changes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_retention import config_doc

from ingestor.config import parse_config
from ingestor.errors import IngestorError
from ingestor.provision.azure_rules import stored_names
from ingestor.provision.kql import (
    STANDARD_COLUMNS,
    Analyzer,
    AnalyzerError,
    AnalyzerUnavailable,
    Database,
    database_from_template,
    native_database,
)
from ingestor.provision.template import build_template
from ingestor.tables import load_schemas
from ingestor_tools import SAMPLES_DIR

SCHEMAS = load_schemas()

KNOWN_COLUMN = "does not refer to any known column"

# A: AdditionalFields is dynamic (an Analytics table); B: the same column as a string (an Auxiliary table).
CONFLICT = Database(
    name="conflict",
    tables={
        "A": [("TimeGenerated", "datetime"), ("AdditionalFields", "dynamic"), ("DeviceId", "string")],
        "B": [("TimeGenerated", "datetime"), ("AdditionalFields", "string"), ("DeviceId", "string")],
    },
    functions={
        "Fuzzy": "union isfuzzy=true A, B",
        "Cast": "union isfuzzy=true A, (B | extend AdditionalFields = todynamic(AdditionalFields))",
    },
)
DEVICE = Database(
    name="device",
    tables={
        "Events": [
            ("TimeGenerated", "datetime"),
            ("Timestamp", "datetime"),
            ("DeviceId", "string"),
            ("DeviceName", "string"),
            ("ActionType", "string"),
            ("RemotePort", "int"),
            ("ReportId", "long"),
            ("AdditionalFields", "dynamic"),
            ("Raw", "string"),
        ],
        "Info": [("Timestamp", "datetime"), ("DeviceId", "string"), ("OSPlatform", "string")],
    },
    functions={"RecentEvents": "Events | where TimeGenerated > ago(1d)"},
)


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


@pytest.mark.node
def test_unknown_column_is_an_error_naming_it(analyzer: Analyzer) -> None:
    query = "Events | where NoSuchColumn == 1"
    ((error,),) = analyzer.analyze(DEVICE, [query])
    assert "'NoSuchColumn'" in error.message and KNOWN_COLUMN in error.message
    assert query[error.start : error.start + error.length] == "NoSuchColumn"


@pytest.mark.node
def test_log_analytics_queries_on_existing_columns_have_no_errors(analyzer: Analyzer) -> None:
    queries = [
        "Events | extend Q = tostring(AdditionalFields.Foo), P = toint(AdditionalFields['bar'])",
        "Events | where TimeGenerated > ago(7d) | summarize count() by bin(TimeGenerated, 1h), ActionType",
        "Events | extend J = parse_json(Raw) | mv-expand J | project-away Raw",
        "Events | summarize arg_max(Timestamp, *) by DeviceId",
        "Events | join kind=inner (Info | project DeviceId, OSPlatform) on DeviceId",
        "union Events, Info | where isnotempty(DeviceId) | count",
        "RecentEvents | extend Q = tostring(AdditionalFields.Foo) | project TimeGenerated, DeviceName, Q",
        "Events | where DeviceName has_any ('a', 'b') | top 10 by Timestamp desc",
        "let Ports = dynamic([22, 3389]); Events | where RemotePort in (Ports) | lookup (Info) on DeviceId",
    ]
    assert analyzer.analyze(DEVICE, queries) == [[] for _ in queries]


@pytest.mark.node
def test_union_with_conflicting_types_splits_the_column(analyzer: Analyzer) -> None:
    """The reason for the bridge: a fuzzy union of a dynamic and a string AdditionalFields has no AdditionalFields
    column, only AdditionalFields_dynamic and AdditionalFields_string, so `AdditionalFields.x` does not resolve."""
    queries = [
        "Fuzzy | extend Q = tostring(AdditionalFields.query)",
        "Fuzzy | project AdditionalFields_dynamic, AdditionalFields_string",
        # Casting inside the function gives one dynamic column again.
        "Cast | extend Q = tostring(AdditionalFields.query)",
        "Cast | project AdditionalFields_dynamic",
        "Cast | where AdditionalFields.query == 'x' | project TimeGenerated, DeviceId, AdditionalFields",
    ]
    fuzzy, split, cast, no_split, cast_ok = analyzer.analyze(CONFLICT, queries)
    assert [(e.code, e.message.split(" does")[0]) for e in fuzzy] == [("KS142", "The name 'AdditionalFields'")]
    assert KNOWN_COLUMN in fuzzy[0].message
    assert split == cast == cast_ok == []
    assert [e.message.split(" does")[0] for e in no_split] == ["The name 'AdditionalFields_dynamic'"]


@pytest.mark.node
def test_default_template_has_a_function_per_table_with_every_native_column(analyzer: Analyzer) -> None:
    database = database_from_template(build_template(parse_config(config_doc({}))))
    assert sorted(database.tables) == sorted(f"{t}_CL" for t in SCHEMAS)
    for table, schema in SCHEMAS.items():
        columns = database.tables[f"{table}_CL"]
        kept = ["UnmappedColumns"]  # unknown columns are kept by default (tests/test_unmapped_columns.py)
        # A column the table cannot hold under its own name is stored as `<name>_` (azure_rules.stored_names),
        # and the standard columns Log Analytics adds follow.
        stored = stored_names([*schema.column_names, *kept])
        declared = [stored.get(c, c) for c in [*schema.column_names, *kept]]
        assert [c for c, _ in columns] == [*declared, *(c for c, _ in STANDARD_COLUMNS)]
        assert ("TimeGenerated", "datetime") in columns
        # The function is the table itself, unless it has to present a stored column under its native name.
        assert (database.functions[table] == f"{table}_CL") == (not stored)
    assert "Title_" in dict(database.tables["AlertInfo_CL"]) and "Title" not in dict(database.tables["AlertInfo_CL"])
    # A query written for a native table (every column it has) works on the function of the same name.
    native = native_database()
    queries = [f"{t} | project {', '.join(c for c, _ in native.tables[t])}" for t in SCHEMAS]
    assert analyzer.analyze(database, queries) == [[] for _ in queries]
    assert analyzer.analyze(native, queries) == [[] for _ in queries]


@pytest.mark.node
def test_native_tables_hold_every_sample_record_column(analyzer: Analyzer) -> None:
    native = native_database()
    queries = []
    for path in sorted(SAMPLES_DIR.glob("*.json")):
        for record in json.loads(path.read_text(encoding="utf-8")):
            table = record["category"].removeprefix("AdvancedHunting-")
            columns = dict(native.tables[table])
            schema = SCHEMAS[table]
            own = [c.name for c in schema.columns if c.origin != "added"]
            # a standard column the table documents itself (IdentityInfo's Type) is that column, not a second one
            assert list(columns) == [
                *own,
                *(c for c in ("TimeGenerated", *(c for c, _ in STANDARD_COLUMNS)) if c not in own),
            ]
            assert set(record["properties"]) <= set(columns)
            assert columns["TimeGenerated"] == "datetime" and columns["TenantId"] == "string"
            standard = [c for c in ("TimeGenerated", "TenantId", "Type") if c not in record["properties"]]
            queries.append(f"{table} | project {', '.join([*record['properties'], *standard])}")
    sampled = {q.split(" | ", 1)[0] for q in queries}
    # A table may lack a sample only where samples/SOURCES.md says no public capture of it exists.
    sources = (SAMPLES_DIR / "SOURCES.md").read_text(encoding="utf-8").splitlines()
    uncaptured = {line.split("|")[1].strip() for line in sources if line.replace(" ", "").split("|")[2:3] == ["none"]}
    assert sorted(set(SCHEMAS) - sampled) == sorted(uncaptured), (
        "tables without a sample record in ingestor_tools/samples"
    )
    assert analyzer.analyze(native, queries) == [[] for _ in queries]


@pytest.mark.node
def test_bad_column_type_is_an_analyzer_error(analyzer: Analyzer) -> None:
    database = Database(name="bad", tables={"T": [("c", "boolean")]})
    with pytest.raises(AnalyzerError) as info:
        analyzer.analyze(database, ["T"])
    assert "column c" in str(info.value) and "boolean" in str(info.value)


def test_without_node_the_analyzer_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AnalyzerUnavailable) as info:
        Analyzer()
    message = str(info.value)
    assert isinstance(info.value, IngestorError)
    assert "\n" not in message
    assert "Node.js 18 or newer" in message and "run the command again" in message
