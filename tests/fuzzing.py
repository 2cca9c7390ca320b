"""Hostile message bytes for the fuzz campaign (test_fuzz.py): hypothesis strategies and the outcome tally.

Every strategy yields a `Case`: the message bytes plus the steps that made them (shown when a property fails, so
that a failure reads as "rename DeviceId to '\\x00' in DeviceInfo" rather than as 3,000 bytes). Records start
from the real captured samples and are mutated; JSON is written by `dump`, which can repeat keys and insert raw
fragments (deep nesting, NaN, lone surrogates, invalid UTF-8) that no JSON library would write.
"""

from __future__ import annotations

import copy
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from ingestor.tables import load_schemas
from ingestor_tools import SAMPLES_DIR

SCHEMAS = load_schemas()
BY_CATEGORY = {schema.category: schema for schema in SCHEMAS.values()}
_HERE = Path(__file__).resolve().parent
SAMPLES_DIRS = (SAMPLES_DIR, _HERE.parent.parent / "shared" / "reference" / "samples")
REQUIRED = tuple(dict.fromkeys(name for schema in SCHEMAS.values() for name in schema.required))

# Tallies of what the campaign produced, printed at the end of `make fuzz`: outcome -> count, case kind -> count.
OUTCOMES: Counter[str] = Counter()
KINDS: Counter[str] = Counter()


def load_samples() -> list[dict[str, Any]]:
    """The captured sample records (each file a JSON list), from the repository or ../shared/reference."""
    for directory in SAMPLES_DIRS:
        paths = sorted(directory.glob("*.json"))
        if paths:
            return [record for path in paths for record in json.loads(path.read_text())]
    raise FileNotFoundError(f"no sample records in {[str(d) for d in SAMPLES_DIRS]}")


SAMPLES = load_samples()


def sample_conversions(record: Obj) -> dict[str, tuple[Any, str]]:
    """The conversions a sample as captured already needs (real records carry Defender's own spellings): column ->
    (the value its row holds, the rule), from a decode of the sample alone."""
    from ingestor.pipeline.decode import MessageDecoder

    result = MessageDecoder(SCHEMAS).decode(json.dumps(record).encode())
    (row,) = result.rows
    values = json.loads(row.body)
    return {column: (values.get(column), rule) for (_, column, rule) in result.converted}


def examples(share: float, default_total: int = 3_000) -> int:
    """This test's share of the campaign: FUZZ_EXAMPLES cases in total (`make fuzz`), else `default_total`."""
    total = int(os.environ.get("FUZZ_EXAMPLES", "0") or 0) or default_total
    return max(1, round(total * share))


# -- writing JSON that no JSON library would write ------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """Bytes inserted verbatim where a value (or a key) goes."""

    data: bytes

    def __repr__(self) -> str:
        return f"Raw({_short(self.data)})"


