"""`ingestor provision --check-queries DIR`: which of a SOC's own queries would break against the workspace the
configuration provisions, and why.

Reads `.kql`/`.txt` files (one query each), Sentinel analytics-rule and hunting-query YAML (`query:`) and ARM or
API exports of analytics rules (JSON: every `properties.query`). Each query is analyzed by Kusto.Language
(`ingestor.kql`) twice: against the native Defender tables and against the provisioned tables and functions. It
breaks when the second reports an error the first does not; a query that fails against the native tables too
(another table, a Sentinel function, a syntax error) cannot be checked, and is listed as such.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import yaml

from ingestor.errors import ConfigError
from ingestor.kql import Analyzer, Database, Diagnostic, native_database

QUERY_SUFFIXES = (".kql", ".txt")
RULE_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Query:
    """One query found under the directory: its file, its name within the file (a rule's), and its text."""

    path: Path
    name: str
    text: str

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
    for name, query in _queries_in(doc):
        yield Query(path, name, query)


def _queries_in(node: Any) -> Iterator[tuple[str, str]]:
    """`query` of a rule document (YAML: at the top; ARM/API JSON: under each `properties`), named by the rule."""
    if isinstance(node, list):
        for item in node:
            yield from _queries_in(item)
    elif isinstance(node, dict):
        properties = node.get("properties")
        holder = properties if isinstance(properties, dict) and isinstance(properties.get("query"), str) else node
        query = holder.get("query")
        if isinstance(query, str) and query.strip():
            yield str(holder.get("displayName") or holder.get("name") or node.get("name") or ""), query
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
