"""Hunting queries written for the native Defender tables run unchanged against what `ingestor provision` creates
(issue 13, items 1 and 2), as Microsoft's analyzer (Kusto.Language, `ingestor.provision.kql`) sees them.

For each configuration (the default, docs/retention.md's example, Basic classes split by predicates, projections on
several tables, classes over the alert, mail, identity, cloud-app and URL-click tables), the ARM template's tables
and functions become a database. Asserted: every query of the corpus (tests/kql/queries) that compiles against the
native tables compiles against that database; each function presents every native column with its native name and
type, in native order (columns stored under another name, such as AlertInfo's `Title` as `Title_`, included); and
the function bodies compile themselves. One analyzer run per configuration answers all of it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from test_readme_retention import example_config

from ingestor.config import Config, parse_config
from ingestor.provision.azure_rules import stored_names
from ingestor.provision.kql import STANDARD_COLUMNS, Analyzer, Database, database_from_template, native_database
from ingestor.provision.template import build_template
from ingestor.tables import load_schemas

pytestmark = pytest.mark.node

CORPUS = Path(__file__).resolve().parent / "kql" / "queries"
STANDARD = {name for name, _ in STANDARD_COLUMNS}
SCHEMAS = load_schemas()


def always(table: str) -> list[str]:
    """The columns no projection drops: TimeGenerated, RetentionTag and the table's required ones."""
    return ["TimeGenerated", "RetentionTag", *SCHEMAS[table].required]


VERSION_INFO = [
    "InitiatingProcessVersionInfoCompanyName",
    "InitiatingProcessVersionInfoProductName",
    "InitiatingProcessVersionInfoProductVersion",
]


def config(**sections: Any) -> Config:
    return parse_config(
        {
            "source": {"bootstrap_servers": ["k:9092"], "topics": ["defender"], "group_id": "g"},
            "sink": {"endpoint": "https://x.example", "rule_id": "dcr-" + "0" * 32},
            "dead_letter": {"path": "/tmp/dl"},
            **sections,
        }
    )


def basic_split_by_predicate() -> Config:
    """Noisy process, image-load, cloud-app and identity-logon rows on a Basic class, chosen by predicates; the
    rest stays in Analytics."""
    return config(
        retention={
            "default_class": "hot",
            "classes": {
                "hot": {"plan": "Analytics", "retention_days": 90},
                "cheap": {"plan": "Basic", "total_retention_days": 365},
            },
            "rules": [
                {
                    "tables": ["DeviceProcessEvents", "DeviceImageLoadEvents"],
                    "when": {"column": "InitiatingProcessFileName", "in": ["svchost.exe", "MsMpEng.exe"]},
                    "class": "cheap",
                },
                {"tables": ["CloudAppEvents"], "when": {"column": "ActionType", "prefix": "MailItems"},
                 "class": "cheap"},
                {"tables": ["IdentityLogonEvents"], "when": {"column": "LogonType", "equals": "Resource access"},
                 "class": "cheap"},
            ],
        }
    )  # fmt: skip


def projections() -> Config:
    """Columns left out on several tables and classes: dynamic, string, int, long and boolean ones, by drop and by
    keep, columns stored under another name among them (IdentityInfo's TenantId, AlertEvidence's Title)."""
    return config(
        retention={
            "default_class": "hot",
            "classes": {
                "hot": {"plan": "Analytics", "retention_days": 90},
                "archive": {"plan": "Auxiliary", "total_retention_days": 1095},
            },
            "rules": [
                {"tables": ["DeviceFileEvents", "DeviceRegistryEvents", "IdentityInfo", "AlertEvidence"],
                 "class": "archive"},
            ],
            "destinations": {
                "DeviceProcessEvents": {"hot": {"drop_columns": ["AdditionalFields", "ProcessVersionInfoCompanyName"]}},
                "DeviceFileEvents": {"archive": {"drop_columns": [*VERSION_INFO, "AdditionalFields", "FileSize"]}},
                "DeviceRegistryEvents": {
                    "archive": {"drop_columns": ["PreviousRegistryValueData", "AppGuardContainerId"]}
                },
                "DeviceNetworkEvents": {
                    "hot": {
                        "keep_columns": [
                            *always("DeviceNetworkEvents"), "ActionType", "RemoteIP", "RemotePort",
                            "InitiatingProcessFileName",
                        ]
                    }
                },
                "DeviceEvents": {"hot": {"drop_columns": ["IsProcessRemoteSession", "AdditionalFields"]}},
                "IdentityInfo": {"archive": {"drop_columns": ["TenantId", "AssignedRoles", "CriticalityLevel"]}},
                "AlertEvidence": {
                    "archive": {"keep_columns": [*always("AlertEvidence"), "AlertId", "EntityType", "AdditionalFields"]}
                },
                "EmailEvents": {"hot": {"drop_columns": ["AuthenticationDetails", "EmailSize", "IsFirstContact"]}},
                "CloudAppEvents": {"hot": {"drop_columns": ["RawEventData", "ApplicationId"]}},
            },
        }
    )  # fmt: skip


