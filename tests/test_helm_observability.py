"""The chart's PrometheusRule and Grafana dashboard: what renders, what every alert carries, and that every metric
name the alerts and panels query is one a real ingestor exports (a real `/metrics` scrape after real traffic
through the broker and the HTTPS emulator).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from helmchart import CHART_DIR, NAMESPACE, RELEASE, manifests, of_kind
from realparts import EmulatorProcess, IngestorProcess, ingestor_config, produce, unique_names, wait_for

from ingestor.metrics import Metrics
from ingestor.tables import load_schemas
from ingestor_tools.generate import TrafficGenerator

ENABLED: dict[str, Any] = {"prometheusRule": {"enabled": True}, "grafanaDashboard": {"enabled": True}}
FULLNAME = f"{RELEASE}-ingestor"
DASHBOARD_FILE = CHART_DIR / "dashboards" / "ingestor.json"
METRIC = re.compile(r"\bingestor_[a-z_]+")
SELECTOR = re.compile(r"\b(ingestor_[a-z_]+)\s*(\{[^}]*\})?")
ALERTS = {
    "IngestorConsumerLagGrowing",
    "IngestorRowsDeadLettered",
    "IngestorSinkUnauthorized",
    "IngestorSourceUnauthorized",
    "IngestorSourceUnreachable",
    "IngestorSinkUnreachable",
    "IngestorThrottled",
    "IngestorNotReady",
    "IngestorDeadLetterWriteFailing",
}
PARTITIONS = 2


def chart_labels() -> dict[str, str]:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    return {
        "helm.sh/chart": f"{chart['name']}-{chart['version']}",
        "app.kubernetes.io/name": chart["name"],
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/version": str(chart["appVersion"]),
        "app.kubernetes.io/managed-by": "Helm",
    }


def prometheus_rule(values: dict[str, Any] | None = None) -> dict[str, Any]:
    (rule,) = of_kind(manifests(values or ENABLED), "PrometheusRule")
    return rule


def rules(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def dashboard_configmap(values: dict[str, Any] | None = None) -> dict[str, Any]:
    maps = [
        m for m in of_kind(manifests(values or ENABLED), "ConfigMap") if m["metadata"]["name"].endswith("-dashboard")
    ]
    assert len(maps) == 1, [m["metadata"]["name"] for m in maps]
    return maps[0]


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD_FILE.read_text()))


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def panel_expressions(board: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(board) for t in p.get("targets", [])]


def variable_queries(board: dict[str, Any]) -> list[str]:
    out = []
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]
            out.append(query["query"] if isinstance(query, dict) else query)
    return out


def alert_expressions() -> list[str]:
    return [r["expr"] for r in rules(prometheus_rule())]


# ---------------------------------------------------------------------------------------------------------------
# rendering


@pytest.mark.helm
def test_defaults_render_neither_the_rule_nor_the_dashboard() -> None:
    objects = manifests({})
    assert of_kind(objects, "PrometheusRule") == []
    assert [m for m in of_kind(objects, "ConfigMap") if m["metadata"]["name"].endswith("-dashboard")] == []


@pytest.mark.helm
def test_enabled_render_a_prometheus_rule_and_a_dashboard_configmap_with_chart_and_extra_labels() -> None:
    values = {
        "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus"}, "alertLabels": {"team": "soc"}},
        "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Security"}},
    }
    rule = prometheus_rule(values)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["name"] == FULLNAME
    assert rule["metadata"]["labels"].items() >= (chart_labels() | {"release": "kube-prometheus"}).items()
    assert all(r["labels"]["team"] == "soc" and r["labels"]["severity"] for r in rules(rule))

    configmap = dashboard_configmap(values)
    assert configmap["apiVersion"] == "v1"
    assert configmap["metadata"]["name"] == f"{FULLNAME}-dashboard"
    assert configmap["metadata"]["labels"].items() >= (chart_labels() | {"grafana_dashboard": "1"}).items()
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Security"}
    assert list(configmap["data"]) == ["ingestor.json"]
    assert json.loads(configmap["data"]["ingestor.json"]) == dashboard()  # shipped as is, not templated


@pytest.mark.helm
def test_alert_labels_from_values_win_over_the_alerts_own_severity() -> None:
    rule = prometheus_rule({"prometheusRule": {"enabled": True, "alertLabels": {"severity": "page"}}})
    assert {r["labels"]["severity"] for r in rules(rule)} == {"page"}


@pytest.mark.helm
def test_every_alert_has_for_severity_summary_and_description_and_prometheus_templates_survive_helm() -> None:
    alerts = rules(prometheus_rule())
    assert {a["alert"] for a in alerts} == ALERTS
    for alert in alerts:
        name = alert["alert"]
        assert re.fullmatch(r"\d+[smh]", alert.get("for", "")), name
        assert alert["labels"]["severity"] in {"warning", "critical"}, name
        assert len(alert["annotations"]["summary"]) > 20, name
        assert len(alert["annotations"]["description"]) > 100, name
        assert "{{" not in alert["expr"], name
    by_name = {a["alert"]: a for a in alerts}
    assert "{{ $labels.table }}" in by_name["IngestorRowsDeadLettered"]["annotations"]["summary"]
    assert "{{ $labels.pod }}" in by_name["IngestorNotReady"]["annotations"]["summary"]
    assert "> 100000" in by_name["IngestorConsumerLagGrowing"]["expr"]
    assert "deriv(" in by_name["IngestorConsumerLagGrowing"]["expr"]
    assert 'reason="throttled"' in by_name["IngestorThrottled"]["expr"]
    (lag,) = [
        r
        for r in rules(prometheus_rule({"prometheusRule": {"enabled": True, "lagMessages": 2_500_000}}))
        if r["alert"] == "IngestorConsumerLagGrowing"
    ]
    assert "> 2500000" in lag["expr"] and "2500000 messages" in lag["annotations"]["summary"]


@pytest.mark.helm
def test_every_alert_selector_is_scoped_to_this_releases_pods() -> None:
    pod_regex = f"{FULLNAME}-[0-9]+"  # StatefulSet pods
    for expr in alert_expressions():
        selectors = SELECTOR.findall(expr)
        assert selectors, expr
        for metric, braces in selectors:
            assert f'namespace="{NAMESPACE}"' in braces and f'pod=~"{pod_regex}"' in braces, (metric, expr)
    pod = re.compile(pod_regex)
    assert pod.fullmatch(f"{FULLNAME}-0") and pod.fullmatch(f"{FULLNAME}-12")
    assert not pod.fullmatch(f"{FULLNAME}-canary-0")  # another release whose name extends ours


def test_dashboard_has_the_variables_stable_unique_panel_ids_and_scoped_targets() -> None:
    board = dashboard()
    assert board["schemaVersion"] == 39 and board["uid"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {"namespace", "release", "pod"} <= set(variables)
    ids = [p["id"] for p in panels(board)]
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids))
    titles = " | ".join(p["title"] for p in panels(board))
    for word in ("accepted", "read", "Raw bytes", "Compressed", "Dead-lettered", "status class", "Upload latency"):
        assert word in titles, word
    for word in ("Ack latency", "lag", "Paused", "Retries", "waiting", "In-flight", "Ready and authorized"):
        assert word in titles, word
    for word in ("Values converted by table and rule", "skipped by category"):
        assert word in titles, word
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
            for metric, braces in SELECTOR.findall(target["expr"]):
                assert 'namespace="$namespace"' in braces and 'pod=~"$pod"' in braces, (panel["title"], metric)
    expressions = " ".join(panel_expressions(board))
    assert "histogram_quantile(0.99, sum by (le) (rate(ingestor_upload_duration_seconds_bucket" in expressions
    assert "sum by (topic, partition) (ingestor_consumer_lag_messages" in expressions


def table_labelled_metrics() -> set[str]:
    """Names, as PromQL selects them, of the ingestor's metrics that carry a `table` label (ingestor.metrics)."""
    names = set()
    for metric in vars(Metrics()).values():
        if "table" in getattr(metric, "_labelnames", ()):
            names.add(metric._name + ("_total" if metric._type == "counter" else ""))
    return names


