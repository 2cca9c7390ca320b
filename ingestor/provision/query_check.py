"""`ingestor provision --check-queries DIR`: which of a SOC's own queries would break against the workspace the
configuration provisions, and why.

Reads `.kql`/`.txt` files (one query each), Sentinel analytics-rule and hunting-query YAML (`query:`) and ARM or
API exports of analytics rules (JSON: every `properties.query`). Each query is analyzed by Kusto.Language
(`provision.kql`) twice: against the native Defender tables and against the provisioned tables and functions. It
breaks when the second reports an error the first does not; a query that fails against the native tables too
(another table, a Sentinel function, a syntax error) cannot be checked, and is listed as such. `needs` then checks
what each query needs of the configuration (its tables ingested; plan, kept columns, interactive retention),
finding the tables and columns it reads by a token scan of its text (comments and string literals stripped), not
the analyzer.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import yaml

from ingestor.config import Config
from ingestor.errors import ConfigError
from ingestor.provision.kql import Analyzer, Database, Diagnostic, native_database
from ingestor.retention import RetentionClass
from ingestor.tables import load_schemas

QUERY_SUFFIXES = (".kql", ".txt")
RULE_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Query:
    """One query found under the directory: its file, its name within the file (a rule's), and its text."""

    path: Path
    name: str
    text: str
    kind: Literal["scheduled", "nrt", "hunting", "query"] = "query"
    period: str | None = None  # a rule's queryPeriod, as written

    @property
    def where(self) -> str:
        return f"{self.path}" + (f" ({self.name})" if self.name else "")


@dataclass(frozen=True)
class Verdict:
    query: Query
    outcome: Literal["ok", "breaks", "unchecked"]
    errors: list[Diagnostic]  # breaks: what only the provisioned workspace reports; unchecked: the native errors


def read_queries(directory: Path) -> list[Query]:
    """Every query in the files under `directory`, in path order; ConfigError for a rule file that is not YAML/JSON."""
    if not directory.is_dir():
        raise ConfigError([f"--check-queries {directory}: not a directory"])
    found: list[Query] = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        suffix = path.suffix.lower()
        if suffix in QUERY_SUFFIXES:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeError) as exc:
                raise ConfigError([f"{path}: cannot read it as UTF-8 text ({exc})"]) from exc
            if text.strip():
                found.append(Query(path, "", text))
        elif suffix in RULE_SUFFIXES:
            found.extend(_rule_queries(path))
    return found


def _rule_queries(path: Path) -> Iterator[Query]:
    try:
        text = path.read_text(encoding="utf-8")
        doc = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError([f"{path}: cannot read it as {path.suffix[1:].upper()} ({exc})"]) from exc
    for name, query, kind, period in _queries_in(doc):
        yield Query(path, name, query, kind, period)


def _queries_in(node: Any) -> Iterator[tuple[str, str, Any, str | None]]:
    """`query` of a rule document (YAML: at the top; ARM/API JSON: under each `properties`), named by the rule, with
    its kind (`kind` Scheduled/NRT, or scheduling keys: a scheduled rule; else a hunting query) and queryPeriod."""
    if isinstance(node, list):
        for item in node:
            yield from _queries_in(item)
    elif isinstance(node, dict):
        properties = node.get("properties")
        holder = properties if isinstance(properties, dict) and isinstance(properties.get("query"), str) else node
        query = holder.get("query")
        if isinstance(query, str) and query.strip():
            name = str(holder.get("displayName") or holder.get("name") or node.get("name") or "")
            kind = str(node.get("kind") or holder.get("kind") or "").lower()
            if kind not in ("scheduled", "nrt"):
                scheduling = ("queryFrequency", "queryPeriod", "triggerOperator")
                kind = "scheduled" if any(k in holder for k in scheduling) else "hunting"
            period = holder.get("queryPeriod")
            yield name, query, kind, str(period) if period is not None else None
            return
        for value in node.values():
            if isinstance(value, (dict, list)):
                yield from _queries_in(value)


def check(queries: list[Query], provisioned: Database, analyzer: Analyzer) -> list[Verdict]:
    texts = [q.text for q in queries]
    native = analyzer.analyze(native_database(), texts)
    ours = analyzer.analyze(provisioned, texts)
    verdicts = []
    for query, native_errors, our_errors in zip(queries, native, ours, strict=True):
        extra = Counter(_key(d) for d in our_errors) - Counter(_key(d) for d in native_errors)
        if extra:
            verdicts.append(Verdict(query, "breaks", [d for d in our_errors if _key(d) in extra]))
        elif native_errors:
            verdicts.append(Verdict(query, "unchecked", native_errors))
        else:
            verdicts.append(Verdict(query, "ok", []))
    return verdicts


def _key(diagnostic: Diagnostic) -> tuple[str, str]:
    return diagnostic.code, diagnostic.message


def report(verdicts: list[Verdict], out: TextIO) -> int:
    """Print the breaking and unchecked queries and a summary; 1 when any query would break, else 0."""
    for verdict in verdicts:
        if verdict.outcome == "ok":
            continue
        label = "BREAKS" if verdict.outcome == "breaks" else "UNCHECKED (fails against the native tables too)"
        print(f"{label}: {verdict.query.where}", file=out)
        for error in verdict.errors:
            print(f"    {_position(verdict.query.text, error.start)}: {error.message}", file=out)
    counts = Counter(v.outcome for v in verdicts)
    print(
        f"{len(verdicts)} queries checked against the workspace this configuration provisions: "
        f"{counts['breaks']} would break, {counts['unchecked']} could not be checked, {counts['ok']} compile",
        file=out,
    )
    return 1 if counts["breaks"] else 0


