"""The KQL hunting-query corpus in tests/kql/queries: well-formed files that together use every native column of
every table the schemas hold (the ten Device tables, and the alert, mail, identity, cloud-app and URL-click tables).

A column counts as used when it appears as a whole word in the body of a query that also names its table.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ingestor.tables import load_schemas

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ROOT / "tests" / "kql" / "queries"
NATIVE_ORIGINS = {"stream", "table"}
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MIN_FILES = 150
MIN_QUERIES_PER_TABLE = 12


def native_columns() -> dict[str, list[str]]:
    """Table name -> columns that exist in the native Defender/Sentinel table (not the ones this project adds)."""
    tables: dict[str, list[str]] = {}
    for path in sorted((ROOT / "schemas").glob("*.json")):
        schema = json.loads(path.read_text())
        tables[schema["table"]] = [c["name"] for c in schema["columns"] if c["origin"] in NATIVE_ORIGINS]
    return tables


def query_files() -> list[Path]:
    return sorted(QUERIES.rglob("*.kql"))


def body(path: Path) -> str:
    """The query text after the first line, without whole-line comments."""
    lines = path.read_text().splitlines()[1:]
    return "\n".join(line for line in lines if not line.lstrip().startswith("//"))


def words(path: Path) -> set[str]:
    return set(WORD.findall(body(path)))


TABLES = native_columns()
FILES = query_files()
WORDS = {path: words(path) for path in FILES}


def test_every_schema_is_loaded() -> None:
    assert sorted(TABLES) == sorted(load_schemas()) and len(TABLES) >= 22
    assert all(TABLES.values())


def test_corpus_size() -> None:
    assert len(FILES) >= MIN_FILES, f"only {len(FILES)} query files under {QUERIES}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(QUERIES)))
def test_file_is_a_commented_query_on_a_defender_table(path: Path) -> None:
    lines = path.read_text().splitlines()
    assert lines, "empty file"
    assert lines[0].startswith("//") and lines[0][2:].strip(), "first line must be a // comment saying what it hunts"
    assert body(path).strip(), "no query body after the comment"
    assert WORDS[path] & set(TABLES), "query names none of the Defender tables"


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_native_column_is_used(table: str) -> None:
    naming = [WORDS[path] for path in FILES if table in WORDS[path]]
    assert len(naming) >= MIN_QUERIES_PER_TABLE, f"only {len(naming)} queries name {table}"
    unused = [column for column in TABLES[table] if not any(column in tokens for tokens in naming)]
    assert not unused, f"{table} columns used by no query that names the table: {unused}"
