"""Error reasons and the error tree.

- Every dead-letter reason the decoder produces, pinned by a minimal input: the reason, and the column in the
  detail where there is one. The reasons come from exception types and from checking values against their
  columns' types, so they stay the same when msgspec words its messages differently.
- `TableCodec.problem` refuses exactly what msgspec refuses, and tells a wrong type from a wrong value.
- Every exception class of the project derives from IngestorError, but the ones errors.py names as outside.
- The sink's UploadError keeps the SDK's exception as its cause (real client, real emulator), and no token
  reaches a log line through it.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import pkgutil
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
from credentials import FailingCredential

import ingestor
from ingestor.config import LogsIngestionSinkConfig
from ingestor.errors import IngestorError, UploadError
from ingestor.logs import JsonFormatter
from ingestor.models import DEAD_LETTER_REASONS, Destination
from ingestor.pipeline import codec as codec_module
from ingestor.pipeline.codec import COLUMN_TYPES, JSON_CLASSES, VALUE_RULES, TableCodec
from ingestor.pipeline.decode import DecodeResult, MessageDecoder
from ingestor.sinks.logs_ingestion import LogsIngestionSink
from ingestor.tables import COLUMN_TYPES as COLUMN_TYPES_OF_SCHEMAS
from ingestor.tables import SchemaError, load_schemas, with_extra_columns
from ingestor_tools.emulator import DEFAULT_RULE_ID, Emulator

SCHEMAS = load_schemas()
TIME = "2026-07-18T10:58:27.3137769Z"
# Reasons given after decoding: by the service (a 400 for one row) and by the batcher (a row over any request).
NOT_FROM_DECODE = {"rejected_by_service", "oversized_row"}


def record(table: str = "DeviceInfo", **properties: Any) -> dict[str, Any]:
    """The smallest valid record of `table`, with `properties` set (`...` removes one)."""
    props: dict[str, Any] = {"Timestamp": TIME, "DeviceId": "d1", "DeviceName": "host1"}
    props.update(properties)
    return {
        "category": f"AdvancedHunting-{table}",
        "tenantId": "t",
        "properties": {k: v for k, v in props.items() if v is not ...},
    }


def envelope(*records: Any) -> bytes:
    return json.dumps({"records": list(records)}).encode()


def deep(levels: int) -> bytes:
    return envelope(record(AdditionalFields="x")).replace(b'"x"', b"[" * levels + b"]" * levels)


def unexplained(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refusal by msgspec that no check of ours explains (a bug): internal_error, not a guessed reason."""
    monkeypatch.setattr(TableCodec, "problem", lambda self, properties: None)


@dataclass(frozen=True)
class Case:
    reason: str
    value: bytes
    column: str | None = None  # named in the detail
    options: dict[str, Any] = field(default_factory=dict)  # of the MessageDecoder
    setup: Callable[[pytest.MonkeyPatch], None] | None = None


CASES = [
    Case("malformed_json", b'{"records": [{"category": '),
    Case("not_an_object", b"[17]\n"),
    Case("invalid_envelope", b'{"records": {"category": "AdvancedHunting-DeviceInfo"}}', "records"),
    Case("empty_message", b'{"records": []}'),
    Case("missing_required_column", envelope(record(DeviceName=...)), "DeviceName"),
    Case("unknown_column", envelope(record(BrandNewColumn=1)), "BrandNewColumn", {"unknown_columns": "reject"}),
    Case("invalid_type", envelope(record(DeviceName=[5])), "DeviceName"),  # 5 would be a spelling of "5"
    Case("invalid_value", envelope(record(Timestamp="yesterday")), "Timestamp"),
    Case("too_deeply_nested", deep(5_000)),
    Case("oversized_record", envelope(record(), record(OSVersion="x" * 3_000)), options={"max_record_bytes": 2_000}),
    Case(
        "oversized_message",
        envelope(record(OSVersion="x" * 3_000)),
        options={"max_record_bytes": 1_000, "max_message_bytes": 2_000},
    ),
    Case("internal_error", envelope(record(DeviceName=[5])), setup=unexplained),
]