@dataclass
class Obj:
    """A JSON object as a list of pairs: keys may repeat, and a key may be `Raw`."""

    pairs: list[tuple[str | Raw, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, value: dict[str, Any]) -> Obj:
        return cls([(k, cls.of(v) if isinstance(v, dict) else v) for k, v in value.items()])

    def keys(self) -> list[str | Raw]:
        return [k for k, _ in self.pairs]

    def get(self, key: str) -> Any:
        return next((v for k, v in self.pairs if k == key), None)

    def set(self, key: str | Raw, value: Any) -> None:
        """Replace the first pair with this key, or append one."""
        for i, (k, _) in enumerate(self.pairs):
            if k == key:
                self.pairs[i] = (k, value)
                return
        self.pairs.append((key, value))

    def remove(self, key: str | Raw) -> None:
        self.pairs = [(k, v) for k, v in self.pairs if k != key]

    def rename(self, old: str | Raw, new: str | Raw) -> None:
        self.pairs = [(new if k == old else k, v) for k, v in self.pairs]


def dump(value: Any) -> bytes:
    """JSON bytes of `value`; floats nan/inf become the NaN/Infinity literals, strings escape lone surrogates."""
    if isinstance(value, Raw):
        return value.data
    if isinstance(value, dict):
        value = Obj.of(value)
    if isinstance(value, Obj):
        return b"{" + b",".join(_key(k) + b":" + dump(v) for k, v in value.pairs) + b"}"
    if isinstance(value, list | tuple):
        return b"[" + b",".join(dump(v) for v in value) + b"]"
    return json.dumps(value).encode()


def _key(key: str | Raw) -> bytes:
    return key.data if isinstance(key, Raw) else json.dumps(key).encode()


def _short(data: bytes, limit: int = 3000) -> str:
    if len(data) <= limit:
        return repr(data)
    return f"{data[: limit // 2]!r} ...<{len(data)} bytes in all>... {data[-200:]!r}"


@dataclass(frozen=True)
class Case:
    """One message and how it was made."""

    kind: str
    data: bytes
    steps: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"Case(kind={self.kind!r}, steps={list(self.steps)!r}, data={_short(self.data)})"


# -- building blocks -------------------------------------------------------------------------------------------


def nesting(depth: int, shape: str) -> bytes:
    """A value nested `depth` levels deep (arrays, objects, both, or never closed)."""
    if shape == "array":
        return b"[" * depth + b"1" + b"]" * depth
    if shape == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    if shape == "mixed":
        return b'[{"a":' * (depth // 2) + b"null" + b"}]" * (depth // 2)
    return b"[" * depth  # unclosed


DEPTHS = st.sampled_from([500, 1000, 1500, 3000]) | st.integers(500, 3000)
NESTED = st.builds(nesting, DEPTHS, st.sampled_from(["array", "object", "mixed", "unclosed"]))
NESTED_RAW = NESTED.map(Raw)
# Sizes around the limits: max_field_bytes (64 KiB), max_record_bytes (1 MB) and past them.
HUGE_SIZES = st.sampled_from([65_537, 262_145, 1_000_001, 2_100_000])
HUGE_TEXT = st.builds(lambda n, c: c * (n // len(c.encode())), HUGE_SIZES, st.sampled_from(["x", "é", "😀", "\n", '"']))
HUGE_NUMBER = st.builds(
    lambda n, form: Raw(form.replace(b"N", b"9" * n)), st.sampled_from([20, 400, 5_000, 100_000]),
    st.sampled_from([b"N", b"-N", b"1e+N", b"0.N", b"N.N", b"1e-N"]),
)  # fmt: skip
NUMBER_LITERALS = st.sampled_from(
    [b"1e400", b"-1e400", b"1E+9999", b"NaN", b"-NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"-0", b"0e0",
     b"01", b"1.", b".5", b"+1", b"0x10", b"1_000", b"18446744073709551616", b"-9223372036854775809",
     b"9223372036854775808", b"2147483648", b"-2147483649", b"1.0", b"1e2", b"tru", b"nul", b"True", b"None"]
).map(Raw)  # fmt: skip
STRING_LITERALS = st.sampled_from(
    [b'"\\ud800"', b'"\\udfff"', b'"\\udc00\\ud800"', b'"a\\ud83d"', b'"\\ud83d\\ude00"', b'"\\u0000"',
     b'"\xff\xfe"', b'"\xed\xa0\x80"', b'"\xc0\x80"', b'"\xf4\x90\x80\x80"', b'"\x80"', b'"\\x41"', b'"\\u12"',
     b'"\t"', b'"\n"', b'"unterminated', b"'single'", b'"\\"', b'"' + "é".encode("latin-1") + b'"']
).map(Raw)  # fmt: skip
DATETIMES = st.sampled_from(
    ["2026-02-30T00:00:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.9999999+23:59", "2026-07-18T24:00:00Z",
     "2026-07-18T14:00:54.7649349Z\n", "2026-07-18 14:00:54Z", "2026-07-18T14:00:54", "2026-07-18T14:00:54.Z",
     "2026-07-18T14:00:54.12345678Z", "\uff12\uff10\uff12\uff16-07-18T14:00:54Z", "", "0001-01-01T00:00:00-23:59"]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([0, -1, 2**31, -(2**31) - 1, 2**53 + 1, 2**63, -(2**63) - 1, 2**64, 2**64 + 1, 10**30]),
    st.floats(),  # NaN and ±inf come out as the NaN / Infinity literals
    st.text(max_size=40),
    DATETIMES,
)
SMALL_JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)
HOSTILE_VALUES = st.one_of(
    SMALL_JSON,
    SMALL_JSON,
    NUMBER_LITERALS,
    STRING_LITERALS,
    NESTED_RAW,
    HUGE_TEXT,
    HUGE_NUMBER,
    st.just([]),
    st.just({}),
)
_KEY_CHARS = st.sampled_from(
    ['"', "\\", "\x00", "\x01", "\x1f", "\x7f", "\x85", "é", "😀", "\u2028", "\ufeff", "\ud800", "\udfff", "a", " ",
     ".", "$", "`", "[", "]", "{", "%", "\n", "\u0301", "ǅ"]
)  # fmt: skip
HOSTILE_KEYS: st.SearchStrategy[str | Raw] = st.one_of(
    st.just(""),
    st.text(_KEY_CHARS, min_size=1, max_size=200),
    st.text(min_size=1, max_size=200),
    st.sampled_from(
        [
            "properties",
            "category",
            "records",
            "tenantId",
            "TimeGenerated",
            "RetentionTag",
            "SourceTenantId",
            "x_learned_0",
            "x_learned_63",
            "__class__",
            "__dict__",
            "__slots__",
            "timestamp",
            "TIMESTAMP",
            "Timestamp ",
            " DeviceId",
            "DeviceId\x00",
            "DeviceName\u200b",
            "other",
            "invalid_name",
        ]
    ),
    st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,50}", fullmatch=True),  # names Log Analytics takes (up to 45 chars)
    st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,50}", fullmatch=True),
    st.builds(lambda n, c: c * n, st.integers(60, 200), st.sampled_from(["k", "é", "\x00", '"'])),
    st.sampled_from([b'"\xff"', b'"\\ud800"', b'"\xed\xa0\x80"', b'"a\\u0000"', b"1", b"null", b'"\\q"']).map(Raw),
)


# -- record mutations: each takes (draw, record) and returns a step description ---------------------------------

Draw = Callable[[st.SearchStrategy[Any]], Any]


def _properties(record: Obj) -> Obj | None:
    props = record.get("properties")
    return props if isinstance(props, Obj) else None


def _schema_of(record: Obj) -> Any:
    category = record.get("category")
    return BY_CATEGORY.get(category) if isinstance(category, str) else None


def _any_column(draw: Draw, record: Obj, props: Obj) -> str | Raw:
    schema = _schema_of(record)
    columns = [*props.keys(), *(schema.column_names if schema else ()), "ActionType", "AdditionalFields"]
    return draw(st.sampled_from(columns))


def rename_key(draw: Draw, record: Obj) -> str:
    props = _properties(record)
    target = props if props is not None and props.pairs and draw(st.integers(0, 4)) else record
    old = draw(st.sampled_from(target.keys())) if target.pairs else "x"
    new = draw(HOSTILE_KEYS)
    target.rename(old, new)
    return f"rename {'property' if target is props else 'record key'} {old!r} to {new!r}"


def add_column(draw: Draw, record: Obj) -> str:
    props = _properties(record)
    if props is None:
        return "add column: no properties"
    key, value = draw(HOSTILE_KEYS), draw(HOSTILE_VALUES)
    props.pairs.insert(draw(st.integers(0, len(props.pairs))), (key, value))
    return f"add column {key!r} = {_value_repr(value)}"


def swap_value(draw: Draw, record: Obj) -> str:
    props = _properties(record)
    if props is None:
        return "swap value: no properties"
    column = _any_column(draw, record, props)
    value = draw(HOSTILE_VALUES)
    props.set(column, value)
    return f"set {column!r} to {_value_repr(value)}"


def drop_column(draw: Draw, record: Obj) -> str:
    props = _properties(record)
    if props is None or not props.pairs:
        return "drop column: none"
    column = draw(st.sampled_from([*REQUIRED, *props.keys()]))
    if draw(st.booleans()):
        props.remove(column)
        return f"remove {column!r}"
    props.set(column, None)
    return f"set {column!r} to null"


def duplicate_key(draw: Draw, record: Obj) -> str:
    props = _properties(record)
    target = props if props is not None and props.pairs and draw(st.booleans()) else record
    if not target.pairs:
        return "duplicate key: none"
    key = draw(st.sampled_from(target.keys()))
    value = draw(HOSTILE_VALUES) if draw(st.booleans()) else target.get(key) if isinstance(key, str) else None
    target.pairs.insert(draw(st.integers(0, len(target.pairs))), (key, value))
    return f"duplicate key {key!r} with {_value_repr(value)}"


def dynamic_text(draw: Draw, record: Obj) -> str:
    """A dynamic column (AdditionalFields, ...) holding hostile JSON text, or a hostile value."""
    props = _properties(record)
    if props is None:
        return "dynamic text: no properties"
    schema = _schema_of(record)
    dynamic = [c.name for c in schema.columns if c.type == "dynamic"] if schema else []
    column = draw(st.sampled_from(dynamic or ["AdditionalFields"]))
    text = draw(
        st.one_of(
            NESTED.map(lambda b: b.decode()),
            HUGE_TEXT.map(lambda t: json.dumps({"Script": t})),
            st.sampled_from(['{"a":NaN}', '{"a":Infinity}', "[1,", "{", '{"a":"\\ud800"}', '{"a":1}x', "[]", "{}",
                             '{"a":1,"a":2}', "[1e400]", '{"\\u0000":1}', " {}", "{\"a\":" + "9" * 500 + "}"]),
            SMALL_JSON.map(lambda v: json.dumps(v)),
            st.builds(lambda n, f: f.replace("N", n.data.decode()), HUGE_NUMBER, st.sampled_from(["[N]", '{"a":N}'])),
            NUMBER_LITERALS.map(lambda n: f"[{n.data.decode()}]"),
        )
    )  # fmt: skip
    value: Any = text if draw(st.integers(0, 3)) else Raw(text.encode("utf-8", "surrogatepass"))
    props.set(column, value)
    return f"dynamic {column} = {_value_repr(value)}"


# Defender's own spellings of a value of each column type (converted: tests/test_type_drift.py), as strategies
# of (the value as written, the value the row must hold, the rule).
_INT_RANGE, _LONG_RANGE = (-(2**31), 2**31 - 1), (-(2**63), 2**63 - 1)
EMPTY = st.just(("", None, "empty_as_null"))


def _integers(low: int, high: int) -> st.SearchStrategy[tuple[Any, Any, str]]:
    numbers = st.integers(low, high) | st.sampled_from([low, high, 0, -1, 1])

    def padded(n: int, zeros: int) -> tuple[Any, Any, str]:  # leading zeros, even more than int() takes
        return ("-" if n < 0 else "") + "0" * zeros + str(abs(n)), n, "text_as_integer"

    return (
        EMPTY
        | numbers.map(lambda n: (str(n), n, "text_as_integer"))
        | st.builds(padded, numbers, st.sampled_from([1, 30, 5_000]))
    )


_FLAGS = st.sampled_from(["0", "1", "true", "false", "True", "False", "TRUE", "fAlSe"])
SPELLINGS: dict[str, st.SearchStrategy[tuple[Any, Any, str]]] = {
    "int": _integers(*_INT_RANGE),
    "long": _integers(*_LONG_RANGE),
    "real": EMPTY
    | st.floats(allow_nan=False, allow_infinity=False).map(lambda f: (json.dumps(f), f, "text_as_real"))
    | st.integers(-(10**15), 10**15).map(lambda n: (str(n), float(n), "text_as_real")),
    "boolean": EMPTY
    | _FLAGS.map(lambda t: (t, t.lower() in ("1", "true"), "text_as_boolean"))
    | st.sampled_from([0, 1]).map(lambda n: (n, n == 1, "integer_as_boolean")),
    "datetime": EMPTY,
    "guid": EMPTY,
    "dynamic": EMPTY,
    "string": st.integers().map(lambda n: (n, str(n), "number_as_text"))
    | st.booleans().map(lambda b: (b, "true" if b else "false", "boolean_as_text")),
}
# Values next to a spelling that are none: dead-lettered (invalid_type, invalid_value), or, where any value goes
# (dynamic), kept as they are.
NEAR_SPELLINGS: dict[str, list[Any]] = {
    "int": ["5.0", 5.0, " 1", "1 ", "+1", "1e3", "0x10", "1_000", "\u0663", "2147483648", "-", "--1", True],
    "long": [5.5, "9223372036854775808", "-9223372036854775809", "9" * 40, "12\n", "\uff11\uff12"],  # fullwidth digits
    "real": ["NaN", "Infinity", "-Infinity", "1e400", ".5", "5.", "+1", "1,5", "0x1p3", True],
    "boolean": ["yes", "no", " 1", "2", "t", "f", "tru", "tru\u0435", 2, -1, 1.0, "0.0"],  # a Cyrillic e
    "datetime": [" ", "0", 0, "null"],
    "guid": [" ", "0", 0, "{}"],
    "dynamic": [" "],
    "string": [{"a": 1}, [1], [], {}],
}


def respell(draw: Draw, record: Obj) -> str:
    """A typed column of the record's table written as Defender writes it (a spelling), or as a value next to one."""
    props, schema = _properties(record), _schema_of(record)
    if props is None or schema is None:
        return "respell: no table"
    by_type: dict[str, list[Any]] = {}
    for c in schema.columns:
        if c.origin != "added":
            by_type.setdefault(c.type, []).append(c)
    column = draw(st.sampled_from(by_type[draw(st.sampled_from(sorted(by_type)))]))  # each type as often
    if draw(st.sampled_from(["spelling", "spelling", "spelling", "near"])) == "spelling":
        value = draw(SPELLINGS[column.type])[0]
    else:
        value = draw(st.sampled_from(NEAR_SPELLINGS[column.type]))
    props.set(column.name, value)
    return f"respell {column.name} ({column.type}) as {_value_repr(value)}"


AS_CAPTURED = [sample_conversions(s) for s in SAMPLES]


@st.composite
def drifted(draw: Draw) -> tuple[list[dict[str, Any]], list[dict[str, tuple[Any, str]]]]:
    """1-5 sample records, each with 1-8 of its optional typed columns written as one of Defender's spellings; and
    per record, column -> (the value its row must hold, the rule that converts it)."""
    records, expected = [], []
    for _ in range(draw(st.integers(1, 5))):
        index = draw(st.integers(0, len(SAMPLES) - 1))
        record = copy.deepcopy(SAMPLES[index])
        schema = BY_CATEGORY[record["category"]]
        columns = [c for c in schema.input_columns if c.name not in schema.required]
        changes = dict(AS_CAPTURED[index])
        for column in draw(st.lists(st.sampled_from(columns), min_size=1, max_size=8, unique=True)):
            written, value, rule = draw(SPELLINGS[column.type])
            record["properties"][column.name] = written
            changes[column.name] = (value, rule)
        records.append(record)
        expected.append(changes)
    return records, expected


def category(draw: Draw, record: Obj) -> str:
    value = draw(
        st.one_of(
            st.sampled_from(["", " ", "AdvancedHunting-", "advancedhunting-DeviceInfo", "DeviceInfo",
                             "AdvancedHunting-DeviceInfo ", "AdvancedHunting-AlertInfo", "AdvancedHunting-\x00"]),
            st.sampled_from(sorted(BY_CATEGORY)),  # another table's category over these properties
            st.text(max_size=80).map(lambda t: "AdvancedHunting-" + t),
            st.text(_KEY_CHARS, min_size=1, max_size=200),
            st.builds(lambda n, c: c * n, st.sampled_from([65, 1_000, 1_048_576]), st.sampled_from(["A", "é"])),
            SCALARS, NESTED_RAW, STRING_LITERALS, st.just([]), st.just({}),
        )
    )  # fmt: skip
    record.set("category", value)
    return f"category = {_value_repr(value)}"


def properties(draw: Draw, record: Obj) -> str:
    value = draw(st.one_of(SCALARS, NESTED_RAW, STRING_LITERALS, st.just({}), st.just([]), SMALL_JSON))
    record.set("properties", value)
    return f"properties = {_value_repr(value)}"


def tenant(draw: Draw, record: Obj) -> str:
    value = draw(HOSTILE_VALUES)
    record.set("tenantId", value)
    return f"tenantId = {_value_repr(value)}"


MUTATIONS = (
    rename_key, rename_key, add_column, add_column, swap_value, swap_value, swap_value, drop_column, duplicate_key,
    dynamic_text, category, properties, tenant, respell, respell,
)  # fmt: skip


def _value_repr(value: Any) -> str:
    if isinstance(value, str) and len(value) > 80:
        return f"{value[:40]!r}...<{len(value)} chars>"
    text = repr(value)
    return text if len(text) <= 300 else f"{text[:200]}...<{len(text)} chars>"


@st.composite
def records(draw: Draw, *, mutate: bool = True) -> tuple[Any, list[str]]:
    """A sample record, mutated 1-3 times (or replaced by a value that is not an object)."""
    record = Obj.of(copy.deepcopy(draw(st.sampled_from(SAMPLES))))
    steps = [f"sample {record.get('category')}"]
    if not mutate:
        return record, steps
    if not draw(st.integers(0, 15)):
        value = draw(st.one_of(SCALARS, NESTED_RAW, STRING_LITERALS, st.just([]), NUMBER_LITERALS))
        return value, [f"record = {_value_repr(value)}"]
    for _ in range(draw(st.integers(1, 3))):
        steps.append(draw(st.sampled_from(MUTATIONS))(draw, record))
    return record, steps


@st.composite
def structured(draw: Draw) -> Case:
    """1-5 records (some intact) as an envelope, hostile envelope or one record per line."""
    items = [draw(records(mutate=bool(draw(st.integers(0, 3))))) for _ in range(draw(st.integers(1, 5)))]
    values = [value for value, _ in items]
    steps = [f"record {i}: " + "; ".join(s) for i, (_, s) in enumerate(items)]
    form = draw(st.sampled_from(["envelope"] * 4 + ["lines", "hostile_envelope"]))
    if form == "lines":
        separator = draw(st.sampled_from([b"\n", b"\r\n", b"\n\n", b"\n \t\n"]))
        data = separator.join(dump(v) for v in values) + draw(st.sampled_from([b"", b"\n", b"\r\n", b" "]))
        return Case("lines", data, (*steps, f"one per line, separator {separator!r}"))
    envelope = Obj([("records", values)])
    if form == "hostile_envelope":
        steps.append(hostile_envelope(draw, envelope))
    return Case(form, dump(envelope), tuple(steps))


def hostile_envelope(draw: Draw, envelope: Obj) -> str:
    choice = draw(st.sampled_from(["records_value", "nested_records", "extra_key", "duplicate_records", "wrapped",
                                   "missing", "nested_record", "decoy_records"]))  # fmt: skip
    if choice == "records_value":
        value = draw(st.one_of(SCALARS, STRING_LITERALS, NUMBER_LITERALS, st.just({}), st.just([]), SMALL_JSON))
        envelope.set("records", value)
        return f"records = {_value_repr(value)}"
    if choice == "nested_records":
        envelope.set("records", Raw(draw(NESTED)))
        return "records nested deep"
    if choice == "nested_record":
        records_ = envelope.get("records")
        records_.insert(draw(st.integers(0, len(records_))), Raw(draw(NESTED)))
        return "a record nested deep"
    if choice == "decoy_records":  # a `records` key deeper down, before the real one, and a record too deep
        decoy = Obj([("a", [1, {"records": ["}", "]", '\\"']}]), ("records", [2, 3])])
        envelope.pairs.insert(0, ("x", decoy))
        records_ = envelope.get("records")
        records_.insert(draw(st.integers(0, len(records_))), Raw(draw(NESTED)))
        return "a decoy `records` key first, and a record nested deep"
    if choice == "extra_key":
        key, value = draw(HOSTILE_KEYS), draw(st.one_of(HOSTILE_VALUES, NESTED_RAW))
        envelope.pairs.insert(draw(st.integers(0, 1)), (key, value))
        return f"envelope key {key!r} = {_value_repr(value)}"
    if choice == "duplicate_records":
        envelope.pairs.append(("records", draw(st.one_of(st.just([]), SMALL_JSON))))
        return "records twice"
    if choice == "missing":
        envelope.rename("records", draw(HOSTILE_KEYS))
        return "records key renamed"
    depth = draw(DEPTHS)
    envelope.pairs = [("records", Raw(b"[" * depth + dump(envelope.get("records")) + b"]" * depth))]
    return f"records list wrapped in {depth} arrays"


def _wrapped(data: bytes, depth: int) -> bytes:
    return b"[" * depth + data + b"]" * depth


BLANK = st.sampled_from([b"", b" ", b"\n", b"\r\n\t ", b"\n\n\n", b"\x00", b"\xef\xbb\xbf", b'{"records": []}',
                         b'{"records":[]}\n', b"[]", b"{}", b"null", b'{"records": null}', b'{"records": {}}',
                         b"\xef\xbb\xbf" + dump({"records": SAMPLES})])  # fmt: skip
TOKENS = st.sampled_from(
    [b"{", b"}", b"[", b"]", b",", b":", b'"records"', b'"category"', b'"properties"', b'"AdvancedHunting-DeviceInfo"',
     b'"Timestamp"', b'"2026-07-18T14:00:54Z"', b'"DeviceId"', b'"DeviceName"', b"NaN", b"Infinity", b"1e400",
     b'"\\ud800"', b"null", b"true", b"1", b"-0", b'"', b"\\", b"\n", b" ", b"\xff", b'"x"']
)  # fmt: skip
VALID = dump({"records": SAMPLES})


@st.composite
def byte_mutations(draw: Draw) -> Case:
    """The valid envelope of all samples with 1-8 bytes replaced, inserted or deleted."""
    body = bytearray(VALID)
    steps = []
    for _ in range(draw(st.integers(1, 8))):
        index = draw(st.integers(0, len(body) - 1))
        op = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.integers(0, 255))
        if op == "replace":
            body[index] = byte
        elif op == "insert":
            body.insert(index, byte)
        else:
            del body[index]
        steps.append(f"{op} {byte:#04x} at {index}" if op != "delete" else f"delete at {index}")
    return Case("byte_mutation", bytes(body), tuple(steps))


