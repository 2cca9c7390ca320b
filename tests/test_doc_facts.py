"""What the docs state equals its source: every benchmark figure quoted equals the one in the results file named
beside it (`benchmarks/results/latest.json` unless the text names another), the configuration reference lists every
key of the models with its default, and the alerts table is the chart's PrometheusRule.

A quote is a number as the docs print it (`31,693`, `11.15`, `74%`, `778 KB`): it must equal the results file's
figure rounded to the digits shown, so a stale quote fails once `make bench` rewrites `latest.json`.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from docblocks import Table, tables
from helmchart import manifests, of_kind
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ingestor.config import Config, EventHubsSourceConfig, KafkaSourceConfig

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
LATEST = "latest.json"
README = ROOT / "README.md"
PERFORMANCE = ROOT / "docs" / "performance.md"
DEPLOYMENT = ROOT / "docs" / "deployment.md"
SCALING = ROOT / "benchmarks" / "SCALING.md"
CONFIGURATION = ROOT / "docs" / "configuration.md"
OPERATIONS = ROOT / "docs" / "operations.md"
LOADED = "bench-20261207T122814Z.json"  # a run on a shared machine, quoted beside a quiet one of the same day
QUIET = "bench-20261207T144635Z.json"
MIXED, DEVICE_ONLY = "bench-20261207T210407Z.json", "bench-20261207T205727Z.json"  # one machine, one day
PROFILE = "bench-20261123T182557Z.json"
OUTAGE = "outage-20261123T173103Z.json"

# A figure: (results file, path of keys in it, factor from the file's unit to the one the docs print), or a function
# of figures (a difference the docs state in percent).
Figure = tuple[str, tuple[str, ...], float] | Callable[[], float]


def fig(*path: str, file: str = LATEST, scale: float = 1.0) -> Figure:
    return file, path, scale


def more(than: Figure, other: Figure) -> Figure:
    """How much more `other` is than `than`, in percent."""
    return lambda: (figure(other) / figure(than) - 1) * PERCENT


PERCENT, KB = 100.0, 1 / 1000
LOADED_RE, LATEST_RE, PROFILE_RE, OUTAGE_RE, QUIET_RE, MIXED_RE, DEVICE_ONLY_RE = (
    re.escape(name) for name in (LOADED, LATEST, PROFILE, OUTAGE, QUIET, MIXED, DEVICE_ONLY)
)
STAGES = (
    "decode + validate",
    "compress (gzip)",
    "shape + encode",
    "other (event loop, startup)",
    "kafka fetch",
    "batch + delivery",
    "https upload",
    "metrics",
)
OUTAGE_KEYS = (
    "rss_mib_at_start",
    "inflight_mib_during_outage",
    "peak_rss_mib_during_outage",
    "peak_rss_mib_catching_up",
    "catch_up_secs",
)
# Each quote: the doc, a pattern over its text (whitespace collapsed to single spaces) with one group per figure.
QUOTES: list[tuple[Path, str, list[Figure]]] = [
    (README, r"one process does ([\d,]+) events per CPU second \(([\d.]+) CPU seconds per GB of raw JSON\), "
             r"([\d.]+) times as many as a hand-written SDK pipeline, with a peak RSS of ([\d.]+) MiB",
     [fig("ingestor", "events_per_cpu_sec"), fig("ingestor", "cpu_secs_per_gb"),
      fig("ratios", "events_per_cpu_sec_vs_baseline"), fig("ingestor", "peak_rss_mib")]),
    (PERFORMANCE, r"does ([\d.]+) times the baseline's events per CPU second, with ([\d.]+) times fewer requests",
     [fig("ratios", "events_per_cpu_sec_vs_baseline"), fig("ratios", "requests_vs_baseline")]),
    (PERFORMANCE, r"Its requests carry (\d+)% of the 1 MiB limit on average, the SDK's (\d+)%",
     [fig("ingestor", "mean_request_share_of_limit", scale=PERCENT),
      fig("baseline", "mean_request_share_of_limit", scale=PERCENT)]),
    (PERFORMANCE, r"Here the ingestor got ([\d.]+) cores \(`cores`; the broker and the emulator beside it ([\d.]+)\)",
     [fig("ingestor", "ingestor_cores"), fig("ingestor", "broker_emulator_cores")]),
    (PERFORMANCE, r"the mixed input cost ([\d,]+) events per CPU second and ([\d.]+) CPU seconds per GB "
                  rf"\(`{MIXED_RE}`\), Device-only input ([\d,]+) and ([\d.]+) \(`{DEVICE_ONLY_RE}`\): (\d+)% more CPU "
                  r"per GB, with smaller requests \((\d+) KB against (\d+) KB",
     [fig("ingestor", "events_per_cpu_sec", file=MIXED), fig("ingestor", "cpu_secs_per_gb", file=MIXED),
      fig("ingestor", "events_per_cpu_sec", file=DEVICE_ONLY), fig("ingestor", "cpu_secs_per_gb", file=DEVICE_ONLY),
      more(fig("ingestor", "cpu_secs_per_gb", file=DEVICE_ONLY), fig("ingestor", "cpu_secs_per_gb", file=MIXED)),
      fig("ingestor", "mean_request_bytes", file=MIXED, scale=KB),
      fig("ingestor", "mean_request_bytes", file=DEVICE_ONLY, scale=KB)]),
    (PERFORMANCE, r"Device-only input costs what it cost before the other tables came: ([\d,]+) against ([\d,]+) "
                  r"events per CPU second at fa446b4",
     [fig("ingestor", "events_per_cpu_sec", file=DEVICE_ONLY),
      fig("ingestor@fa446b4", "events_per_cpu_sec", file=DEVICE_ONLY)]),
    (PERFORMANCE, rf"\(`{LOADED_RE}`\), with two test suites sharing the machine \(load 3.18\), got ([\d.]+) "
                  r"cores and moved ([\d,]+) events/s at ([\d,]+) events per CPU second, against ([\d,]+) events/s "
                  rf"at ([\d,]+) for the same Device-only input with the machine to itself that day \(`{QUIET_RE}`",
     [fig("ingestor", "ingestor_cores", file=LOADED), fig("ingestor", "events_per_sec", file=LOADED),
      fig("ingestor", "events_per_cpu_sec", file=LOADED), fig("ingestor", "events_per_sec", file=QUIET),
      fig("ingestor", "events_per_cpu_sec", file=QUIET)]),
    (PERFORMANCE, r"two workers of `ingestor x2` got ([\d.]+) cores between them",
     [fig("ingestor x2", "ingestor_cores")]),
    (PERFORMANCE, r"in those two runs, requests carried (\d+)% of the limit at ([\d,]+) events/s and (\d+)% at "
                  r"([\d,]+) events/s",
     [fig("ingestor", "mean_request_share_of_limit", file=QUIET, scale=PERCENT),
      fig("ingestor", "events_per_sec", file=QUIET),
      fig("ingestor", "mean_request_share_of_limit", file=LOADED, scale=PERCENT),
      fig("ingestor", "events_per_sec", file=LOADED)]),
    (PERFORMANCE, r"half the ingestor's rate \(([\d,]+) events/s, default `linger_secs` 2 s\): "
                  r"p50 ([\d.]+) s, p99 ([\d.]+) s",
     [fig("latency", "rate_records"), fig("latency", "p50"), fig("latency", "p99")]),
    (PERFORMANCE, rf"`{PROFILE_RE}`, commit 1f3d0ce, on Device-only input\): decode and validate (\d+)%, "
                  r"gzip (\d+)% \(in worker threads\), "
                  r"shaping and encoding rows (\d+)%, event loop and start-up (\d+)%, Kafka fetch (\d+)% \(.*?\), "
                  r"batching and delivery (\d+)%, HTTPS (\d+)%, metrics (\d+)%",
     [fig("profile", stage, file=PROFILE, scale=PERCENT) for stage in STAGES]),
    (PERFORMANCE, r"RSS ([\d.]+) MiB at start, (\d+) MiB of rows held, peak RSS (\d+) MiB during the outage and "
                  rf"(\d+) MiB while catching up, .*? committed in (\d+) s, .*?`benchmarks/results/{OUTAGE_RE}`",
     [fig(key, file=OUTAGE) for key in OUTAGE_KEYS]),
    (DEPLOYMENT, rf"\| throughput \| ([\d,]+) events/s, ([\d.]+) MB/s raw, on ([\d.]+) core \(`{LATEST_RE}`",
     [fig("ingestor", "events_per_sec"), fig("ingestor", "raw_mb_per_sec"),
      fig("ingestor", "ingestor_cores")]),
    (DEPLOYMENT, r"\| CPU \| ([\d.]+) CPU seconds per GB raw \(([\d,]+) events per CPU second\)",
     [fig("ingestor", "cpu_secs_per_gb"), fig("ingestor", "events_per_cpu_sec")]),
    (DEPLOYMENT, r"(\d+) MiB peak at the default", [fig("ingestor", "peak_rss_mib")]),
    (DEPLOYMENT, rf"\| requests \| (\d+) per GB raw, each about (\d+) KB compressed, at that rate \(`{LATEST_RE}`",
     [fig("ingestor", "requests_per_gb"), fig("ingestor", "mean_request_bytes", scale=KB)]),
    (DEPLOYMENT, r"p50 ([\d.]+) s, p99 ([\d.]+) s \(`linger_secs` 2\)",
     [fig("latency", "p50"), fig("latency", "p99")]),
    (DEPLOYMENT, r"\| cores \| peak GB/s \u00d7 ([\d.]+) \|", [fig("ingestor", "cpu_secs_per_gb")]),
    (SCALING, r"\| Ingestor CPU \| ([\d.]+) CPU seconds per GB raw, ([\d,]+) events per CPU second",
     [fig("ingestor", "cpu_secs_per_gb"), fig("ingestor", "events_per_cpu_sec")]),
    (SCALING, r"\| Ingestor rate, one process \| ([\d,]+) events/s, ([\d.]+) MB/s, using ([\d.]+) core "
              rf"\| `results/{LATEST_RE}",
     [fig("ingestor", "events_per_sec"), fig("ingestor", "raw_mb_per_sec"),
      fig("ingestor", "ingestor_cores")]),
    (SCALING, r"\| Requests \| (\d+) per GB raw, about (\d+) KB each",
     [fig("ingestor", "requests_per_gb"), fig("ingestor", "mean_request_bytes", scale=KB)]),
    (SCALING, r"\| Memory \| (\d+) MiB peak", [fig("ingestor", "peak_rss_mib")]),
    (SCALING, r"1,000 GB/day x ([\d.]+) CPU s/GB", [fig("ingestor", "cpu_secs_per_gb")]),
    (SCALING, r"hand-written SDK pipeline \(([\d.]+) CPU s/GB\)", [fig("baseline", "cpu_secs_per_gb")]),
    (SCALING, r"Requests: (\d+) per GB raw gives", [fig("ingestor", "requests_per_gb")]),
    (SCALING, r"chunking would need ([\d,]+) per GB", [fig("baseline", "requests_per_gb")]),
]  # fmt: skip
# The columns of the performance table: (figure's key, factor to the unit printed).
COLUMNS = {
    "events/s": ("events_per_sec", 1.0),
    "raw MB/s": ("raw_mb_per_sec", 1.0),
    "events per CPU second": ("events_per_cpu_sec", 1.0),
    "CPU s per GB": ("cpu_secs_per_gb", 1.0),
    "requests per GB": ("requests_per_gb", 1.0),
    "mean request": ("mean_request_bytes", KB),
    "peak RSS": ("peak_rss_mib", 1.0),
    "cores": ("ingestor_cores", 1.0),
}


def results(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RESULTS / name).read_text())
    return data


def flat(path: Path) -> str:
    return " ".join(path.read_text(encoding="utf-8").split())


def figure(figure: Figure) -> float:
    if callable(figure):
        return figure()
    file, keys, scale = figure
    value: Any = results(file)
    for key in keys:
        value = value[key]
    return float(value) * scale


def mismatch(shown: str, value: float) -> str:
    """'' when the number as printed (`31,693`, `0.37`, `778 KB`) is `value` rounded to the digits shown."""
    number = re.search(r"\d[\d,]*(\.\d+)?", shown)
    assert number, f"no number in {shown!r}"
    digits = len(number.group(1) or ".") - 1
    quoted = float(number.group(0).replace(",", ""))
    return "" if abs(quoted - value) <= 0.5 * 10**-digits + 1e-9 else f"{shown} (the results say {value:g})"


@pytest.mark.parametrize(("doc", "pattern", "figures"), QUOTES, ids=lambda q: getattr(q, "name", None))
def test_every_quoted_figure_is_the_results_files(doc: Path, pattern: str, figures: list[Figure]) -> None:
    found = re.search(pattern, flat(doc))
    assert found, f"{doc.relative_to(ROOT)} no longer says {pattern!r}: quote the figure again or change the test"
    wrong = [m for shown, f in zip(found.groups(), figures, strict=True) if (m := mismatch(shown, figure(f)))]
    assert not wrong, f"{doc.relative_to(ROOT)} quotes stale figures: {wrong}"


def measured_table() -> Table:
    (table,) = [t for t in tables(PERFORMANCE) if t.headings[-1:] == ("Measured",)]
    return table


def test_the_performance_table_is_latest_json() -> None:
    table, latest = measured_table(), results(LATEST)
    columns = [COLUMNS[name] for name in table.header[1:]]
    assert {row[0] for row in table.rows} >= {"floor", "ingestor", "baseline"}, table.where()
    wrong = []
    for label, *cells in table.rows:
        assert label in latest, f"{table.where()}: row {label!r} is no pipeline of {LATEST}"
        for (key, scale), cell in zip(columns, cells, strict=True):
            value = latest[label].get(key)
            if value is None or cell == "-":
                wrong += [] if (value is None) == (cell == "-") else [f"{label} {key}: {cell} (results: {value})"]
            elif problem := mismatch(cell, value * scale):
                wrong.append(f"{label} {key}: {problem}")
    assert not wrong, f"{table.where()} is not {LATEST}: {wrong}"


def test_each_before_and_after_is_its_results_files_and_within_noise() -> None:
    (table,) = [t for t in tables(PERFORMANCE) if t.header[:4] == ("Change", "This commit", "Before", "Results")]
    assert table.rows, table.where()
    for change, this, before, named in table.rows:
        run = results(named.strip("`"))
        quoted = re.fullmatch(r"([\d,]+) at ([0-9a-f]{7,})", before)
        assert quoted, f"{table.where()}: {before!r} is no `events at commit`"
        now, then = (run[name]["events_per_cpu_sec"] for name in ("ingestor", f"ingestor@{quoted.group(2)}"))
        wrong = [m for m in (mismatch(this, now), mismatch(quoted.group(1), then)) if m]
        assert not wrong, f"{table.where()}: {change}: {wrong}"
        assert abs(now / then - 1) < 0.05, f"{change}: {now} against {then} is more than noise"


@pytest.mark.parametrize("doc", [README, PERFORMANCE])
def test_the_figures_name_their_results_file_with_its_date_commit_and_machine(doc: Path) -> None:
    latest, text = results(LATEST), flat(doc)
    date, commit, machine = latest["time"][:10], latest["commit"], latest["machine"]
    assert f"`benchmarks/results/{LATEST}`" in text
    assert re.search(rf"{date}\W+(at )?commit {re.escape(commit)}", text), f"{doc.name} must name {date}, {commit}"
    assert f"{machine['cores']} cores {machine['cpu']}" in text
    if doc == PERFORMANCE:
        assert f"Python {machine['python']}" in text and f"load {machine['load_average_1m_at_start']}" in text


def test_the_results_file_says_when_where_and_what_was_measured() -> None:
    latest = results(LATEST)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", latest["time"])
    assert re.fullmatch(r"[0-9a-f]{7,}(\+dirty)?", latest["commit"])
    assert {"cores", "cpu", "python"} <= latest["machine"].keys()
    twins = [p.name for p in RESULTS.glob("bench-*.json") if json.loads(p.read_text()) == latest]
    assert len(twins) == 1, f"latest.json must be a copy of one run's bench-<time>.json, not of {twins}"


# -- the configuration reference ---------------------------------------------------------------------------------


def _model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def model_keys(model: type[BaseModel], prefix: str) -> dict[str, FieldInfo]:
    """Every key a configuration can set under `prefix`, `<>` standing for a mapping's key (a table, a class)."""
    keys: dict[str, FieldInfo] = {}
    for name, field in model.model_fields.items():
        path = f"{prefix}.{field.alias or name}" if prefix else field.alias or name
        args = typing.get_args(field.annotation)
        if inner := _model(field.annotation):
            keys |= model_keys(inner, path)
        elif typing.get_origin(field.annotation) is dict and (value := _model(args[1])):
            keys |= model_keys(value, f"{path}.<>")
        else:
            keys[path] = field
    return keys