def _position(text: str, offset: int) -> str:
    before = text[:offset]
    return f"line {before.count(chr(10)) + 1}, column {offset - (before.rfind(chr(10)) + 1) + 1}"


# Sentinel scheduled and NRT analytics rules query Analytics tables only; Basic and Auxiliary tables serve search
# and interactive queries (https://learn.microsoft.com/azure/azure-monitor/logs/data-platform-logs#table-plans).
_STRIPPED = re.compile(r"//[^\n]*|@?'(?:[^'\\\n]|\\.)*'|@?\"(?:[^\"\\\n]|\\.)*\"")
_NAME = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")
_AGO = re.compile(r"\bago\s*\(\s*(\d+(?:\.\d+)?)\s*(d|h|m|s|ms)\s*\)")
_SHORT = re.compile(r"^(\d+)\s*([dhms])$")
_ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def window_days(query: Query) -> float | None:
    """The longest time a query reads back, in days: its queryPeriod and its largest `ago(<literal>)`."""
    spans = [float(n) * _SECONDS[unit] for n, unit in _AGO.findall(_STRIPPED.sub(" ", query.text))]
    if query.period:
        period = query.period.strip()
        if short := _SHORT.match(period):
            spans.append(int(short[1]) * _SECONDS[short[2]])
        elif (iso := _ISO.match(period.upper())) and any(iso.groups()):
            d, h, m, sec = (int(g or 0) for g in iso.groups())
            spans.append(d * 86400.0 + h * 3600 + m * 60 + sec)
    return max(spans) / 86400 if spans else None


def queryable_days(cls: RetentionClass, name: str) -> tuple[int | None, str]:
    """How far back a query of the class's rows reaches (None: the workspace default) and what lengthens it: the
    interactive retention on Analytics and Basic (fixed at 30 days), the total retention on Auxiliary."""
    if cls.plan == "Auxiliary":
        return cls.total_retention_days, f"raise total_retention_days of class {name}"
    if cls.plan == "Basic":
        return cls.interactive_days, f"give class {name} plan Analytics"
    return cls.interactive_days, f"raise retention_days of class {name}"


def needs(queries: list[Query], config: Config) -> list[str]:
    """What each query needs of the configuration and does not get: one finding (a short block) each. A table the
    configuration does not ingest (`schemas.tables`) gets no workspace function, so a query reading it breaks."""
    schemas = load_schemas()
    routes = config.routes()
    retention = config.retention
    findings: list[str] = []
    for query in queries:
        names = set(_NAME.findall(_STRIPPED.sub(" ", query.text)))
        window = window_days(query)
        findings.extend(
            f"{query.where}: {table} is not ingested (not in schemas.tables): no rows, no workspace function.\n"
            f"    fix: add {table} to schemas.tables"
            for table in sorted(names & set(schemas) - set(routes))
        )
        for table in sorted(names & set(routes)):
            for destination in routes[table].destinations:
                name = destination.retention_tag
                cls = retention.classes[name]
                where = f"{query.where}: {table}, class {name} (plan {cls.plan})"
                if query.kind in ("scheduled", "nrt") and cls.plan != "Analytics":
                    rule = next(
                        (f"retention.rules[{i}]" for i, r in enumerate(retention.rules)
                         if r.class_ == name and (not r.tables or table in r.tables)),
                        f"retention.default_class {name}",
                    )  # fmt: skip
                    kind = "an NRT" if query.kind == "nrt" else "a scheduled"
                    plan = f"an {cls.plan}" if cls.plan[0] in "AEIOU" else f"a {cls.plan}"
                    findings.append(
                        f"{where}: {kind} rule cannot query {plan} table; {rule} sends rows there.\n    fix: keep the "
                        f"rows the rule needs in an Analytics class (a retention rule before {rule}), or give class "
                        f"{name} plan Analytics"
                    )
                for column in sorted(names & set(destination.dropped_columns)):
                    settings = retention.destinations[table][name]
                    key = "drop_columns" if settings.drop_columns is not None else "keep_columns"
                    action = "remove it from" if key == "drop_columns" else "add it to"
                    findings.append(
                        f"{where}: column {column} is always null for rows of class {name}.\n    fix: keep it: "
                        f"{action} retention.destinations.{table}.{name}.{key}"
                    )
                days, lengthen = queryable_days(cls, name)
                if window is not None and days is not None and window > days:
                    findings.append(
                        f"{where}: the query reads {window:g} days back, class {name} keeps {days} days "
                        f"queryable.\n    fix: shorten the window, {lengthen}, or use a search job"
                    )
    return findings


def report_findings(findings: list[str], out: TextIO) -> int:
    """Print the findings of `needs` and their count; 1 when there is any, else 0."""
    for finding in findings:
        print(f"NEEDS: {finding}", file=out)
    noun = "finding" if len(findings) == 1 else "findings"
    print(f"{len(findings)} {noun} on what the queries need of the configuration", file=out)
    return 1 if findings else 0
