"""`ingestor provision --check-queries DIR` (issue 13, item 3): a SOC's own queries and analytics rules, analyzed by
Kusto.Language against the workspace the configuration would provision; the breaking ones are listed with the
reason and the exit code is 1. Runs the real command, with the real analyzer under Node.js.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from realparts import ingestor_command
from test_provision import WORKED_EXAMPLE, config_doc

pytestmark = [pytest.mark.node, pytest.mark.process]

RULE_YAML = """\
id: 5b0c9a51-1f7e-4f57-9d6e-0c1d2a3b4c5d
name: Encoded PowerShell download cradle
severity: Medium
queryFrequency: 1h
queryPeriod: 1h
triggerOperator: gt
triggerThreshold: 0
query: |
  DeviceProcessEvents
  | where FileName in~ ("powershell.exe", "pwsh.exe")
  | where ProcessCommandLine has_any ("-enc", "-EncodedCommand")
  | project Timestamp, DeviceName, AccountName, ProcessCommandLine
"""

ARM_EXPORT = {
    "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
    "contentVersion": "1.0.0.0",
    "resources": [
        {
            "type": "Microsoft.OperationalInsights/workspaces/providers/alertRules",
            "kind": "Scheduled",
            "name": "[concat(parameters('workspace'),'/Microsoft.SecurityInsights/aaaa')]",
            "properties": {
                "displayName": "Logons by protocol",
                "query": "DeviceLogonEvents\n| where ActionType == 'LogonSuccess'\n"
                "| extend Protocol = tostring(AdditionalFields.Protocol)\n| summarize count() by Protocol",
            },
        },
        {
            "type": "Microsoft.OperationalInsights/workspaces/providers/alertRules",
            "kind": "Scheduled",
            "name": "[concat(parameters('workspace'),'/Microsoft.SecurityInsights/bbbb')]",
            "properties": {
                "displayName": "Latest process per file",
                "query": "DeviceProcessEvents | extend Elevation = tostring(AdditionalFields.ProcessElevation) "
                "| summarize arg_max(Timestamp, *) by SHA1",
            },
        },
    ],
}


def queries_dir(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    (rules / "nested").mkdir(parents=True)
    (rules / "logons.kql").write_text(
        "DeviceLogonEvents\n| where ActionType == 'LogonFailed'\n"
        "| summarize Failures = count() by DeviceName, bin(Timestamp, 1h)\n"
    )
    (rules / "nested" / "cradle.yaml").write_text(RULE_YAML)
    (rules / "export.json").write_text(json.dumps(ARM_EXPORT))
    # Another table: nothing to compare it with, so it cannot be checked.
    (rules / "signins.txt").write_text("SigninLogs | where ResultType != 0 | take 10\n")
    (rules / "notes.md").write_text("not a query\n")
    return rules


def provision(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return check_queries(tmp_path, queries_dir(tmp_path), *extra, env=env)


def check_queries(
    tmp_path: Path,
    rules: Path,
    *extra: str,
    retention: dict[str, Any] = WORKED_EXAMPLE,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "in.yaml"
    config.write_text(yaml.safe_dump(config_doc(retention)))
    command = ingestor_command("provision", "--config", str(config), "--check-queries", str(rules))
    return subprocess.run([*command, *extra], capture_output=True, text=True, env=env)


def test_queries_that_compile_natively_compile_against_what_provision_creates(tmp_path: Path) -> None:
    done = provision(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 queries checked against the workspace this configuration provisions: 0 would break, 1 could not be " \
        "checked, 4 compile" in done.stdout  # fmt: skip
    assert "UNCHECKED (fails against the native tables too): " in done.stdout and "signins.txt" in done.stdout
    assert not (tmp_path / "deploy").exists()  # --check-queries alone writes nothing


def test_queries_that_would_break_are_listed_with_the_reason_and_exit_1(tmp_path: Path) -> None:
    # Functions named otherwise than the native tables: every query naming a table breaks.
    done = provision(tmp_path, "--function-name", "{table}_all", "--out", str(tmp_path / "deploy"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "4 would break" in done.stdout
    assert "BREAKS: " in done.stdout and "(Encoded PowerShell download cradle)" in done.stdout
    assert "'DeviceProcessEvents' does not refer to any known" in done.stdout and "line 1, column 1" in done.stdout
    assert (tmp_path / "deploy" / "azuredeploy.json").is_file()  # with --out, the files are written too


def test_without_node_it_says_so_in_one_line(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    done = provision(tmp_path, env={**os.environ, "PATH": str(bare)})  # the command is sys.executable's
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("ingestor provision: ") and "Node.js" in line and "install Node.js" in line


def test_a_file_that_is_no_text_or_no_yaml_is_named_with_the_reason(tmp_path: Path) -> None:
    """Files nobody here wrote: bytes that are no UTF-8 in a .kql, a .yaml that is no YAML; exit 2, no traceback."""
    config = tmp_path / "in.yaml"
    config.write_text(yaml.safe_dump(config_doc(WORKED_EXAMPLE)))
    for name, content in (("binary.kql", b"\xff\xfe\x00DeviceInfo"), ("broken.yaml", b"query: [unclosed\n")):
        rules = tmp_path / name.split(".")[0]
        rules.mkdir()
        (rules / name).write_bytes(content)
        done = subprocess.run(
            ingestor_command("provision", "--config", str(config), "--check-queries", str(rules)),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 2, done.stderr
        assert name in done.stderr and "Traceback" not in done.stderr


# Item 5 of issue 19: what a query needs of the retention configuration, not only that it compiles.
NETWORK_QUERY = "DeviceNetworkEvents\n| where RemotePort == 4444 // reverse shells\n| project Timestamp, DeviceName\n"
SCHEDULED = {
    "name": "Port 4444",
    "kind": "Scheduled",
    "queryFrequency": "1h",
    "queryPeriod": "1h",
    "query": NETWORK_QUERY,
}
HUNTING = {"name": "Port 4444", "description": "hunt", "query": NETWORK_QUERY}


def one_file(tmp_path: Path, name: str, content: str) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(parents=True)
    (rules / name).write_text(content)
    return rules


def test_a_scheduled_rule_over_rows_of_an_auxiliary_class_is_a_finding_with_the_fix(tmp_path: Path) -> None:
    done = check_queries(tmp_path, one_file(tmp_path, "rule.yaml", yaml.safe_dump(SCHEDULED)))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "rule.yaml (Port 4444): DeviceNetworkEvents, class archive (plan Auxiliary): a scheduled rule cannot " \
        "query an Auxiliary table; retention.rules[1] sends rows there." in done.stdout  # fmt: skip
    assert "fix: keep the rows the rule needs in an Analytics class (a retention rule before retention.rules[1]), " \
        "or give class archive plan Analytics" in done.stdout  # fmt: skip
    assert "0 would break" in done.stdout and "1 finding on" in done.stdout


def test_the_same_query_as_a_hunting_query_is_no_finding(tmp_path: Path) -> None:
    done = check_queries(tmp_path, one_file(tmp_path, "hunt.yaml", yaml.safe_dump(HUNTING)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 findings" in done.stdout


def test_an_nrt_rule_over_a_basic_class_is_a_finding(tmp_path: Path) -> None:
    basic = {"default_class": "cheap", "classes": {"cheap": {"plan": "Basic"}}}
    nrt = {**SCHEDULED, "kind": "NRT"}
    done = check_queries(tmp_path, one_file(tmp_path, "nrt.yaml", yaml.safe_dump(nrt)), retention=basic)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "DeviceNetworkEvents, class cheap (plan Basic): an NRT rule cannot query a Basic table; " \
        "retention.default_class cheap sends rows there" in done.stdout  # fmt: skip


def test_a_column_a_destination_drops_is_a_finding_with_the_key_to_change(tmp_path: Path) -> None:
    query = "DeviceFileEvents\n| where InitiatingProcessVersionInfoFileDescription has 'updater'\n"
    done = check_queries(tmp_path, one_file(tmp_path, "files.kql", query))
    assert done.returncode == 1, done.stdout + done.stderr
    column = "InitiatingProcessVersionInfoFileDescription"
    assert f"files.kql: DeviceFileEvents, class archive (plan Auxiliary): column {column} is always null for rows " \
        "of class archive." in done.stdout  # fmt: skip
    assert "fix: keep it: remove it from retention.destinations.DeviceFileEvents.archive.drop_columns" in done.stdout
    # In a comment or a string the column name is no read of the column.
    quiet = check_queries(
        tmp_path,
        one_file(tmp_path / "q", "files.kql", "DeviceFileEvents // InitiatingProcessVersionInfoFileDescription\n"),
    )
    assert quiet.returncode == 0, quiet.stdout


def test_a_window_longer_than_the_interactive_retention_is_a_finding_and_a_shorter_one_is_not(tmp_path: Path) -> None:
    query = "DeviceProcessEvents | where Timestamp > ago(120d) | count\n"
    done = check_queries(tmp_path, one_file(tmp_path, "long.kql", query))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "long.kql: DeviceProcessEvents, class hot (plan Analytics): the query reads 120 days back, class hot " \
        "keeps 90 days queryable." in done.stdout  # fmt: skip
    assert "fix: shorten the window, raise retention_days of class hot, or use a search job" in done.stdout
    rule = {**SCHEDULED, "queryPeriod": "14d", "queryFrequency": "P1D", "query": "DeviceProcessEvents | count\n"}
    fine = check_queries(tmp_path, one_file(tmp_path / "r", "rule.yaml", yaml.safe_dump(rule)))
    assert fine.returncode == 0, fine.stdout
    assert "0 findings" in fine.stdout


def test_rules_exported_as_arm_take_their_kind_from_the_resource(tmp_path: Path) -> None:
    basic = {"default_class": "cheap", "classes": {"cheap": {"plan": "Basic"}}}
    done = check_queries(tmp_path, one_file(tmp_path, "export.json", json.dumps(ARM_EXPORT)), retention=basic)
    assert done.returncode == 1, done.stdout + done.stderr
    for rule, table in (
        ("Logons by protocol", "DeviceLogonEvents"),
        ("Latest process per file", "DeviceProcessEvents"),
    ):
        assert f"export.json ({rule}): {table}, class cheap (plan Basic): a scheduled rule" in done.stdout
    assert "2 findings" in done.stdout


@pytest.mark.parametrize(
    ("plan", "window", "finding"),
    [
        ({"plan": "Basic"}, 45,
         "keeps 30 days queryable.\n    fix: shorten the window, give class cold plan Analytics"),
        ({"plan": "Auxiliary", "total_retention_days": 1095}, 400, None),  # queried in place for its whole retention
        ({"plan": "Auxiliary", "total_retention_days": 365}, 400,
         "keeps 365 days queryable.\n    fix: shorten the window, raise total_retention_days of class cold"),
    ],
)  # fmt: skip
def test_the_window_a_basic_or_auxiliary_class_can_answer(
    tmp_path: Path, plan: dict[str, Any], window: int, finding: str | None
) -> None:
    retention = {"default_class": "cold", "classes": {"cold": plan}}
    query = f"DeviceProcessEvents | where Timestamp > ago({window}d) | count\n"
    done = check_queries(tmp_path, one_file(tmp_path, "long.kql", query), retention=retention)
    if finding is None:
        assert done.returncode == 0 and "0 findings" in done.stdout, done.stdout + done.stderr
    else:
        assert done.returncode == 1 and finding in done.stdout, done.stdout + done.stderr


def test_an_iso_8601_query_period_is_the_window_of_a_rule(tmp_path: Path) -> None:
    rule = {**SCHEDULED, "queryPeriod": "P100D", "query": "DeviceProcessEvents | count\n"}
    done = check_queries(tmp_path, one_file(tmp_path, "rule.yaml", yaml.safe_dump(rule)))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the query reads 100 days back, class hot keeps 90 days queryable" in done.stdout


# The new tables: columns stored under another name (Title, Type, TenantId) read as the native ones, and findings
# on them like on the Device tables.
XDR_RETENTION = {
    "default_class": "hot",
    "classes": {"hot": {"retention_days": 90}, "archive": {"plan": "Auxiliary", "total_retention_days": 1095}},
    "rules": [{"tables": ["AlertEvidence", "IdentityInfo"], "class": "archive"}],
    "destinations": {"IdentityInfo": {"archive": {"drop_columns": ["TenantId"]}}},
}
ALERTS_QUERY = """\
// Ransomware alerts with the files they name
AlertInfo
| where Title has "ransom"
| join kind=inner (
    AlertEvidence | where EntityType == "File" | project AlertId, FileName, SHA256, EvidenceTitle = Title
) on AlertId
| project Timestamp, Title, Severity, FileName, SHA256, EvidenceTitle
"""
IDENTITY_RULE = {
    "name": "Service identities of another tenant",
    "kind": "Scheduled",
    "queryFrequency": "1h",
    "queryPeriod": "1h",
    "query": "IdentityInfo\n| where Type == 'ServiceAccount' and TenantId != ''\n"
    "| summarize arg_max(Timestamp, *) by AccountUpn\n| project AccountUpn, AccountUPN, Type, SourceSystem\n",
}


def test_queries_over_the_new_tables_compile_and_their_needs_are_found(tmp_path: Path) -> None:
    rules = one_file(tmp_path, "alerts.kql", ALERTS_QUERY)
    (rules / "identity.yaml").write_text(yaml.safe_dump(IDENTITY_RULE))
    done = check_queries(tmp_path, rules, retention=XDR_RETENTION)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 queries checked against the workspace this configuration provisions: 0 would break, 0 could not be " \
        "checked, 2 compile" in done.stdout  # fmt: skip
    rule = "identity.yaml (Service identities of another tenant): IdentityInfo, class archive (plan Auxiliary)"
    assert f"{rule}: a scheduled rule cannot query an Auxiliary table; retention.rules[0] sends rows there." \
        in done.stdout  # fmt: skip
    assert f"{rule}: column TenantId is always null for rows of class archive." in done.stdout
    assert "fix: keep it: remove it from retention.destinations.IdentityInfo.archive.drop_columns" in done.stdout
    assert "2 findings" in done.stdout and "alerts.kql" not in done.stdout  # a hunting query over both plans: fine