def test_per_table_panels_show_every_table_through_one_table_variable_and_no_panel_is_one_tables() -> None:
    """22 tables: no panel per table; every per-table panel narrows with the `table` variable (multi-select,
    All), lists its series in a legend table sorted by value, and the crowded ones show only the top k."""
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    table = variables["table"]
    assert table["type"] == "query" and table["multi"] is True and table["includeAll"] is True
    assert table["allValue"] == ".*", "All matches tables that appear after the dashboard loaded, too"
    query = table["query"]["query"]
    assert query == table["definition"] and re.fullmatch(r"label_values\((ingestor_[a-z_]+)\{[^}]*\}, table\)", query)
    labelled = table_labelled_metrics()
    assert {"ingestor_read_events_total", "ingestor_accepted_events_total", "ingestor_raw_bytes_total"} <= labelled
    assert METRIC.search(query) and METRIC.search(query)[0] in labelled  # type: ignore[index]
    tables = sorted(load_schemas())
    assert len(tables) == 22
    per_table = []
    for panel in panels(board):
        text = json.dumps(panel)
        assert not [t for t in tables if re.search(rf"\b{t}(_CL)?\b", text)], f"panel {panel['title']!r} is one table's"
        for target in panel.get("targets", []):
            expr = target["expr"]
            assert not re.search(r'\btable\s*(=|!=|!~)\s*"', expr), (panel["title"], "a table matched by name")
            for metric, braces in SELECTOR.findall(expr):
                if metric in labelled:
                    assert 'table=~"$table"' in braces, (panel["title"], metric)
            if re.search(r"by \(table\b", expr):
                per_table.append((panel, expr))
                assert "{{table}}" in target["legendFormat"], panel["title"]
    assert len(per_table) >= 4
    for panel, expr in per_table:
        if panel["type"] == "timeseries":
            legend = panel["options"]["legend"]
            assert legend["displayMode"] == "table" and legend["showLegend"], panel["title"]
            assert legend["sortDesc"] is True and legend["sortBy"].lower() in {c.lower() for c in legend["calcs"]}, (
                panel["title"]
            )
        if "stacking" not in json.dumps(panel.get("fieldConfig", {})) or panel["type"] != "timeseries":
            assert re.match(r"(sort_desc\()?topk\([0-9]+,", expr), f"{panel['title']}: many series need a top k"
        if expr.startswith(("topk", "sort_desc(topk")):
            k = int(re.search(r"topk\(([0-9]+),", expr)[1])  # type: ignore[index]
            assert 5 <= k < len(tables) and f"top {k}" in panel["title"], panel["title"]


