"""The Logs Ingestion API's body rules: at most 1 MiB as sent, optional gzip, a JSON array of objects whose
columns the stream declares, with values of the declared types and no reserved columns but those the stream
declares (its data flow renames them: `dcr.DcrDefinition.renames`); for Auxiliary tables,
TimeGenerated with 6 decimals and at most 30 minutes between a request's rows. Violations raise
`ApiError`, carrying the status, error code and message the real service would answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, cast

import msgspec
from isal import igzip, isal_zlib

MAX_BODY_BYTES = 1_048_576
RESERVED_COLUMNS = frozenset({"TenantId", "Type", "SourceSystem", "_BilledSize", "_IsBillable", "_ResourceId"})
INT32_RANGE = range(-(2**31), 2**31)
INT64_RANGE = range(-(2**63), 2**63)
_DATETIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]{1,7})?"
    r"(?:Z|[+-]([0-9]{2}):([0-9]{2}))"
)
AUXILIARY_MAX_SPAN = timedelta(minutes=30)
_AUXILIARY_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
_GUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
# isal's stub declares its error as an instance; it is the class raised for corrupt deflate data.
_ISAL_ERROR = cast("type[Exception]", isal_zlib.error)
_ROWS = msgspec.json.Decoder(list[dict[str, Any]])
_RAW_ROWS = msgspec.json.Decoder(list[msgspec.Raw])


class ApiError(Exception):
    """An error answer in the Azure Core ErrorResponse shape; `target` locates the offending value."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.target = status, code, message, target
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        details = [{"code": self.code, "message": self.message, "target": self.target}] if self.target else []
        return {"error": {"code": self.code, "message": self.message, "details": details}}


def content_too_large(size: int) -> ApiError:
    return ApiError(
        413,
        "ContentLengthLimitExceeded",
        f"Maximum allowed content length: {MAX_BODY_BYTES} bytes (1 MB). Provided content length: {size} bytes.",
    )


def decompress(body: bytes, content_encoding: str) -> bytes:
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise ApiError(400, "UnsupportedContentEncoding", f"Content-Encoding '{content_encoding}' is not supported.")
    try:
        return cast(bytes, igzip.decompress(body))  # type: ignore[no-untyped-call]
    except (OSError, EOFError, _ISAL_ERROR) as exc:
        raise ApiError(400, "InvalidContentEncoding", f"The gzip request body cannot be decoded: {exc}") from exc


def decode_rows(data: bytes) -> list[dict[str, Any]]:
    """The rows of a body that must be a JSON array of objects (integers decode exactly)."""
    try:
        return _ROWS.decode(data)
    except msgspec.DecodeError as exc:
        raise _not_rows(exc) from exc


def count_rows(data: bytes) -> int:
    """Number of elements in a body that must be a JSON array, without decoding the elements."""
    try:
        return len(_RAW_ROWS.decode(data))
    except msgspec.DecodeError as exc:
        raise _not_rows(exc) from exc


def check_rows(rows: list[dict[str, Any]], stream: str, columns: Mapping[str, str]) -> None:
    """Raise a 400 naming the first row index and column that the stream declaration does not accept."""
    for index, row in enumerate(rows):
        for name, value in row.items():
            if name in RESERVED_COLUMNS and name not in columns:  # declared: the data flow renames it
                raise ApiError(
                    400,
                    "ReservedColumn",
                    f"Row {index}: column '{name}' is reserved and cannot be ingested.",
                    target=f"$[{index}].{name}",
                )
            type_ = columns.get(name)
            if type_ is None:
                raise ApiError(
                    400,
                    "InvalidColumn",
                    f"Row {index}: column '{name}' is not declared in stream '{stream}'.",
                    target=f"$[{index}].{name}",
                )
            if not value_matches(type_, value):
                raise ApiError(
                    400,
                    "InvalidColumnType",
                    f"Row {index}: column '{name}' is declared '{type_}' but got "
                    f"{type(value).__name__} {msgspec.json.encode(value)[:80].decode(errors='replace')}.",
                    target=f"$[{index}].{name}",
                )


def check_auxiliary_rows(rows: list[dict[str, Any]]) -> None:
    """An Auxiliary table (without a transform): TimeGenerated as ISO 8601 with 6 decimals, within 30 minutes."""
    times = []
    for index, row in enumerate(rows):
        value = row.get("TimeGenerated")
        if not isinstance(value, str) or not _AUXILIARY_TIME.fullmatch(value):
            raise ApiError(
                400,
                "InvalidTimeGenerated",
                f"Row {index}: TimeGenerated must be ISO 8601 with 6 decimal places for an Auxiliary table, got "
                f"{value!r}.",
                target=f"$[{index}].TimeGenerated",
            )
        times.append(datetime.fromisoformat(value))
    if times and (span := max(times) - min(times)) > AUXILIARY_MAX_SPAN:
        raise ApiError(
            400,
            "RecordsTimeRangeIsMoreThan30Minutes",
            f"The records in the request span {span}; an Auxiliary table accepts at most 30 minutes per request.",
        )


def value_matches(column_type: str, value: object) -> bool:
    """Whether a decoded JSON value (or null) is acceptable for a column of the Tables-API type."""
    return value is None or _TYPE_CHECKS[column_type](value)


def _is_datetime(value: object) -> bool:
    if not isinstance(value, str) or (match := _DATETIME.fullmatch(value)) is None:
        return False
    year, month, day, hour, minute, second, off_hour, off_minute = (int(g or 0) for g in match.groups())
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError:
        return False
    return off_hour < 24 and off_minute < 60


_TYPE_CHECKS: Mapping[str, Callable[[object], bool]] = {
    "string": lambda v: isinstance(v, str),
    "int": lambda v: type(v) is int and v in INT32_RANGE,
    "long": lambda v: type(v) is int and v in INT64_RANGE,
    "real": lambda v: type(v) in (int, float),
    "boolean": lambda v: isinstance(v, bool),
    "datetime": _is_datetime,
    "guid": lambda v: isinstance(v, str) and _GUID.fullmatch(v) is not None,
    "dynamic": lambda v: True,
}


def _not_rows(exc: msgspec.DecodeError) -> ApiError:
    return ApiError(400, "InvalidPayload", f"The request body must be a JSON array of objects: {exc}.")
