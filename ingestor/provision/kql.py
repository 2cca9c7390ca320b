"""KQL queries checked by Microsoft's own analyzer, Kusto.Language (npm `@kusto/language-service-next`, run by Node.js).

`Analyzer().analyze(database, queries)` returns each query's error diagnostics against `database`: the workspace an
ARM template from `ingestor provision` creates (`database_from_template`) or the native Defender tables
(`native_database`). Needs Node.js 18+ and npm; the npm package is installed once into a cache directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ingestor.errors import IngestorError
from ingestor.provision.azure_rules import STANDARD_COLUMNS
from ingestor.tables import load_schemas

NODE_HINT = (
    "install Node.js 18 or newer (https://nodejs.org, or your package manager: apt install nodejs npm) "
    "and run the command again"
)
MIN_NODE_MAJOR = 18
NPM_PACKAGE = "@kusto/language-service-next"
DIR_ENV = "INGESTOR_KQL_ANALYZER_DIR"
SCRIPT = "analyze.mjs"
PACKAGE_FILES = ("package.json", "package-lock.json")
STAMP = ".installed"  # sha256 of the package files `npm ci` last installed
INSTALL_TIMEOUT_S = 600.0
ANALYZE_TIMEOUT_S = 600.0
TABLE_TYPE = "Microsoft.OperationalInsights/workspaces/tables"
FUNCTION_TYPE = "Microsoft.OperationalInsights/workspaces/savedSearches"
# Tables API column types -> KQL scalar types.
ARM_TO_KQL = {
    "string": "string",
    "int": "int",
    "long": "long",
    "real": "real",
    "boolean": "bool",
    "dateTime": "datetime",
    "dynamic": "dynamic",
    "guid": "guid",
}
# Schema file column types (ingestor.tables.ColumnType) -> KQL scalar types.
SCHEMA_TO_KQL = {**{t: t for t in ARM_TO_KQL.values()}, "boolean": "bool"}
# `[format('{0}/Name', parameters('workspaceName'))]`, the way `ingestor provision` names workspace children.
_FORMATTED_CHILD = re.compile(r"\[format\('\{0\}/([^']+)',.*\)\]")


class AnalyzerError(IngestorError):
    """The KQL analyzer failed to run (bad input or a crash); the message is its one-line reason."""


class AnalyzerUnavailable(AnalyzerError):
    """Node.js or the npm package is missing and cannot be installed; the message says what to do, on one line."""


@dataclass(frozen=True)
class Diagnostic:
    """An error Kusto.Language reports: its code (e.g. KS142), message, and place in the query text."""

    code: str
    message: str
    start: int
    length: int


@dataclass(frozen=True)
class Analysis:
    """What Kusto.Language makes of one query: its errors, and the columns (name, KQL type) of its result."""

    errors: list[Diagnostic]
    columns: list[tuple[str, str]]


@dataclass(frozen=True)
class Database:
    """What queries run against: tables (ordered columns: name -> KQL type) and parameterless functions."""

    name: str
    tables: dict[str, list[tuple[str, str]]]
    functions: dict[str, str] = field(default_factory=dict)  # name -> body (a KQL query)

    def to_json(self) -> dict[str, Any]:
        """The `database` document analyze.mjs reads."""
        return {
            "name": self.name,
            "tables": [
                {"name": table, "columns": [{"name": c, "type": t} for c, t in columns]}
                for table, columns in self.tables.items()
            ],
            "functions": [{"name": name, "body": body} for name, body in self.functions.items()],
        }


def database_from_template(template: dict[str, Any], name: str = "workspace") -> Database:
    """The tables and functions the ARM template (`ingestor.provision.template.build_template`) creates in a
    workspace."""
    tables: dict[str, list[tuple[str, str]]] = {}
    functions: dict[str, str] = {}
    for resource in template.get("resources", []):
        properties = resource.get("properties", {})
        if resource.get("type") == TABLE_TYPE:
            schema = properties.get("schema", {})
            table = schema.get("name") or _child_name(resource["name"])
            declared = [(c["name"], ARM_TO_KQL[c["type"]]) for c in schema.get("columns", [])]
            names = {c for c, _ in declared}
            tables[table] = declared + [c for c in STANDARD_COLUMNS if c[0] not in names]
        elif resource.get("type") == FUNCTION_TYPE:
            functions[properties.get("functionAlias") or _child_name(resource["name"])] = properties["query"]
    return Database(name=name, tables=tables, functions=functions)


def _child_name(arm_name: str) -> str:
    """`ws/Child` or `[format('{0}/Child', ...)]` -> `Child`."""
    match = _FORMATTED_CHILD.fullmatch(arm_name)
    return match.group(1) if match else arm_name.rsplit("/", 1)[-1]


def native_database(name: str = "defender") -> Database:
    """The native Defender tables as Sentinel (and advanced hunting in Defender) have them: each schema's columns
    except those the ingestor adds, in schema order, then TimeGenerated and those of Log Analytics' standard columns
    the table does not document itself (IdentityInfo's own `Type` and `TenantId` stand for the standard ones)."""
    tables = {}
    for table, schema in load_schemas().items():
        native = [(c.name, SCHEMA_TO_KQL[c.type]) for c in schema.columns if c.origin != "added"]
        names = {c for c, _ in native}
        standard = [c for c in (("TimeGenerated", "datetime"), *STANDARD_COLUMNS) if c[0] not in names]
        tables[table] = native + standard
    return Database(name=name, tables=tables)


def default_directory() -> Path:
    """Where the analyzer is installed: $INGESTOR_KQL_ANALYZER_DIR, else the user's cache directory."""
    override = os.environ.get(DIR_ENV)
    if override:
        return Path(override).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "defender-ingestor" / f"kql-analyzer-{package_version()}"


def package_version() -> str:
    """The pinned version of the Kusto.Language npm package."""
    manifest = json.loads(_packaged("package.json"))
    return str(manifest["dependencies"][NPM_PACKAGE])


def _packaged(name: str) -> bytes:
    return (resources.files("ingestor.provision") / "kql_analyzer" / name).read_bytes()


class Analyzer:
    """Runs analyze.mjs under Node.js: one process per `analyze` call, the npm package installed on first use."""

    def __init__(self, directory: Path | None = None) -> None:
        node = shutil.which("node")
        if node is None:
            raise AnalyzerUnavailable(f"the KQL analyzer needs Node.js, and `node` is not on PATH: {NODE_HINT}")
        self.node = node
        self.directory = directory or default_directory()
        self._ready = False
        version = _run([node, "--version"], timeout=60).stdout.strip()
        major = re.match(r"v?(\d+)", version)
        if major is None or int(major.group(1)) < MIN_NODE_MAJOR:
            raise AnalyzerUnavailable(f"the KQL analyzer needs Node.js {MIN_NODE_MAJOR}+, found {version}: {NODE_HINT}")

    def analyze(self, database: Database, queries: Sequence[str]) -> list[list[Diagnostic]]:
        """Each query's errors against `database`, in query order (empty when a query is valid)."""
        return [analysis.errors for analysis in self.analyses(database, queries)]

    def analyses(self, database: Database, queries: Sequence[str]) -> list[Analysis]:
        """Each query's errors and result columns against `database`, in query order."""
        if not queries:
            return []
        self.install()
        request = json.dumps({"database": database.to_json(), "queries": list(queries)})
        done = _run([self.node, str(self.directory / SCRIPT)], stdin=request, timeout=ANALYZE_TIMEOUT_S)
        if done.returncode != 0:
            raise AnalyzerError(_last_line(done.stderr) or f"the KQL analyzer exited with status {done.returncode}")
        return [
            Analysis(
                errors=[
                    Diagnostic(code=d["code"], message=d["message"], start=d["start"], length=d["length"])
                    for d in found["errors"]
                ],
                columns=[(name, kind) for name, kind in found["columns"]],
            )
            for found in json.loads(done.stdout)
        ]

    def install(self) -> None:
        """Put analyze.mjs and the pinned npm package into the directory (`npm ci` only when the lock changed)."""
        if self._ready:
            return
        directory = self.directory
        directory.mkdir(parents=True, exist_ok=True)
        _write_if_changed(directory / SCRIPT, _packaged(SCRIPT))
        wanted = hashlib.sha256(b"".join(_packaged(f) for f in PACKAGE_FILES)).hexdigest()
        if not self._installed(wanted):
            with _locked(directory / ".install.lock"):
                if not self._installed(wanted):
                    self._npm_ci(wanted)
        self._ready = True

    def _installed(self, wanted: str) -> bool:
        stamp, package = self.directory / STAMP, self.directory / "node_modules" / NPM_PACKAGE / "package.json"
        return stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == wanted and package.is_file()

    def _npm_ci(self, wanted: str) -> None:
        npm = shutil.which("npm")
        if npm is None:
            raise AnalyzerUnavailable(f"the KQL analyzer needs npm, and `npm` is not on PATH: {NODE_HINT}")
        (self.directory / STAMP).unlink(missing_ok=True)
        for name in PACKAGE_FILES:
            _write_if_changed(self.directory / name, _packaged(name))
        command = [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"]
        done = _run(command, cwd=self.directory, timeout=INSTALL_TIMEOUT_S, env={"npm_config_update_notifier": "false"})
        if done.returncode != 0:
            reason = _last_line(done.stderr) or f"status {done.returncode}"
            raise AnalyzerUnavailable(
                f"cannot install the KQL analyzer ({NPM_PACKAGE}) into {self.directory}: `npm ci` failed ({reason}); "
                "check access to the npm registry and run the command again"
            )
        (self.directory / STAMP).write_text(wanted + "\n", encoding="utf-8")


def _run(
    command: list[str],
    *,
    timeout: float,
    stdin: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            text=True,
            encoding="utf-8",
            cwd=cwd,
            timeout=timeout,
            check=False,
            env={**os.environ, **env} if env else None,
        )
    except subprocess.TimeoutExpired as exc:
        raise AnalyzerError(f"`{' '.join(command)}` did not finish in {timeout:.0f} s") from exc
    except OSError as exc:
        raise AnalyzerUnavailable(f"cannot run {command[0]} ({exc}): {NODE_HINT}") from exc


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _write_if_changed(path: Path, content: bytes) -> None:
    """Replace `path` atomically when its content differs (another process may be running it)."""
    if path.is_file() and path.read_bytes() == content:
        return
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on `path` (POSIX), so concurrent processes install one at a time."""
    with path.open("a") as handle:
        if sys.platform != "win32":
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