# ---------------------------------------------------------------------------------------------------------------
# metric names against a real scrape


def scraped_names(text: str) -> tuple[dict[str, str], set[str]]:
    """Families from `# TYPE` lines (name -> type) and the names of every sample, from exposition text."""
    families: dict[str, str] = {}
    samples: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            families[name] = kind
        elif line and not line.startswith("#"):
            samples.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return families, samples


def selectable(families: dict[str, str], samples: set[str]) -> set[str]:
    """Names a PromQL selector can return: sample names, and counter and gauge families (named as their samples,
    present even before a labelled child exists). A bare histogram family name selects nothing, so it does not
    count; its `_bucket`, `_sum` and `_count` samples do."""
    return samples | {name for name, kind in families.items() if kind in {"counter", "gauge"}}


@pytest.fixture(scope="module")
def scrape(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> str:
    """`/metrics` of a running ingestor once its generated traffic, invalid records included, is all committed."""
    tmp = tmp_path_factory.mktemp("observability")
    emulator = EmulatorProcess(tmp / "emulator")
    try:
        topic, group = unique_names()
        generator = TrafficGenerator(seed=23, invalid_rate=0.02, devices=20)
        messages = list(generator.messages(records=800, records_per_message=(1, 20)))
        assert generator.manifest.dead_letter_records > 0
        per_partition = produce(kafka_bootstrap, topic, messages, partitions=PARTITIONS)
        ingestor = IngestorProcess(tmp, ingestor_config(tmp, kafka_bootstrap, emulator, topic=topic, group=group))
        try:
            ingestor.wait_committed(topic, per_partition)
            wait_for(
                lambda: all(
                    (
                        ("ingestor_consumer_lag_messages", (("partition", str(p)), ("topic", topic)))
                        in ingestor.metrics()
                    )
                    for p in per_partition
                ),
                what="consumer lag reported for every partition",
            )
            status, text = ingestor.get("/metrics")
        finally:
            code = ingestor.terminate()
        assert code == 0, ingestor.log()[-3000:]
    finally:
        emulator.stop()
    assert status == 200
    return text


@pytest.mark.emulator
@pytest.mark.process
def test_the_scrape_is_real_and_has_the_series_the_alerts_depend_on(scrape: str) -> None:
    families, samples = scraped_names(scrape)
    assert families["ingestor_consumer_lag_messages"] == "gauge"
    assert families["ingestor_upload_duration_seconds"] == "histogram"
    for name in (
        "ingestor_accepted_events_total",
        "ingestor_dead_lettered_events_total",  # the traffic had invalid records
        "ingestor_consumer_lag_messages",
        "ingestor_upload_duration_seconds_bucket",
        "ingestor_ack_latency_seconds_bucket",
        "ingestor_ready",
        "ingestor_sink_authorized",
        "ingestor_sink_reachable",
        "ingestor_source_authorized",
        "ingestor_source_reachable",
    ):
        assert name in samples, name


@pytest.mark.emulator
@pytest.mark.helm
@pytest.mark.process
def test_every_metric_name_the_alerts_and_panels_query_exists_in_a_real_scrape(scrape: str) -> None:
    board = dashboard()
    sources = {
        "alert": alert_expressions(),
        "panel": panel_expressions(board),
        "variable": variable_queries(board),
    }
    used: dict[str, set[str]] = {}
    for source, expressions in sources.items():
        for expr in expressions:
            for name in METRIC.findall(expr):
                used.setdefault(name, set()).add(source)
    assert used
    assert "alert" in used["ingestor_consumer_lag_messages"] and "panel" in used["ingestor_consumer_lag_messages"]
    assert "alert" in used["ingestor_dead_lettered_events_total"]
    assert "panel" in used["ingestor_upload_duration_seconds_bucket"]
    known = selectable(*scraped_names(scrape))
    assert {name: sorted(where) for name, where in used.items() if name not in known} == {}


@pytest.mark.emulator
@pytest.mark.process
def test_a_misnamed_metric_would_be_caught(scrape: str) -> None:
    known = selectable(*scraped_names(scrape))
    assert "ingestor_retries_total" in known and "ingestor_retries" not in known  # counters need `_total`
    assert "ingestor_upload_duration_seconds_bucket" in known
    assert "ingestor_upload_duration_seconds" not in known  # a histogram is queried through its samples


def test_dashboard_file_is_plain_readable_json() -> None:
    text = DASHBOARD_FILE.read_text()
    assert text == json.dumps(json.loads(text), indent=2) + "\n"