def new_tables_in_three_classes() -> Config:
    """The alert, mail, identity, cloud-app and URL-click tables over three plans: alerts and identities (with
    their stored names) on Auxiliary, delivered mail and URL clicks on Basic by predicates, the rest in Analytics."""
    return config(
        retention={
            "default_class": "hot",
            "classes": {
                "hot": {"plan": "Analytics", "retention_days": 180},
                "basic": {"plan": "Basic", "total_retention_days": 180},
                "archive": {"plan": "Auxiliary", "total_retention_days": 730},
            },
            "rules": [
                {"tables": ["AlertInfo", "AlertEvidence", "IdentityInfo", "IdentityQueryEvents"], "class": "archive"},
                {"tables": ["EmailEvents"], "when": {"column": "DeliveryAction", "equals": "Delivered"},
                 "class": "basic"},
                {"tables": ["UrlClickEvents"], "when": {"column": "ActionType", "equals": "ClickAllowed"},
                 "class": "basic"},
                {"tables": ["EmailPostDeliveryEvents", "EmailAttachmentInfo"], "class": "basic"},
            ],
        }
    )  # fmt: skip


CONFIGS = {
    "default": lambda: config(),
    "readme-example": example_config,
    "basic-by-predicate": basic_split_by_predicate,
    "projections": projections,
    "new-tables-in-three-classes": new_tables_in_three_classes,
}


def corpus() -> dict[str, str]:
    return {str(path.relative_to(CORPUS)): path.read_text() for path in sorted(CORPUS.rglob("*.kql"))}


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()  # no Node.js or npm: the test fails with the one-line reason, it never skips


@cache
def native_errors() -> dict[str, list[str]]:
    queries = corpus()
    found = Analyzer().analyze(native_database(), list(queries.values()))
    return {name: [d.message for d in errors] for name, errors in zip(queries, found, strict=True)}


def test_the_corpus_compiles_against_the_native_tables() -> None:
    broken = {name: errors for name, errors in native_errors().items() if errors}
    assert len(native_errors()) >= 150
    assert not broken, broken


def natively_compiling() -> dict[str, str]:
    return {q: text for q, text in corpus().items() if not native_errors()[q]}


@cache
def config_of(name: str) -> Config:
    return CONFIGS[name]()


@cache
def provisioned(name: str, analyzer: Analyzer) -> tuple[Database, dict[str, Any]]:
    """The workspace configuration `name` provisions, and by query text the analysis against it of every query the
    tests below ask: the natively compiling corpus, the functions' bodies and their names (one Node.js run)."""
    database = database_from_template(build_template(config_of(name)))
    asked = [*natively_compiling().values(), *database.functions.values(), *database.functions]
    return database, dict(zip(asked, analyzer.analyses(database, asked), strict=True))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_query_that_compiles_natively_compiles_against_the_provisioned_workspace(
    name: str, analyzer: Analyzer
) -> None:
    _, analyses = provisioned(name, analyzer)
    queries = natively_compiling()
    found = [analyses[text].errors for text in queries.values()]
    broken = {q: [d.message for d in errors] for q, errors in zip(queries, found, strict=True) if errors}
    assert not broken, f"{len(broken)} of {len(queries)} queries break: {broken}"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_each_function_presents_its_native_table_exactly(name: str, analyzer: Analyzer) -> None:
    database, analyses = provisioned(name, analyzer)
    native = native_database()
    tables = sorted(database.functions)
    assert tables == sorted(SCHEMAS)
    bodies = [analyses[body] for body in database.functions.values()]
    assert {t: [d.message for d in a.errors] for t, a in zip(tables, bodies, strict=True) if a.errors} == {}
    presented = [analyses[table] for table in tables]
    for table, analysis in zip(tables, presented, strict=True):
        assert analysis.errors == []
        columns = dict(analysis.columns)
        # every column of the native table, those it documents under a standard column's name (IdentityInfo's
        # Type, TenantId and SourceSystem) included; the standard columns Log Analytics adds are its own business
        own = {c.name for c in SCHEMAS[table].columns if c.origin != "added"}
        wanted = [(c, t) for c, t in native.tables[table] if c in own or c not in STANDARD]
        assert [(c, columns.get(c)) for c, _ in wanted] == wanted, table
        order = [c for c, _ in analysis.columns if c in dict(wanted)]
        assert order == [c for c, _ in wanted], f"{table}: native column order not kept"
        assert not [c for c in columns if c.endswith(("_dynamic", "_string"))], f"{table}: a column was split"
        stored = stored_names([c.name for c in config_of(name).table_schemas()[table].columns]).values()
        assert not set(columns) & set(stored), f"{table}: a stored name shows beside the native one"


def test_without_the_casts_an_auxiliary_leg_would_split_additional_fields(analyzer: Analyzer) -> None:
    """The fault the functions fix, shown on docs/retention.md's example: a plain union of the class tables."""
    database = database_from_template(build_template(example_config()))
    plain = Database(
        name="plain",
        tables=database.tables,
        functions={"DeviceNetworkEvents": "union isfuzzy=true DeviceNetworkEvents_CL, DeviceNetworkEvents_archive_CL"},
    )
    query = "DeviceNetworkEvents | extend Q = tostring(AdditionalFields.query)"
    (broken,) = analyzer.analyze(plain, [query])
    assert any("AdditionalFields" in d.message for d in broken)
    assert analyzer.analyze(database, [query]) == [[]]
