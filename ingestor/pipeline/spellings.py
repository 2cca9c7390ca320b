"""Defender's own spellings of a value, per documented column type: the one place the type-drift rules live.

Real exports write one value several ways (a port as `""` or `58210`, a flag as `"0"`, `false`, `""` or `null`,
`ReportId` as a decimal string). `SPELLINGS[column_type](value)` gives `(value, rule)` when `value` is such a
spelling of a value of that type (the value as the type holds it, and the rule's bounded name, counted per table
and column), and None for anything else: a value already of the type's JSON class, and a value that is no
spelling of it at all (which stays as it is, for the typed decode to refuse). A spelling never applies to a value
of the type's own class, so converting is idempotent. The decoder applies the table to typed columns only, never
to unknown or learned columns.

The rules, by column type (rule names in brackets):
- int, long: `""` -> null [empty_as_null]; a decimal integer as text (ASCII digits, an optional leading `-`) that
  fits the type's range -> that integer [text_as_integer]. `5.0` and `"5.0"` are no spellings of an integer.
- real: `""` -> null; a JSON number as text, finite -> that number [text_as_real].
- boolean: `""` -> null; `"0"`, `"1"`, `"true"`, `"false"` in any case [text_as_boolean]; `0`, `1` [integer_as_boolean].
- datetime, guid, dynamic: `""` -> null (other text must have the type's format; dynamic text is parsed later).
- string: a number or a boolean -> its JSON text [number_as_text, boolean_as_text]; where Microsoft documents the
  column as dynamic (the schema's `stream_type`, as for IdentityInfo.Tags), also an array or an object -> its JSON
  text [dynamic_as_text]. `SPELLINGS` is keyed by `spelling_type(column)`: the column type, or `string_of_dynamic`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import msgspec

from ingestor.tables import Column

EMPTY_AS_NULL = "empty_as_null"
TEXT_AS_INTEGER = "text_as_integer"
TEXT_AS_REAL = "text_as_real"
TEXT_AS_BOOLEAN = "text_as_boolean"
INTEGER_AS_BOOLEAN = "integer_as_boolean"
NUMBER_AS_TEXT = "number_as_text"
BOOLEAN_AS_TEXT = "boolean_as_text"
DYNAMIC_AS_TEXT = "dynamic_as_text"
RULES = (
    EMPTY_AS_NULL,
    TEXT_AS_INTEGER,
    TEXT_AS_REAL,
    TEXT_AS_BOOLEAN,
    INTEGER_AS_BOOLEAN,
    NUMBER_AS_TEXT,
    BOOLEAN_AS_TEXT,
    DYNAMIC_AS_TEXT,
)
# The spelling type of a string column that Microsoft documents as dynamic.
STRING_OF_DYNAMIC = "string_of_dynamic"

INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)
# 2^63 has 19 digits: a decimal integer of more significant digits fits no long.
_MAX_DIGITS = 19
# JSON's number grammar (RFC 8259): no `+`, no leading zeros, no bare `.5` or `5.`.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z").match
_BOOLEANS = {"0": False, "1": True, "true": True, "false": False}

Conversion = tuple[Any, str]
Spelling = Callable[[Any], Conversion | None]
_EMPTY: Conversion = (None, EMPTY_AS_NULL)


def _integer(low: int, high: int) -> Spelling:
    def spelling(value: Any) -> Conversion | None:
        if value.__class__ is not str:
            return None
        if not value:
            return _EMPTY
        negative = value[0] == "-"
        digits = value[1:] if negative else value
        # ASCII first: among ASCII characters only 0-9 are digits to isdigit().
        if not (digits.isascii() and digits.isdigit()):
            return None
        # Leading zeros are no digits of the number (and int() refuses over 4,300 digits, zeros included).
        significant = digits.lstrip("0")
        if len(significant) > _MAX_DIGITS:
            return None
        number = int(significant or "0")
        if negative:
            number = -number
        return (number, TEXT_AS_INTEGER) if low <= number <= high else None

    return spelling


def real(value: Any) -> Conversion | None:
    if value.__class__ is not str:
        return None
    if not value:
        return _EMPTY
    if _JSON_NUMBER(value) is None:
        return None
    number = float(value)
    return (number, TEXT_AS_REAL) if math.isfinite(number) else None


def boolean(value: Any) -> Conversion | None:
    kind = value.__class__
    if kind is int:  # exactly int: a JSON true is a bool, never this
        return ((value == 1), INTEGER_AS_BOOLEAN) if value in (0, 1) else None
    if kind is not str:
        return None
    if not value:
        return _EMPTY
    # .lower() of ASCII only: no other letter lowercases into these words.
    flag = _BOOLEANS.get(value.lower()) if len(value) <= 5 and value.isascii() else None
    return None if flag is None else (flag, TEXT_AS_BOOLEAN)


def empty_only(value: Any) -> Conversion | None:
    """datetime, guid and dynamic: only `""` is a spelling (of null); other text must have the type's format."""
    return _EMPTY if value.__class__ is str and not value else None


_encode = msgspec.json.Encoder().encode


def text(value: Any) -> Conversion | None:
    kind = value.__class__
    if kind is bool:
        return ("true" if value else "false"), BOOLEAN_AS_TEXT
    if kind is int or kind is float:
        return _encode(value).decode(), NUMBER_AS_TEXT
    return None


def text_of_dynamic(value: Any) -> Conversion | None:
    """A string column documented as dynamic: what `text` converts, and an array or an object as its JSON text."""
    kind = value.__class__
    if kind is list or kind is dict:
        return _encode(value).decode(), DYNAMIC_AS_TEXT
    return text(value)


def spelling_type(column: Column) -> str:
    """The key of `column`'s spellings in SPELLINGS."""
    return STRING_OF_DYNAMIC if column.type == "string" and column.stream_type == "dynamic" else column.type


integer = _integer(*INT_RANGE)
long = _integer(*LONG_RANGE)

# Column type -> its spellings.
SPELLINGS: dict[str, Spelling] = {
    "int": integer,
    "long": long,
    "real": real,
    "boolean": boolean,
    "datetime": empty_only,
    "guid": empty_only,
    "string": text,
    STRING_OF_DYNAMIC: text_of_dynamic,
    "dynamic": empty_only,
}
