"""Retention classes and routing: which destination (table plan, retention, DCR stream, table) each row goes to.

Configuration names classes (plan, interactive and total retention, checked against Azure's limits per plan) and
rules that pick a class per row, by table and optionally by a column predicate, first match wins. A (table, class)
pair is a Destination; `TableRoute` picks one per decoded row, and `build_routes` makes the route of every table
given (the ingested ones, `config.Config.routes`) from the retention settings and the sink's defaults. Pure: no I/O
but reading the schema files once (`tables.load_schemas`, cached).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ingestor.models import Destination
from ingestor.tables import TableSchema, default_stream_name, default_table_name, load_schemas

Plan = Literal["Analytics", "Basic", "Auxiliary"]
# Azure: totalRetentionInDays is 4-730, or exactly one of these whole years (up to 12).
TOTAL_RETENTION_YEARS = (1095, 1460, 1826, 2191, 2556, 2922, 3288, 3653, 4018, 4383)
# Basic and Auxiliary tables keep data queryable interactively for a fixed 30 days.
FIXED_INTERACTIVE_DAYS = 30
CLASS_NAME = r"[A-Za-z][A-Za-z0-9]{0,19}"
# A DCR's immutable id: `dcr-` and 32 hex digits.
RULE_ID_PATTERN = r"^dcr-[0-9a-fA-F]{32}$"
RuleId = Annotated[str, Field(pattern=RULE_ID_PATTERN)]
STREAM_PATTERN = r"^Custom-[A-Za-z0-9_]+$"
# Log Analytics custom tables: letters, digits and `_`, starting with a letter, ending in `_CL`, at most 63 chars.
TABLE_NAME = r"[A-Za-z][A-Za-z0-9_]{0,59}_CL"
# Columns a destination must keep: the service needs TimeGenerated, and a row without these is invalid.
UNDROPPABLE = ("TimeGenerated", "RetentionTag")
DEFAULT_CLASS = "default"
_SCALARS = frozenset({str, int, float, bool})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RetentionClass(_Model):
    """A named destination policy. Unset retention means the workspace default."""

    plan: Plan = "Analytics"
    # Interactive (analytics) retention: 4-730 days on Analytics; fixed at 30 on Basic and Auxiliary.
    retention_days: Annotated[int, Field(ge=4, le=730)] | None = None
    # Interactive plus long-term retention: 4-730 days or a whole number of years up to 12 (see TOTAL_RETENTION_YEARS).
    total_retention_days: int | None = None
    # DCR immutable id for this class's destinations (default: sink.rule_id).
    rule_id: RuleId | None = None

    @model_validator(mode="after")
    def _azure_limits(self) -> RetentionClass:
        if self.plan != "Analytics" and self.retention_days not in (None, FIXED_INTERACTIVE_DAYS):
            raise ValueError(
                f"retention_days is fixed at {FIXED_INTERACTIVE_DAYS} on the {self.plan} plan; remove it or use "
                "plan Analytics (4-730 days)"
            )
        total = self.total_retention_days
        if total is not None:
            if not (4 <= total <= 730 or total in TOTAL_RETENTION_YEARS):
                raise ValueError(
                    f"total_retention_days must be 4-730 or one of {list(TOTAL_RETENTION_YEARS)} (whole years up "
                    f"to 12), got {total}"
                )
            interactive = self.interactive_days
            if interactive is not None and total < interactive:
                raise ValueError(f"total_retention_days {total} is shorter than the interactive {interactive} days")
        return self

    @property
    def interactive_days(self) -> int | None:
        return self.retention_days if self.plan == "Analytics" else FIXED_INTERACTIVE_DAYS


class Predicate(_Model):
    """A test on one column of the row; exactly one of equals, in, prefix, regex (Python `re.search`)."""

    column: str
    equals: str | int | float | bool | None = None
    in_: list[str | int | float | bool] | None = Field(default=None, alias="in", min_length=1)
    prefix: Annotated[str, Field(min_length=1)] | None = None
    regex: Annotated[str, Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Predicate:
        tests = [name for name in ("equals", "in_", "prefix", "regex") if getattr(self, name) is not None]
        if len(tests) != 1:
            raise ValueError(f"a `when` needs exactly one of equals, in, prefix, regex; got {tests or 'none'}")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex {self.regex!r} does not compile: {exc}") from None
        return self

    def compile(self) -> Callable[[Any], bool]:
        """A test on a decoded row struct (columns as attributes; a missing column is None)."""
        column = self.column
        if self.in_ is not None:
            allowed = frozenset(self.in_)
            # A dynamic column can hold a list or an object, which no set can be asked about.
            return lambda row: (value := getattr(row, column)).__class__ in _SCALARS and value in allowed
        if self.prefix is not None:
            prefix = self.prefix
            return lambda row: (value := getattr(row, column)).__class__ is str and value.startswith(prefix)
        if self.regex is not None:
            search = re.compile(self.regex).search
            return lambda row: (value := getattr(row, column)).__class__ is str and search(value) is not None
        expected = self.equals
        return lambda row: getattr(row, column) == expected


class Rule(_Model):
    """Rows of `tables` (every ingested table when empty) that pass `when` (all rows when unset) go to `class`."""

    tables: list[str] = []
    when: Predicate | None = None
    class_: str = Field(alias="class")


class DestinationSettings(_Model):
    """Overrides for one (table, class) destination; unset fields are derived (see `destination_names`)."""

    rule_id: RuleId | None = None
    stream: Annotated[str, Field(pattern=STREAM_PATTERN)] | None = None
    table_name: Annotated[str, Field(pattern=f"^{TABLE_NAME}$")] | None = None
    # Cut cost: send only these columns, or all but these (not both). TimeGenerated, RetentionTag and the
    # table's required columns always stay.
    keep_columns: list[str] | None = None
    drop_columns: list[str] | None = None

    @model_validator(mode="after")
    def _keep_or_drop(self) -> DestinationSettings:
        if self.keep_columns is not None and self.drop_columns is not None:
            raise ValueError("set keep_columns or drop_columns, not both")
        return self


class RetentionConfig(_Model):
    default_class: str = DEFAULT_CLASS
    classes: dict[str, RetentionClass] = {DEFAULT_CLASS: RetentionClass()}
    rules: list[Rule] = []
    # table -> class -> overrides
    destinations: dict[str, dict[str, DestinationSettings]] = {}

    @field_validator("classes")
    @classmethod
    def _class_names(cls, value: dict[str, RetentionClass]) -> dict[str, RetentionClass]:
        bad = [name for name in value if not re.fullmatch(CLASS_NAME, name)]
        if bad:
            raise ValueError(f"class names {bad} must be a letter then up to 19 letters or digits")
        if not value:
            raise ValueError("define at least one class")
        return value

    @model_validator(mode="after")
    def _references(self) -> RetentionConfig:
        schemas = load_schemas()
        if self.default_class not in self.classes:
            raise ValueError(f"default_class {self.default_class!r} is not one of the classes {sorted(self.classes)}")
        for index, rule in enumerate(self.rules):
            where = f"rules[{index}]"
            if rule.class_ not in self.classes:
                raise ValueError(f"{where}: class {rule.class_!r} is not one of {sorted(self.classes)}")
            _check_tables(rule.tables, schemas, where)
            # A rule naming no table tests the column of every ingested table: `config.Config` checks those, as only
            # it knows which tables are ingested (`schemas.tables`).
            if rule.when is not None:
                for table in rule.tables:
                    if rule.when.column not in schemas[table].column_names:
                        raise ValueError(f"{where}: {table} has no column {rule.when.column!r}")
        _check_tables(list(self.destinations), schemas, "destinations")
        for table, by_class in self.destinations.items():
            for name, settings in by_class.items():
                where = f"destinations.{table}.{name}"
                if name not in self.classes:
                    raise ValueError(f"{where}: {name!r} is not one of the classes {sorted(self.classes)}")
                _check_columns(settings, schemas[table], where)
        return self


def _check_tables(tables: list[str], schemas: dict[str, TableSchema], where: str) -> None:
    unknown = sorted(set(tables) - set(schemas))
    if unknown:
        raise ValueError(f"{where}: unknown tables {unknown}; known tables are {sorted(schemas)}")


def _check_columns(settings: DestinationSettings, schema: TableSchema, where: str) -> None:
    listed = settings.keep_columns if settings.keep_columns is not None else settings.drop_columns or []
    unknown = sorted(set(listed) - set(schema.column_names))
    if unknown:
        raise ValueError(f"{where}: {schema.table} has no columns {unknown}")
    kept = set(schema.column_names) - set(dropped_columns(settings, schema))
    missing = [c for c in (*UNDROPPABLE, *schema.required) if c not in kept]
    if missing:
        raise ValueError(f"{where}: columns {missing} cannot be dropped (the service or the row needs them)")


def dropped_columns(settings: DestinationSettings, schema: TableSchema) -> tuple[str, ...]:
    if settings.keep_columns is not None:
        keep = set(settings.keep_columns)
        return tuple(c for c in schema.column_names if c not in keep)
    return tuple(settings.drop_columns or ())


def destination_names(table: str, class_name: str, default_class: str) -> tuple[str, str]:
    """Derived (table name, stream name): `<Table>_CL` for the default class, `<Table>_<Class>_CL` for others."""
    if class_name == default_class:
        return default_table_name(table), default_stream_name(table)
    name = f"{table}_{class_name}_CL"
    return name, f"Custom-{name}"


class TableRoute:
    """Picks the destination of each row of one table: the first matching rule's class, else the default."""

    def __init__(self, rules: list[tuple[Callable[[Any], bool] | None, Destination]], default: Destination) -> None:
        # Rules after one without a predicate can never match; the first unconditional rule is the fallback.
        self._tests: list[tuple[Callable[[Any], bool], Destination]] = []
        self.fallback = default
        for test, destination in rules:
            if test is None:
                self.fallback = destination
                break
            self._tests.append((test, destination))
        # The common case, no column predicate: every row of the table goes to one destination.
        self.fixed = self.fallback if not self._tests else None
        self.destinations = tuple(dict.fromkeys([*(d for _, d in self._tests), self.fallback]))

    def __call__(self, row: Any) -> Destination:
        for test, destination in self._tests:
            if test(row):
                return destination
        return self.fallback


