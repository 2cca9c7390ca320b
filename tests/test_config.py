"""Configuration: YAML plus environment, errors that name the key, masked secrets, Event Hubs client settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingestor.config import ConfigError, load_config, parse_config
from ingestor.config_check import load_runnable
from ingestor.connect.kafka import EntraTokenProvider
from ingestor.sources.kafka import consumer_settings
from ingestor.tables import load_schemas

RULE = "dcr-" + "ab" * 16
SECRET = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=c2VjcmV0"


def base() -> dict[str, Any]:
    return {
        "source": {"type": "kafka", "bootstrap_servers": ["127.0.0.1:9092"], "topics": ["defender"], "group_id": "g"},
        "sink": {
            "type": "logs_ingestion",
            "endpoint": "https://dce.westeurope-1.ingest.monitor.azure.com",
            "rule_id": RULE,
            "credential": {"type": "default"},
        },
        "dead_letter": {"path": "/var/lib/ingestor/dead-letter"},
        "metrics": {"port": 9464},
    }


def problems(doc: dict[str, Any], env: dict[str, str] | None = None, tmp: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        if env is None:
            parse_config(doc)
        else:
            assert tmp is not None
            path = tmp / "c.yaml"
            path.write_text(yaml.safe_dump(doc))
            load_config(path, env)
    return caught.value.problems


def test_minimal_config_and_defaults() -> None:
    config = parse_config(base())
    assert config.validation.unknown_columns == "keep"  # new Defender columns land in UnmappedColumns
    assert config.sink.max_request_bytes == 1_040_000 < 1_048_576
    assert config.source.commit_interval_secs >= 0.25
    assert config.schemas.tables == "all" and config.tables == tuple(load_schemas())  # every table with a schema
    routes = config.routes()
    assert list(routes) == list(load_schemas()) and all(r.fixed is r.fallback for r in routes.values())
    process = routes["DeviceProcessEvents"].fallback
    assert (process.rule_id, process.stream, process.table_name) == (
        RULE,
        "Custom-DeviceProcessEvents_CL",
        "DeviceProcessEvents_CL",
    )


def test_per_table_destination_override() -> None:
    doc = base()
    other = "dcr-" + "cd" * 16
    doc["sink"]["tables"] = {"DeviceNetworkEvents": {"rule_id": other, "stream": "Custom-Net"}}
    network = parse_config(doc).routes()["DeviceNetworkEvents"].fallback
    assert (network.rule_id, network.stream, network.table_name) == (other, "Custom-Net", "DeviceNetworkEvents_CL")
    assert parse_config(doc).routes()["DeviceInfo"].fallback.rule_id == RULE


def test_environment_overrides_every_level(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(base()))
    env = {
        "INGESTOR_SOURCE__TOPICS": "[a, b]",
        "INGESTOR_SOURCE__BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
        "INGESTOR_SINK__CREDENTIAL__TYPE": "static_token",
        "INGESTOR_SINK__CREDENTIAL__TOKEN": "tok",
        "INGESTOR_METRICS__PORT": "9999",
        "INGESTOR_SINK__LINGER_SECS": "0.5",
        "UNRELATED": "x",
    }
    config = load_config(path, env)
    assert config.source.topics == ["a", "b"]
    assert config.source.bootstrap_servers == ["k1:9092", "k2:9092"]
    assert config.sink.credential.token is not None and config.sink.credential.token.get_secret_value() == "tok"
    assert (config.metrics.port, config.sink.linger_secs) == (9999, 0.5)


def test_configuration_entirely_from_environment() -> None:
    env = {
        "INGESTOR_SOURCE__BOOTSTRAP_SERVERS": "k:9092",
        "INGESTOR_SOURCE__TOPICS": "defender",
        "INGESTOR_SOURCE__GROUP_ID": "g",
        "INGESTOR_SINK__ENDPOINT": "https://x.example",
        "INGESTOR_SINK__RULE_ID": RULE,
        "INGESTOR_DEAD_LETTER__PATH": "/tmp/dl",
    }
    assert load_config(None, env).source.topics == ["defender"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["sink"].pop("endpoint"),
            "sink.endpoint: required; set it in the config file or with INGESTOR_SINK__ENDPOINT",
        ),
        (lambda d: d["sink"].update(endpoint="http://plain.example"), "sink.endpoint: must be an https:// URL"),
        (lambda d: d["sink"].update(rule_id="my-dcr"), "sink.rule_id: must be a DCR immutable id"),
        (lambda d: d["sink"].update(credential={"type": "static_token"}), "needs credential.token"),
        (lambda d: d["sink"].update(credential={"type": "password"}), "sink.credential.type"),
        (lambda d: d["sink"].update(tables={"DeviceFoo": {}}), "unknown tables ['DeviceFoo']"),
        (lambda d: d["sink"].update(ca_file="/nonexistent/ca.pem"), "ca_file /nonexistent/ca.pem does not exist"),
        (lambda d: d["sink"].update(max_request_bytes=2_000_000), "sink.max_request_bytes"),
        (lambda d: d["source"].update(commit_interval_secs=0.1), "source.commit_interval_secs"),
        (lambda d: d["source"].update(topics=[]), "source.topics"),
        (lambda d: d["source"].update(bootstrap_servers=["ns.servicebus.windows.net:9093"]), "set auth.type"),
        (lambda d: d["source"].update(auth={"type": "connection_string"}), "needs auth.connection_string"),
        (lambda d: d.update(sinks={}), "sinks: unknown key"),
        (lambda d: d["metrics"].update(port="http"), "metrics.port"),
    ],
)
def test_errors_name_the_key_and_the_fix(change: Any, expected: str) -> None:
    doc = base()
    change(doc)
    found = problems(doc)
    assert any(expected in p for p in found), found


# -- schemas.tables: which tables are ingested ----------------------------------------------------------------

CHOSEN = ["DeviceProcessEvents", "DeviceNetworkEvents"]


def selecting(tables: Any, **sections: Any) -> dict[str, Any]:
    doc = base()
    doc["schemas"] = {"tables": tables}
    for name, section in sections.items():
        doc.setdefault(name, {}).update(section)
    return doc


@pytest.mark.parametrize(
    ("value", "env", "tables"),
    [
        (CHOSEN, None, ("DeviceNetworkEvents", "DeviceProcessEvents")),  # in schema-file order
        ("all", None, tuple(load_schemas())),
        (None, "DeviceProcessEvents,DeviceNetworkEvents", ("DeviceNetworkEvents", "DeviceProcessEvents")),
        (None, "[DeviceInfo]", ("DeviceInfo",)),
        (None, "ALL", tuple(load_schemas())),
        ("DeviceInfo", None, ("DeviceInfo",)),
    ],
)
def test_schemas_tables_is_all_or_a_list_also_from_the_environment(
    value: Any, env: str | None, tables: tuple[str, ...], tmp_path: Path
) -> None:
    doc = base() if value is None else selecting(value)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    config = load_config(path, {} if env is None else {"INGESTOR_SCHEMAS__TABLES": env})
    assert config.tables == tables
    assert tuple(config.routes()) == tuple(config.table_schemas()) == tables


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            selecting(["DeviceProcessEvents", "DeviceProcesEvents"]),
            "schemas.tables.1: 'DeviceProcesEvents' is no table with a schema; did you mean DeviceProcessEvents",
        ),
        (
            selecting(["deviceinfo"]),
            "schemas.tables.0: 'deviceinfo' is no table with a schema; did you mean DeviceInfo?",
        ),
        (
            selecting(["Zork"]),
            "schemas.tables.0: 'Zork' is no table with a schema; the tables with a schema are "
            + ", ".join(load_schemas()),
        ),
        (
            selecting(["DeviceInfo", "DeviceEvents", "DeviceInfo"]),
            "schemas.tables.2: DeviceInfo is listed twice (also schemas.tables.0); list each table once",
        ),
        (
            selecting([]),
            "schemas.tables: an empty list ingests no table (every record would be skipped); list the tables to "
            "ingest, e.g. [DeviceProcessEvents, EmailEvents], or write all for every table with a schema",
        ),
        (
            selecting(5),
            "schemas.tables: expected all or a list of table names, e.g. [DeviceProcessEvents, EmailEvents]; got 5",
        ),
        (
            selecting({"DeviceInfo": True}),
            "schemas.tables: expected all or a list of table names, e.g. [DeviceProcessEvents, EmailEvents]; got a "
            "mapping",
        ),
        (
            selecting(CHOSEN, sink={"tables": {"DeviceInfo": {"rule_id": RULE}}}),
            "sink.tables.DeviceInfo: DeviceInfo is not ingested (not in schemas.tables): add it to schemas.tables or "
            "remove sink.tables.DeviceInfo",
        ),
        (
            selecting(
                CHOSEN,
                retention={
                    "classes": {"default": {}, "cold": {}},
                    "rules": [
                        {"tables": ["DeviceProcessEvents"], "class": "cold"},
                        {"tables": ["DeviceNetworkEvents", "DeviceFileEvents"], "class": "cold"},
                    ],
                },
            ),
            "retention.rules.1.tables.1: DeviceFileEvents is not ingested (not in schemas.tables): add it to "
            "schemas.tables or remove it from the rule's tables",
        ),
        (
            selecting(CHOSEN, retention={"destinations": {"DeviceInfo": {"default": {"table_name": "Info_CL"}}}}),
            "retention.destinations.DeviceInfo: DeviceInfo is not ingested (not in schemas.tables): add it to "
            "schemas.tables or remove retention.destinations.DeviceInfo",
        ),
        (
            selecting(CHOSEN, schemas={"extra_columns": {"DeviceFileEvents": {"FileRiskScore": "long"}}}),
            "schemas.extra_columns.DeviceFileEvents: DeviceFileEvents is not ingested (not in schemas.tables): add "
            "it to schemas.tables or remove schemas.extra_columns.DeviceFileEvents",
        ),
        (
            selecting(
                ["DeviceProcessEvents", "DeviceInfo"],
                retention={
                    "classes": {"default": {}, "cold": {}},
                    "rules": [{"when": {"column": "ActionType", "equals": "ProcessCreated"}, "class": "cold"}],
                },
            ),
            "retention.rules.0.when.column: DeviceInfo has no column 'ActionType'; a rule without tables applies to "
            "every ingested table: name the tables it is for in retention.rules.0.tables",
        ),
    ],
)
def test_schemas_tables_errors_name_the_key_the_value_and_the_fix(doc: dict[str, Any], expected: str) -> None:
    found = problems(doc)
    assert any(p.startswith(expected) for p in found), found


def test_keys_naming_selected_tables_pass_and_a_rule_without_tables_tests_only_the_selected_ones() -> None:
    retention = {
        "classes": {"default": {}, "cold": {}},
        # No table named: every ingested table (both have ActionType; DeviceInfo, which has none, is not ingested).
        "rules": [{"when": {"column": "ActionType", "equals": "ConnectionFailed"}, "class": "cold"}],
        "destinations": {"DeviceProcessEvents": {"cold": {"drop_columns": ["ProcessVersionInfoFileDescription"]}}},
    }
    doc = selecting(
        CHOSEN,
        retention=retention,
        sink={"tables": {"DeviceNetworkEvents": {"rule_id": RULE}}},
        schemas={"extra_columns": {"DeviceProcessEvents": {"ProcessRiskScore": "long"}}},
    )
    config = parse_config(doc)
    routes = config.routes()
    assert set(routes) == set(CHOSEN)
    assert {d.retention_tag for d in routes["DeviceNetworkEvents"].destinations} == {"default", "cold"}
    with pytest.raises(ConfigError, match="DeviceInfo has no column 'ActionType'"):
        parse_config(selecting([*CHOSEN, "DeviceInfo"], retention=retention))


def test_broken_yaml_and_missing_file_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, {})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", {})
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(bad, {})


def check_config(tmp: Path, doc: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    command = [sys.executable, "-m", "ingestor", "check-config", "--config", str(path)]
    return subprocess.run(command, capture_output=True, text=True, cwd=tmp)


@pytest.mark.process
def test_check_config_prints_masked_configuration(tmp_path: Path) -> None:
    doc = base()
    doc["source"].update(
        bootstrap_servers=["ns.servicebus.windows.net:9093"],
        auth={"type": "connection_string", "connection_string": SECRET},
    )
    doc["sink"]["credential"] = {"type": "static_token", "token": "very-secret-token"}
    result = check_config(tmp_path, doc)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    printed = yaml.safe_load(out)
    assert printed["source"]["auth"]["connection_string"] == "**********"
    assert printed["sink"]["credential"]["token"] == "**********"
    assert SECRET not in out and "very-secret-token" not in out and "c2VjcmV0" not in out
    assert printed["sink"]["rule_id"] == RULE


@pytest.mark.process
def test_check_config_errors_exit_2_without_echoing_secrets(tmp_path: Path) -> None:
    doc = base()
    doc["sink"]["credential"] = {"type": "static_token", "token": "very-secret-token"}
    doc["sink"]["endpoint"] = "ftp://nope"
    result = check_config(tmp_path, doc)
    assert result.returncode == 2
    assert "sink.endpoint: must be an https:// URL" in result.stderr
    assert "very-secret-token" not in result.stderr + result.stdout


def test_event_hubs_connection_string_settings() -> None:
    doc = base()
    doc["source"].update(
        bootstrap_servers=["ns.servicebus.windows.net:9093"],
        auth={"type": "connection_string", "connection_string": SECRET},
    )
    settings = consumer_settings(parse_config(doc).source)
    assert settings["security_protocol"] == "SASL_SSL" and settings["sasl_mechanism"] == "PLAIN"
    assert settings["sasl_plain_username"] == "$ConnectionString"
    assert settings["sasl_plain_password"] == SECRET
    assert settings["ssl_context"] is not None and settings["enable_auto_commit"] is False
    # Microsoft's recommended settings for the Event Hubs Kafka endpoint
    assert settings["metadata_max_age_ms"] == 180_000 and settings["connections_max_idle_ms"] == 180_000
    assert settings["request_timeout_ms"] == 60_000 and settings["session_timeout_ms"] == 30_000
    assert settings["max_poll_interval_ms"] == 300_000 and settings["heartbeat_interval_ms"] == 3_000


def test_event_hubs_entra_settings() -> None:
    doc = base()
    doc["source"].update(bootstrap_servers=["ns.servicebus.windows.net:9093"], auth={"type": "entra"})
    settings = consumer_settings(parse_config(doc).source)
    assert settings["security_protocol"] == "SASL_SSL" and settings["sasl_mechanism"] == "OAUTHBEARER"
    provider = settings["sasl_oauth_token_provider"]
    assert isinstance(provider, EntraTokenProvider)
    assert provider._scope == "https://ns.servicebus.windows.net/.default"


def test_plain_kafka_stays_plaintext() -> None:
    settings = consumer_settings(parse_config(base()).source)
    assert "security_protocol" not in settings and "ssl_context" not in settings
    assert "metadata_max_age_ms" not in settings
    assert settings["check_crcs"] is True


def test_crc_checks_can_be_turned_off_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base()))
    config = load_config(path, {"INGESTOR_SOURCE__CHECK_CRCS": "false"})
    assert consumer_settings(config.source)["check_crcs"] is False


def test_the_readme_configuration_example_is_valid(tmp_path: Path) -> None:
    reference = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    section = reference[reference.index("# Configuration\n") :]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = parse_config(yaml.safe_load(example))
    assert config.source.auth.type == "entra" and config.source.is_event_hubs
    assert config.routes()["DeviceNetworkEvents"].fallback.rule_id == "dcr-8e2d4b6a1c3f5e7d9b0a2c4e6f8d0b1a"
    assert config.validation.unknown_columns == "keep" and config.schemas.extra_columns == {}
    # It can run as it is: check-config neither refuses nor warns.
    path = tmp_path / "ingestor.yaml"
    path.write_text(example)
    checked = load_runnable(path, {})
    assert checked.warnings == [] and checked.config == config