def documented_keys(source_type: str | None) -> dict[str, str]:
    """Key -> default cell of the tables under "Every key": the source's type's, or all but the source's."""
    rows: dict[str, str] = {}
    for table in tables(CONFIGURATION):
        if "Every key" not in table.headings or table.header[:2] != ("Key", "Default"):
            continue
        sourced = re.search(r"`type: (\w+)`", table.headings[-1])
        if (sourced.group(1) if sourced else None) != source_type:
            continue
        for key, default, *_ in table.rows:
            rows[re.sub(r"<\w+>", "<>", key.strip("`"))] = default
    return rows


def default_matches(cell: str, field: FieldInfo) -> bool:
    if field.default is PydanticUndefined:
        return cell == "*required*"
    if field.default is None:
        return cell == "*unset*"
    literal = re.match(r"`([^`]*)`", cell)
    return literal is not None and yaml.safe_load(literal.group(1)) == field.default


@pytest.mark.parametrize(
    ("source_type", "keys"),
    [
        ("kafka", model_keys(KafkaSourceConfig, "source")),
        ("eventhubs", model_keys(EventHubsSourceConfig, "source")),
        (None, {k: f for k, f in model_keys(Config, "").items() if not k.startswith("source")}),
    ],
    ids=["source kafka", "source eventhubs", "the other sections"],
)
def test_the_configuration_reference_lists_every_key_with_its_default(
    source_type: str | None, keys: dict[str, FieldInfo]
) -> None:
    documented = documented_keys(source_type)
    assert documented.keys() == keys.keys(), (
        f"missing from docs/configuration.md: {sorted(keys.keys() - documented.keys())}; "
        f"no such key: {sorted(documented.keys() - keys.keys())}"
    )
    wrong = {k: (documented[k], f.default) for k, f in keys.items() if not default_matches(documented[k], f)}
    assert not wrong, f"docs/configuration.md states other defaults than the models: {wrong}"


# -- the alerts ----------------------------------------------------------------------------------------------------


@pytest.mark.helm
def test_the_alerts_table_is_the_charts_prometheus_rule() -> None:
    (rule,) = of_kind(manifests({"prometheusRule": {"enabled": True}}), "PrometheusRule")
    chart = {
        alert["alert"]: (alert["labels"]["severity"], alert["for"])
        for group in rule["spec"]["groups"]
        for alert in group["rules"]
    }
    (table,) = [t for t in tables(OPERATIONS) if t.headings[-1:] == ("Alerts",)]
    assert table.header[:3] == ("Alert", "Severity", "For"), table.where()
    documented = {name.strip("`"): (severity, duration) for name, severity, duration, *_ in table.rows}
    assert documented == chart, table.where()