class DestinationNames(Protocol):
    """Names a destination may set; unset (None) takes the next layer's or the derived one."""

    @property
    def rule_id(self) -> str | None: ...
    @property
    def stream(self) -> str | None: ...
    @property
    def table_name(self) -> str | None: ...


class SinkDefaults(Protocol):
    """What routing reads of the sink's configuration (`config.LogsIngestionSinkConfig`): the default DCR and the
    per-table names of the default class (`sink.tables`)."""

    @property
    def rule_id(self) -> str: ...
    @property
    def tables(self) -> Mapping[str, DestinationNames]: ...


def build_routes(
    sink: SinkDefaults, retention: RetentionConfig | None = None, tables: Collection[str] | None = None
) -> dict[str, TableRoute]:
    """Per table (of `tables`, default every table with a schema), the destinations its rows can go to and the
    rules that pick one."""
    retention = retention or RetentionConfig()
    schemas = load_schemas()
    chosen = schemas if tables is None else {t: s for t, s in schemas.items() if t in tables}
    return {table: _route(schema, sink, retention) for table, schema in chosen.items()}


def _route(schema: TableSchema, sink: SinkDefaults, retention: RetentionConfig) -> TableRoute:
    rules = [rule for rule in retention.rules if not rule.tables or schema.table in rule.tables]
    classes = {retention.default_class, *(rule.class_ for rule in rules)}
    made = {name: _destination(schema, name, sink, retention) for name in classes}
    tests = [(rule.when.compile() if rule.when else None, made[rule.class_]) for rule in rules]
    return TableRoute(tests, made[retention.default_class])


def _destination(schema: TableSchema, name: str, sink: SinkDefaults, retention: RetentionConfig) -> Destination:
    """Names and DCR of the (table, class) destination, most specific first: `retention.destinations.<T>.<class>`,
    `sink.tables.<T>` (default class only), the class's `rule_id`, then derived names and `sink.rule_id`."""
    table = schema.table
    settings = retention.destinations.get(table, {}).get(name)
    override = sink.tables.get(table) if name == retention.default_class else None
    layers = [layer for layer in (settings, override) if layer is not None]

    def pick(key: str) -> str | None:
        return next((getattr(layer, key) for layer in layers if getattr(layer, key)), None)

    table_name, stream = destination_names(table, name, retention.default_class)
    cls = retention.classes[name]
    return Destination(
        table=table,
        rule_id=pick("rule_id") or cls.rule_id or sink.rule_id,
        stream=pick("stream") or stream,
        table_name=pick("table_name") or table_name,
        retention_tag=name,
        plan=cls.plan,
        dropped_columns=dropped_columns(settings, schema) if settings else (),
    )