def test_the_table_has_one_case_per_reason_decode_gives() -> None:
    reasons = [case.reason for case in CASES]
    assert len(reasons) == len(set(reasons))
    assert set(reasons) == DEAD_LETTER_REASONS - NOT_FROM_DECODE


def decode(case: Case) -> DecodeResult:
    return MessageDecoder(SCHEMAS, **case.options).decode(case.value)


def check(case: Case, result: DecodeResult) -> None:
    assert [r.reason for r in result.rejected] == [case.reason], [r.detail for r in result.rejected]
    if case.column is not None:
        assert case.column in result.rejected[0].detail


@pytest.mark.parametrize("case", CASES, ids=[c.reason for c in CASES])
def test_each_reason(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    if case.setup is not None:
        case.setup(monkeypatch)
    check(case, decode(case))


def reworded(decode: Callable[..., Any]) -> Callable[..., Any]:
    """`decode` raising the same exception types as msgspec, with none of its words."""

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return decode(*args, **kwargs)
        except msgspec.ValidationError as exc:
            raise msgspec.ValidationError("Q") from exc
        except msgspec.DecodeError as exc:
            raise msgspec.DecodeError("Q") from exc

    return call


@pytest.mark.parametrize("case", CASES, ids=[c.reason for c in CASES])
def test_reasons_do_not_depend_on_the_wording_of_msgspec(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every msgspec call the decoder makes raises the same types with other words: the same reasons come out."""
    if case.setup is not None:
        case.setup(monkeypatch)
    monkeypatch.setattr(msgspec, "convert", reworded(msgspec.convert))
    monkeypatch.setattr(msgspec.json, "decode", reworded(msgspec.json.decode))
    for name in ("_decode_members", "_decode_columns"):
        monkeypatch.setattr(codec_module, name, reworded(getattr(codec_module, name)))
    decoder = MessageDecoder(SCHEMAS, **case.options)
    for name in (
        "_decode_message",
        "_decode_tolerant",
        "_decode_record",
        "_decode_envelope",
        "_decode_envelope_members",
        "_decode_generic",
    ):
        monkeypatch.setattr(decoder, name, reworded(getattr(decoder, name)))
    check(case, decoder.decode(case.value))


@pytest.mark.parametrize(
    ("value", "kind"),
    [(b'{"records": 5}', "a number"), (b'{"records": null}', "null"), (b'{"records": "[]"}', "a string")],
)
def test_records_that_are_no_list_name_what_they_are(value: bytes, kind: str) -> None:
    (rejected,) = MessageDecoder(SCHEMAS).decode(value).rejected
    assert (rejected.reason, rejected.detail) == ("invalid_envelope", f"`records` is {kind}, not a list of records")


def test_a_number_no_double_holds_is_out_of_range_in_a_typed_column_and_kept_as_written_elsewhere() -> None:
    """Untyped, msgspec refuses 1e400 with the ValidationError it gives for a document that is no object."""
    decoder = MessageDecoder(SCHEMAS)
    typed = envelope(record("DeviceFileEvents", FileSize=0)).replace(b'"FileSize": 0', b'"FileSize": 1e400')
    (rejected,) = decoder.decode(typed).rejected
    assert rejected.reason == "invalid_value" and "FileSize" in rejected.detail
    loose = envelope(record(AdditionalFields={"a": 0}, NewColumn=0))
    loose = loose.replace(b'"a": 0', b'"a": -1e400').replace(b'"NewColumn": 0', b'"NewColumn": 1e400')
    result = decoder.decode(loose)
    (row,) = result.rows
    assert not result.rejected and b'"AdditionalFields":{"a": -1e400}' in row.body  # the column's value as written
    assert b'"UnmappedColumns":{"NewColumn":1e400}' in row.body


# -- TableCodec.problem against msgspec ----------------------------------------------------------------------

VALUES: list[Any] = [
    None, True, False, 0, 7, -(2**31), 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**400, 1.5, 1e300, "", "x",
    "2022-02-08T22:32:55Z", "2022-02-08T22:32:55.12345678Z", "2022-02-30T00:00:00+01:00", "yesterday",
    "0f0e0d0c-0b0a-0908-0706-050403020100", "0f0e0d0c0b0a09080706050403020100", [], [1], {}, {"a": None},
]  # fmt: skip


# DeviceInfo with one promoted column of each type (the schemas hold no guid column).
TYPED = TableCodec.build(with_extra_columns(SCHEMAS, {"DeviceInfo": {f"X{t}": t for t in COLUMN_TYPES}})["DeviceInfo"])


def test_every_column_type_has_its_json_classes_and_value_rules() -> None:
    assert set(JSON_CLASSES) == set(COLUMN_TYPES) == set(COLUMN_TYPES_OF_SCHEMAS)
    constrained = {t for t, kind in COLUMN_TYPES.items() if getattr(kind, "__metadata__", None)}
    assert constrained | {"real"} == set(VALUE_RULES)


@pytest.mark.parametrize(("column_type", "value"), [(t, v) for t in COLUMN_TYPES for v in VALUES])
def test_problem_refuses_what_msgspec_refuses_and_tells_type_from_value(column_type: str, value: Any) -> None:
    column = f"X{column_type}"
    properties = {**record()["properties"], column: value}
    try:
        msgspec.convert(properties, TYPED.row_type)
    except msgspec.ValidationError:
        refused = True
    else:
        refused = False
    problem = TYPED.problem(properties)
    assert (problem is not None) == refused
    if problem is not None:
        classes = JSON_CLASSES[column_type]
        right_class = classes is None or value.__class__ in classes
        assert problem[0] == ("invalid_value" if right_class else "invalid_type") and column in problem[1]


@pytest.mark.parametrize("column", ["Timestamp", "DeviceId", "DeviceName"])
def test_problem_calls_a_required_column_null_or_absent_missing(column: str) -> None:
    codec = TableCodec.build(SCHEMAS["DeviceInfo"])
    complete = record()["properties"]
    absent = {name: value for name, value in complete.items() if name != column}
    for properties in ({**complete, column: None}, absent):
        problem = codec.problem(properties)
        assert problem is not None and problem[0] == "missing_required_column" and column in problem[1]


def test_problem_reports_the_first_failure_in_the_records_order_as_msgspec_does() -> None:
    codec = TableCodec.build(SCHEMAS["DeviceInfo"])
    first_type = {"OSBuild": "x", "Timestamp": "yesterday", "DeviceId": "d", "DeviceName": "n"}
    first_value = {"Timestamp": "yesterday", "OSBuild": "x", "DeviceId": "d", "DeviceName": "n"}
    assert codec.problem(first_type) == ("invalid_type", "column OSBuild is long but holds a string")
    problem = codec.problem(first_value)
    assert problem is not None and problem[0] == "invalid_value" and "Timestamp" in problem[1]
    missing_and_wrong = {"OSBuild": "x", "Timestamp": TIME, "DeviceId": "d"}
    assert codec.problem(missing_and_wrong) == ("invalid_type", "column OSBuild is long but holds a string")
    with pytest.raises(msgspec.ValidationError, match=r"\$\.OSBuild"):  # msgspec's order too (its JSON path)
        msgspec.convert(missing_and_wrong, codec.row_type)


# -- one root ------------------------------------------------------------------------------------------------


def project_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(ingestor.__path__, "ingestor."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == info.name:
                found[f"{info.name}.{name}"] = value
    return found


def test_every_project_exception_derives_from_ingestor_error() -> None:
    found = project_exceptions()
    assert "ingestor.tables.SchemaError" in found
    outside = {name for name, kind in found.items() if not issubclass(kind, IngestorError)}
    assert outside == set()  # the emulator's own answers (ApiError) live in the tools package
    tree = inspect.getdoc(importlib.import_module("ingestor.errors")) or ""
    for name, kind in found.items():
        assert kind.__name__ in tree or not issubclass(kind, IngestorError), f"{name} is not in errors.py's tree"


def test_a_schema_file_that_is_no_json_is_a_schema_error_with_its_cause(tmp_path: Path) -> None:
    (tmp_path / "DeviceInfo.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(SchemaError) as info:
        load_schemas(tmp_path)
    assert isinstance(info.value, IngestorError) and isinstance(info.value.__cause__, ValueError)
    assert "DeviceInfo.json" in str(info.value)


# -- the sink keeps the cause, and no secret ---------------------------------------------------------------------

TOKEN = "error-reasons-token-SECRET"
WRONG = "wrong-token-SECRET"


@pytest.fixture
def emulator_token() -> str:
    return TOKEN


def sink_for(
    emulator: Emulator, token: str = TOKEN, *, endpoint: str | None = None, credential: Any = None, **options: Any
) -> LogsIngestionSink:
    config = LogsIngestionSinkConfig.model_validate(
        {
            "endpoint": endpoint or emulator.endpoint,
            "rule_id": DEFAULT_RULE_ID,
            "ca_file": emulator.ca_file,
            "credential": {"type": "static_token", "token": token},
            **options,
        }
    )
    return LogsIngestionSink(config, credential=credential)


DESTINATION = Destination("DeviceInfo", DEFAULT_RULE_ID, "Custom-DeviceInfo_CL", "DeviceInfo_CL")


async def refused(sink: LogsIngestionSink) -> UploadError:
    async with sink:
        with pytest.raises(UploadError) as info:
            await sink.send(DESTINATION, b"[]", "request-1")
    return info.value


def shown(error: UploadError) -> str:
    """What a log line with the error's traceback holds."""
    logger = logging.getLogger("test")
    line = logger.makeRecord("test", logging.ERROR, __file__, 1, "failed", (), (type(error), error, None))
    return JsonFormatter().format(line) + "".join(traceback.format_exception(error))


async def test_a_refused_token_keeps_the_response_as_cause_and_shows_no_token(emulator: Emulator) -> None:
    error = await refused(sink_for(emulator, WRONG))
    assert (error.kind, error.status) == ("unauthorized", 401)
    assert isinstance(error.__cause__, HttpResponseError) and error.__cause__.status_code == 401
    text = shown(error)
    assert "InvalidToken" in text and "ClientAuthenticationError" in text and "SECRET" not in text


async def test_a_server_error_keeps_the_response_as_cause(emulator: Emulator) -> None:
    emulator.update_faults({"fail_next": [503]})
    error = await refused(sink_for(emulator))
    assert (error.kind, error.status) == ("transient", 503)
    assert isinstance(error.__cause__, HttpResponseError) and error.__cause__.response is not None
    assert "SECRET" not in shown(error)


async def test_a_credential_without_token_is_the_cause(emulator: Emulator) -> None:
    failure = ClientAuthenticationError("no managed identity endpoint")
    error = await refused(sink_for(emulator, credential=FailingCredential(failure)))
    assert error.kind == "unauthorized" and error.__cause__ is failure


async def test_a_connection_failure_and_a_timeout_are_the_cause(emulator: Emulator) -> None:
    closed = emulator.endpoint.rsplit(":", 1)[0] + ":1"
    error = await refused(sink_for(emulator, endpoint=closed))
    assert error.kind == "transient" and isinstance(error.__cause__, ServiceRequestError)
    emulator.update_faults({"latency_ms": 2_000})
    error = await refused(sink_for(emulator, request_timeout_secs=0.3))
    assert error.kind == "transient" and isinstance(error.__cause__, TimeoutError)
    assert "SECRET" not in shown(error)