@st.composite
def many_records(draw: Draw) -> Case:
    """Thousands of small records in one message (an envelope or lines), or a sample repeated past 4 MB."""
    item = draw(st.sampled_from([b"1", b"{}", b"[]", b"null", b'{"category":"AdvancedHunting-X","properties":{}}',
                                 dump(SAMPLES[0])]))  # fmt: skip
    count = 2_000 if len(item) > 100 else draw(st.sampled_from([1_000, 20_000]))
    if draw(st.booleans()):
        return Case("many_records", b'{"records":[' + b",".join([item] * count) + b"]}", (f"{count} x {item[:60]!r}",))
    return Case("many_records", b"\n".join([item] * count), (f"{count} lines of {item[:60]!r}",))


MESSAGES: st.SearchStrategy[Case] = st.one_of(
    many_records(),
    st.binary(max_size=600).map(lambda b: Case("random_bytes", b)),
    st.lists(TOKENS, max_size=60).map(lambda t: Case("tokens", b"".join(t))),
    BLANK.map(lambda b: Case("blank", b)),
    byte_mutations(),
    st.builds(lambda d: Case("nested_message", _wrapped(VALID, d), (f"message wrapped in {d} arrays",)), DEPTHS),
    NESTED.map(lambda b: Case("nested_message", b)),
    structured(),
    structured(),
    structured(),
    structured(),
    structured(),
)
