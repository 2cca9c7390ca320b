"""Synthetic traffic generator: determinism, schema-valid records of every table, realistic sizes and mixes, the
links between tables a hunter joins on, records the real decoder turns into rows, type drift behind its option,
invalid records that match the manifest, message limits, writers, the CLI, and a round trip through a real
Kafka-compatible broker.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer
from hypothesis import given, settings
from hypothesis import strategies as st

from ingestor.pipeline.decode import MessageDecoder
from ingestor.tables import load_schemas
from ingestor_tools import SAMPLES_DIR
from ingestor_tools.generate import (
    DEFAULT_MIX,
    DEVICE_MIX,
    INVALID_KINDS,
    MAX_MESSAGE_BYTES,
    PARENTS,
    Manifest,
    TrafficGenerator,
    produce_kafka,
    run,
    write_file,
)

SCHEMAS = load_schemas()
TABLES = sorted(SCHEMAS)
DEVICE_TABLES = sorted(t for t, s in SCHEMAS.items() if "DeviceId" in s.required)
XDR_TABLES = sorted(set(TABLES) - set(DEVICE_TABLES))
BY_CATEGORY = {s.category: t for t, s in SCHEMAS.items()}
START = datetime(2026, 7, 18, 12, 0, tzinfo=UTC)
UNIFORM = dict.fromkeys(TABLES, 1.0)
# IdentityDirectoryEvents has no public record (ingestor_tools/samples/SOURCES.md): its template is its schema.
SAMPLES = {t: json.loads(path.read_text())[0] for t in TABLES if (path := SAMPLES_DIR / f"{t}.json").exists()}
KIND_REASON = {
    "malformed_json": "malformed_json",
    "not_an_object": "not_an_object",
    "missing_required": "missing_required_column",
    "wrong_type": "invalid_type",
    "bad_datetime": "invalid_value",
}
ENVELOPE_KEYS = {"time", "tenantId", "operationName", "category", "_TimeReceivedBySvc", "properties", "Tenant"}
PROPERTY_DT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{0,6}[1-9])?Z$")  # trailing zeros dropped
ENVELOPE_DT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$")
ANY_DT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?Z$")
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HEX_LENGTHS = {"SHA1": 40, "SHA256": 64, "MD5": 32, "SignerHash": 40, "IssuerHash": 40}  # column-name suffixes
INT32, INT64 = 2**31, 2**63


def generator(seed: int = 7, **kwargs: Any) -> TrafficGenerator:
    kwargs.setdefault("start_time", START)
    return TrafficGenerator(seed, **kwargs)


def parse_dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def valid_datetime(value: Any) -> bool:
    """ISO-8601 UTC with 0-7 fractional digits that is also a real calendar time."""
    if not isinstance(value, str) or not ANY_DT.match(value):
        return False
    try:
        parse_dt(value)
    except ValueError:
        return False
    return True


# ---- an independent checker: what a valid record is, from the schema alone --------------------------------


def type_problem(column_type: str, value: Any) -> str | None:
    """Why a non-null value is not of the column type, or None."""
    if column_type in ("string", "guid"):
        ok = isinstance(value, str) and (column_type == "string" or bool(GUID.match(value.lower())))
    elif column_type in ("int", "long"):
        bound = INT32 if column_type == "int" else INT64
        ok = isinstance(value, int) and not isinstance(value, bool) and -bound <= value < bound
    elif column_type == "real":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif column_type == "boolean":
        ok = isinstance(value, bool)
    elif column_type == "datetime":
        ok = valid_datetime(value)
    elif column_type == "dynamic":  # JSON text, or (as the non-Device tables' records carry it) an object or array
        ok = isinstance(value, dict | list | str)
        if isinstance(value, str):
            try:
                json.loads(value)
            except ValueError:
                ok = False
    else:
        ok = False
    return None if ok else f"{value!r} is not a {column_type}"


def record_problems(record: Any) -> list[str]:
    """Everything wrong with one record that claims to be a valid record of one of the schemas' tables."""
    if not isinstance(record, dict):
        return [f"not an object: {record!r}"]
    problems = []
    if set(record) != ENVELOPE_KEYS:
        problems.append(f"envelope keys {sorted(record)}")
    table = BY_CATEGORY.get(record.get("category", ""))
    if table is None:
        return [*problems, f"category {record.get('category')!r}"]
    if record.get("operationName") != "Publish" or record.get("Tenant") != "DefaultTenant":
        problems.append("operationName/Tenant")
    if not GUID.match(record.get("tenantId", "")):
        problems.append(f"tenantId {record.get('tenantId')!r}")
    for key in ("time", "_TimeReceivedBySvc"):
        if not ENVELOPE_DT.match(str(record.get(key))):
            problems.append(f"{key} {record.get(key)!r}")
    schema = SCHEMAS[table]
    types = {c.name: c.type for c in schema.columns if c.origin == "stream"}
    props = record["properties"]
    for column in schema.required:
        if props.get(column) is None:
            problems.append(f"{table}.{column} required but {props.get(column, 'missing')!r}")
    for column, value in props.items():
        if column not in types:
            problems.append(f"{table}.{column} is not a stream column")
            continue
        if value is None:
            continue
        problem = type_problem(types[column], value)
        if problem:
            problems.append(f"{table}.{column}: {problem}")
            continue
        if types[column] == "datetime" and column != "CertificateCreationTime" and not PROPERTY_DT.match(value):
            problems.append(f"{table}.{column}: {value!r} keeps trailing zeros")
        length = 40 if column == "DeviceId" else next((n for s, n in HEX_LENGTHS.items() if column.endswith(s)), 0)
        if length and not re.fullmatch(f"[0-9a-f]{{{length}}}", str(value)):
            problems.append(f"{table}.{column}: {value!r} is not {length} hex digits")
    return problems


def classify(raw: bytes) -> tuple[str, str]:
    """("valid", table) or ("invalid", kind) for one record's bytes, judged without the generator's help."""
    try:
        record = json.loads(raw)
    except ValueError:
        return "invalid", "malformed_json"
    if not isinstance(record, dict):
        return "invalid", "not_an_object"
    table = BY_CATEGORY.get(record.get("category"))
    if table is None:
        return "invalid", "unknown_category"
    props = record["properties"]
    if any(props.get(c) is None for c in SCHEMAS[table].required):
        return "invalid", "missing_required"
    if not valid_datetime(props["Timestamp"]):
        return "invalid", "bad_datetime"
    return ("valid", table) if not record_problems(record) else ("invalid", "wrong_type")


def records_of(body: bytes, envelope: str) -> list[bytes]:
    """A message body split into its records' bytes (an unparseable "records" body is one malformed record)."""
    if envelope == "lines":
        return body.split(b"\n")
    try:
        return [msgspec.json.encode(r) for r in json.loads(body)["records"]]
    except ValueError:
        return [body]


def tally(bodies: Iterable[bytes], envelope: str) -> Counter[tuple[str, str]]:
    return Counter(classify(raw) for body in bodies for raw in records_of(body, envelope))


def expected_tally(manifest: Manifest) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    counts.update({("valid", t): n for t, n in manifest.valid.items() if n})
    counts.update({("invalid", k): n for k, n in manifest.invalid.items() if n})
    return counts


def compact_size(record: Any) -> int:
    return len(msgspec.json.encode(record))


def stream(gen: TrafficGenerator, records: int, **kwargs: Any) -> list[dict[str, Any]]:
    """Every record of `records` generated records, parsed, in order."""
    return [json.loads(raw) for body in gen.messages(records=records, **kwargs) for raw in records_of(body, "records")]


def by_table(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
    for record in records:
        out[BY_CATEGORY[record["category"]]].append(record["properties"])
    return out


def values(rows: Iterable[dict[str, Any]], *columns: str) -> set[Any]:
    """The non-null scalar values of `columns` in `rows`."""
    return {row[c] for row in rows for c in columns if isinstance(row.get(c), str | int | float)}


# ---- determinism ----------------------------------------------------------------------------------------------


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    def bodies(seed: int) -> list[bytes]:
        return list(generator(seed, mix=DEFAULT_MIX, invalid_rate=0.1, drift_rate=0.05).messages(records=1500))

    first, again, other = bodies(11), bodies(11), bodies(12)
    assert first == again
    assert first != other
    a, b = generator(3), generator(3)
    assert [a.record(t) for t in TABLES * 3] == [b.record(t) for t in TABLES * 3]
    assert generator(3).manifest.to_json() == generator(3).manifest.to_json()


def test_the_device_mix_is_the_default_and_other_tables_leave_it_untouched() -> None:
    """Benchmarks compare Device-only traffic with earlier runs: the default is DEVICE_MIX, and adding the other
    tables' builders changed none of its records (their world is made on first use only)."""
    assert generator(8).mix == DEVICE_MIX and set(DEVICE_MIX) == set(DEVICE_TABLES)
    assert set(DEFAULT_MIX) == set(TABLES)
    plain = list(generator(8).messages(records=800))
    touched = generator(8)
    touched.record("EmailEvents")  # the other tables' world now exists; the Device records come from where they were
    again = generator(8)
    assert list(again.messages(records=800)) == plain
    assert touched._xdr_state is not None and again._xdr_state is None


# ---- valid records follow the schema --------------------------------------------------------------------------


@pytest.mark.parametrize("mix", [UNIFORM, DEFAULT_MIX, DEVICE_MIX], ids=["uniform", "all", "device"])
def test_every_valid_record_matches_its_table_schema(mix: dict[str, float]) -> None:
    gen = generator(5, mix=mix)
    records = stream(gen, 4000)
    assert len(records) == 4000
    problems = [p for r in records for p in record_problems(r)]
    assert problems == []
    seen = Counter(BY_CATEGORY[r["category"]] for r in records)
    if mix is UNIFORM:  # DEFAULT_MIX's rarest tables are a few in 10,000 records: see the decoder's test
        assert set(seen) == set(TABLES), "every table is produced"
    assert seen == Counter(gen.manifest.valid) - Counter()


def test_every_table_has_a_record_builder_and_a_template_from_its_sample() -> None:
    gen = generator(2)
    for table in TABLES:
        record = gen.record(table)
        assert record["category"] == SCHEMAS[table].category and record_problems(record) == []
        props = record["properties"]
        if table in SAMPLES:  # the captured record's columns keep its order
            sample_keys = list(SAMPLES[table]["properties"])
            assert [k for k in props if k in sample_keys] == [k for k in sample_keys if k in props]
        else:  # IdentityDirectoryEvents: every stream column of its schema, in the schema's order
            stream_columns = [c.name for c in SCHEMAS[table].columns if c.origin == "stream"]
            assert list(props) == stream_columns


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**63), devices=st.integers(min_value=1, max_value=400))
def test_any_seed_and_pool_size_gives_valid_records(seed: int, devices: int) -> None:
    gen = TrafficGenerator(seed, mix=UNIFORM, devices=devices, start_time=START)
    for table in TABLES:
        for _ in range(4):
            record = gen.record(table)
            assert record["category"] == SCHEMAS[table].category
            assert record_problems(record) == []


def test_timing_is_consistent_between_event_receipt_and_publish() -> None:
    gen = generator(9, mix=UNIFORM)
    previous: dict[str, datetime] = {}
    last = START
    for i in range(3000):
        table = TABLES[i % len(TABLES)]
        record = gen.record(table)
        stamp = parse_dt(record["properties"]["Timestamp"])
        received, published = parse_dt(record["_TimeReceivedBySvc"]), parse_dt(record["time"])
        assert stamp >= START and stamp >= previous.get(table, START), "each table's event clock advances"
        assert timedelta(seconds=8) <= received - stamp <= timedelta(minutes=5, seconds=1)
        assert timedelta(seconds=90) <= published - received <= timedelta(seconds=150)
        previous[table], last = stamp, max(last, stamp)
    assert timedelta(seconds=3) < last - START < timedelta(seconds=15), "about 400 events/s for 200 devices"


def test_timestamps_have_the_precision_of_their_tables_captured_records() -> None:
    gen = generator(10, mix=UNIFORM)
    for table in XDR_TABLES:
        if table not in SAMPLES:
            continue
        digits = len(SAMPLES[table]["properties"]["Timestamp"].rstrip("Z").partition(".")[2])
        for _ in range(40):
            fraction = gen.record(table)["properties"]["Timestamp"].rstrip("Z").partition(".")[2]
            assert len(fraction) <= digits, (table, fraction)


def test_report_ids_are_ticks_for_inventory_tables_and_counters_for_events() -> None:
    gen = generator(4)
    for table in ("DeviceInfo", "DeviceNetworkInfo"):
        for _ in range(50):
            record = gen.record(table)
            report_id = record["properties"]["ReportId"]
            assert len(str(report_id)) == 18 and report_id > 2**53
            received = parse_dt(record["_TimeReceivedBySvc"])
            ticks = (received - datetime(1, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 10
            assert abs(report_id - ticks) < 10, "ReportId is the .NET tick count of the receive time"
    per_device: dict[str, list[int]] = {}
    for _ in range(3000):
        props = gen.record("DeviceNetworkEvents")["properties"]
        per_device.setdefault(props["DeviceId"], []).append(props["ReportId"])
    assert all(0 < ids[0] < 10**6 and ids == sorted(set(ids)) for ids in per_device.values())
    report_ids = [gen.record(t)["properties"].get("ReportId") for t in XDR_TABLES for _ in range(30)]
    strings = [r for r in report_ids if r is not None]
    assert all(isinstance(r, str) for r in strings) and len(set(strings)) == len(strings), "unique string keys"


def test_records_vary_from_their_templates_but_keep_a_stable_device_pool() -> None:
    gen = generator(2, devices=50)
    for table in DEVICE_TABLES:
        sample = SAMPLES[table]["properties"]
        records = [gen.record(table)["properties"] for _ in range(200)]
        assert len({r["Timestamp"] for r in records}) == 200
        assert sample["DeviceId"] not in {r["DeviceId"] for r in records}
        devices = {(r["DeviceId"], r["DeviceName"]) for r in records}
        assert 5 <= len(devices) <= 50
        assert len({d for d, _ in devices}) == len(devices), "one name per DeviceId"
        assert all("." in name for _, name in devices), "device names are FQDNs"
        if "InitiatingProcessSHA1" in sample:
            assert sample["InitiatingProcessSHA1"] not in {r.get("InitiatingProcessSHA1") for r in records}
            assert len({r.get("InitiatingProcessCommandLine") for r in records}) > 20
    file_hashes = {gen.record("DeviceFileEvents")["properties"].get("SHA256") for _ in range(300)}
    assert len(file_hashes) > 200
    for table in XDR_TABLES:
        records = [gen.record(table)["properties"] for _ in range(100)]
        distinct = {json.dumps(r, sort_keys=True) for r in records}
        assert len(distinct) == 100, table
        if table in SAMPLES:
            sample_ids = {v for v in SAMPLES[table]["properties"].values() if isinstance(v, str) and GUID.match(v)}
            assert not sample_ids & values(records, *records[0]), f"{table} reuses an id of its captured record"


def test_null_patterns_follow_the_templates() -> None:
    gen = generator(8, mix=UNIFORM)
    explicit_nulls = omitted = optional_dropped = total = 0
    fill_rates: list[float] = []
    windows_version_info: list[bool] = []
    # Process and account facts depend on the device's OS (most templates are macOS captures, where Windows
    # version info is null); the other template-null columns are the ones that must stay mostly null.
    os_facts = ("InitiatingProcess", "Process", "Account", "CreatedProcess")
    for table in DEVICE_TABLES:
        sample = SAMPLES[table]["properties"]
        template_nulls = [k for k, v in sample.items() if v is None and not k.startswith(os_facts)]
        optional = [k for k, v in sample.items() if v is not None and k not in SCHEMAS[table].required]
        filled: Counter[str] = Counter()
        for _ in range(300):
            props = gen.record(table)["properties"]
            total += 1
            explicit_nulls += any(v is None for v in props.values())
            omitted += any(k not in props for k, v in sample.items() if v is None)
            optional_dropped += any(props.get(k) is None for k in optional)
            filled.update(k for k in template_nulls if props.get(k) is not None)
            if str(props.get("InitiatingProcessFolderPath", "")).startswith("c:\\windows\\system32\\"):
                windows_version_info.append(props.get("InitiatingProcessVersionInfoFileDescription") is not None)
        fill_rates += [filled[k] / 300 for k in template_nulls]
    assert 0.3 < explicit_nulls / total < 0.95, "most devices carry explicit nulls, some omit them"
    assert 0.05 < omitted / total < 0.6
    assert 0.05 < optional_dropped / total < 0.7, "optional columns go null or missing sometimes"
    assert statistics.mean(fill_rates) < 0.25 and statistics.median(fill_rates) < 0.25
    assert max(fill_rates) < 0.7, "columns null in the template stay mostly null"
    assert len(windows_version_info) > 100 and statistics.mean(windows_version_info) > 0.8
    for table in XDR_TABLES:  # as their captured records: explicit nulls, every template column present
        keys = set(SAMPLES[table]["properties"]) if table in SAMPLES else set()
        found = [gen.record(table)["properties"] for _ in range(50)]
        assert all(keys <= set(props) for props in found) and any(None in p.values() for p in found), table


# ---- the links between tables --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def linked() -> dict[str, list[dict[str, Any]]]:
    """One stream of every table, as a hunter sees it, by table: DEFAULT_MIX with a fifth of its Device share (the
    other tables' rows are then frequent enough in 25,000 records) from 40 devices (each seen in the Device rows)."""
    mix = {t: w * (0.2 if t in DEVICE_TABLES else 1.0) for t, w in DEFAULT_MIX.items()}
    return by_table(stream(generator(31, mix=mix, devices=40), 25_000))


def test_mail_rows_share_their_message_across_the_mail_tables(linked: dict[str, list[dict[str, Any]]]) -> None:
    events = linked["EmailEvents"]
    messages: dict[str, list[dict[str, Any]]] = {}
    for row in events:
        messages.setdefault(row["NetworkMessageId"], []).append(row)
    assert len(messages) > 300 and len(events) > len(messages), "messages with several recipients"
    for rows in messages.values():
        assert len({(r["Subject"], r["SenderFromAddress"], r["UrlCount"]) for r in rows}) == 1
        recipients = [r["RecipientEmailAddress"] for r in rows]
        assert len(set(recipients)) == len(recipients) and set(recipients) <= set(rows[0]["To"])
    for table in ("EmailUrlInfo", "EmailAttachmentInfo", "EmailPostDeliveryEvents"):
        rows = linked[table]
        assert rows and {r["NetworkMessageId"] for r in rows} <= set(messages), f"{table} row of no EmailEvents"
    urls: dict[str, set[str]] = {}
    for row in linked["EmailUrlInfo"]:
        urls.setdefault(row["NetworkMessageId"], set()).add(row["Url"])
        assert row["UrlDomain"] in row["Url"]
    assert all(len(found) <= messages[nmid][0]["UrlCount"] for nmid, found in urls.items())
    for row in linked["EmailAttachmentInfo"]:
        (first, *_) = messages[row["NetworkMessageId"]]
        assert first["AttachmentCount"] >= 1 and row["SenderFromAddress"] == first["SenderFromAddress"]
        assert row["RecipientEmailAddress"] in first["To"]
    for row in linked["EmailPostDeliveryEvents"]:
        assert row["RecipientEmailAddress"] in messages[row["NetworkMessageId"]][0]["To"]


def test_url_clicks_follow_urls_the_mail_carried_to_their_recipients(linked: dict[str, list[dict[str, Any]]]) -> None:
    carried = {(r["NetworkMessageId"], r["Url"]) for r in linked["EmailUrlInfo"]}
    to = {r["NetworkMessageId"]: set(r["To"]) for r in linked["EmailEvents"]}
    clicks = linked["UrlClickEvents"]
    assert len(clicks) > 50
    for click in clicks:
        assert (click["NetworkMessageId"], click["Url"]) in carried
        assert click["AccountUpn"] in to[click["NetworkMessageId"]], "the clicker received the message"
        assert json.loads(click["UrlChain"])[0] == click["Url"]


def test_alert_evidence_points_at_its_alert_and_at_the_world(linked: dict[str, list[dict[str, Any]]]) -> None:
    alerts = {a["AlertId"]: a for a in linked["AlertInfo"]}
    evidence = linked["AlertEvidence"]
    assert len(alerts) > 5 and len(evidence) > len(alerts)
    device = [row for t in DEVICE_TABLES for row in linked[t]]
    devices = {(r["DeviceId"], r["DeviceName"]) for r in device}
    hashes = values(device, "SHA1", "InitiatingProcessSHA1")
    sids = values(device, "AccountSid", "InitiatingProcessAccountSid")
    remote_ips = values(linked["DeviceNetworkEvents"], "RemoteIP")
    messages = values(linked["EmailEvents"], "NetworkMessageId")
    kinds: Counter[str] = Counter()
    for row in evidence:
        alert = alerts[row["AlertId"]]
        assert (row["Title"], row["Severity"], row["ServiceSource"]) == (
            alert["Title"],
            alert["Severity"],
            alert["ServiceSource"],
        )
        assert json.loads(row["Categories"]) == [alert["Category"]]
        entity = row["EntityType"]
        kinds[entity] += 1
        if entity == "Machine" or row.get("DeviceId"):
            assert (row["DeviceId"], row["DeviceName"]) in devices
        if entity in ("Process", "File"):
            assert row["SHA1"] in hashes and len(row["SHA256"]) == 64
        if entity in ("User", "Mailbox"):
            assert row["AccountSid"] in sids and row["AccountUpn"].endswith(".com")
        if entity == "MailMessage":
            assert row["NetworkMessageId"] in messages
        if entity == "Ip":
            assert row["RemoteIP"] in remote_ips
    assert {"Machine", "User"} <= set(kinds) and len(kinds) >= 5, kinds


def test_identity_and_cloud_app_rows_name_the_worlds_accounts_devices_and_domain_controllers(
    linked: dict[str, list[dict[str, Any]]],
) -> None:
    device_accounts = {(r.get("AccountName"), r.get("AccountSid")) for r in linked["DeviceLogonEvents"]} | {
        (r.get("InitiatingProcessAccountName"), r.get("InitiatingProcessAccountSid"))
        for t in DEVICE_TABLES
        for r in linked[t]
    }
    device_names = values([r for t in DEVICE_TABLES for r in linked[t]], "DeviceName")
    object_ids = values([r for t in DEVICE_TABLES for r in linked[t]], "InitiatingProcessAccountObjectId")
    identity = linked["IdentityLogonEvents"] + linked["IdentityQueryEvents"] + linked["IdentityDirectoryEvents"]
    named = [r for r in identity if r.get("AccountSid")]
    on_premises = [r for r in identity if r["Application"] == "Active Directory"]
    assert len(named) > 100 and len(on_premises) > 100

    def share(rows: list[dict[str, Any]], seen: Callable[[dict[str, Any]], bool]) -> float:
        return sum(map(seen, rows)) / len(rows)

    # A hunter joins them on the account and the device; a quiet device's user may not show in this stream's
    # Device rows, so most (not all) rows join. The domain controllers are the world's few, in every table.
    assert share(named, lambda r: (r["AccountName"], r["AccountSid"]) in device_accounts) > 0.95
    assert share(on_premises, lambda r: r["DeviceName"] in device_names) > 0.95
    assert share(linked["CloudAppEvents"], lambda r: r["AccountObjectId"] in object_ids) > 0.95
    assert share(linked["IdentityInfo"], lambda r: r["AccountObjectId"] in object_ids) > 0.9
    controllers = {r["DestinationDeviceName"] for r in on_premises}
    assert 2 <= len(controllers) <= 3 and all(name.startswith("dc") for name in controllers)
    assert controllers == {r["DestinationDeviceName"] for r in linked["IdentityQueryEvents"]}
    upns = values(named, "AccountUpn") | values(linked["IdentityInfo"], "AccountUpn")
    assert share(linked["IdentityDirectoryEvents"], lambda r: r["TargetAccountUpn"] in upns) > 0.95


def test_a_child_table_drawn_before_its_parent_draws_the_parent() -> None:
    gen = generator(12, mix={"EmailUrlInfo": 5.0, "EmailEvents": 0.01, "AlertEvidence": 5.0, "AlertInfo": 0.01})
    records = stream(gen, 400)
    tables = [BY_CATEGORY[r["category"]] for r in records]
    first = {t: tables.index(t) for t in set(tables)}
    assert first["EmailEvents"] < first["EmailUrlInfo"] and first["AlertInfo"] < first["AlertEvidence"]
    for child, parent in PARENTS.items():
        assert parent in SCHEMAS and child in SCHEMAS
    lonely = generator(12, mix={"UrlClickEvents": 1.0})  # no parent table in the mix: rows still valid
    assert all(record_problems(r) == [] for r in stream(lonely, 50))


# ---- the real decoder ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("envelope", ["records", "lines"])
def test_every_generated_record_decodes_into_a_row_and_only_the_invalid_ones_do_not(envelope: Any) -> None:
    gen = generator(17, mix=DEFAULT_MIX, invalid_rate=0.04)
    n = 15_000 if envelope == "records" else 4000
    decoder = MessageDecoder(load_schemas())
    rows: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    skipped = 0
    for body in gen.messages(records=n, envelope=envelope):
        result = decoder.decode(body)
        rows.update(row.table for row in result.rows)
        reasons.update(rejected.reason for rejected in result.rejected)
        skipped += result.skipped.total()
        assert not result.unknown_columns, result.unknown_columns
    manifest = gen.manifest
    assert rows == Counter(manifest.valid) - Counter()
    assert set(rows) == set(TABLES) or n < 15_000, "every table lands (its rarest are a few in 10,000 records)"
    expected = Counter({KIND_REASON[k]: n for k, n in manifest.invalid.items() if n and k in KIND_REASON})
    assert reasons == expected and skipped == manifest.skipped == manifest.invalid["unknown_category"]


# ---- type drift --------------------------------------------------------------------------------------------


def differing(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Columns whose values differ, by JSON spelling (`True` and `1` differ)."""
    return [k for k in before if json.dumps(before[k]) != json.dumps(after.get(k))]


def same_value(original: Any, drifted: Any, column_type: str) -> bool:
    """Whether `drifted` is one of Defender's spellings of `original` (docs/architecture.md, Type drift)."""
    if drifted == "" and column_type != "string":
        return original is None
    if column_type in ("int", "long"):
        return isinstance(drifted, str) and re.fullmatch(r"-?[0-9]+", drifted) is not None and int(drifted) == original
    if column_type == "boolean":
        spelled = {"0": False, "1": True, "true": True, "false": False, 0: False, 1: True}
        key = drifted.lower() if isinstance(drifted, str) else drifted
        return not isinstance(drifted, bool) and key in spelled and spelled[key] is original
    if column_type == "string":
        return isinstance(drifted, int | bool) and json.dumps(drifted) == original
    if column_type == "dynamic":
        return isinstance(drifted, str) and json.loads(drifted) == original
    return False


def test_drift_respells_one_value_of_the_drifted_records_and_nothing_else() -> None:
    rate, n = 0.1, 4000
    plain = stream(generator(41, mix=DEFAULT_MIX), n)
    gen = generator(41, mix=DEFAULT_MIX, drift_rate=rate)
    drifted = stream(gen, n)
    assert len(drifted) == n and gen.manifest.drift_rate == rate
    types = {t: {c.name: c.type for c in s.columns} for t, s in SCHEMAS.items()}
    changed: Counter[str] = Counter()
    for before, after in zip(plain, drifted, strict=True):
        assert {k: v for k, v in before.items() if k != "properties"} == {
            k: v for k, v in after.items() if k != "properties"
        }
        table = BY_CATEGORY[after["category"]]
        diff = differing(before["properties"], after["properties"])
        assert len(diff) <= 1 and set(before["properties"]) == set(after["properties"])
        if diff:
            (column,) = diff
            assert column not in SCHEMAS[table].required
            assert same_value(before["properties"][column], after["properties"][column], types[table][column]), (
                table,
                column,
                before["properties"][column],
                after["properties"][column],
            )
            changed[table] += 1
    assert changed == Counter(gen.manifest.drifted) - Counter()
    assert abs(gen.manifest.drifted_records / n - rate) < 5 * (rate * (1 - rate) / n) ** 0.5
    assert generator(41, mix=DEFAULT_MIX).manifest.drifted_records == 0, "off by default"


def test_drifted_records_are_refused_only_for_their_drifted_value_or_land_converted() -> None:
    """Until the decoder converts Defender's spellings a drifted record is refused naming its drifted column; once
    it does, the record lands. Either way, every record without drift lands."""
    plain = stream(generator(43, mix=DEFAULT_MIX), 2000)
    drifted = stream(generator(43, mix=DEFAULT_MIX, drift_rate=0.2), 2000)
    decoder = MessageDecoder(load_schemas())
    landed = refused = 0
    for before, after in zip(plain, drifted, strict=True):
        result = decoder.decode(json.dumps({"records": [after]}).encode())
        diff = differing(before["properties"], after["properties"])
        if not diff:
            assert len(result.rows) == 1, result.rejected
        elif result.rows:
            landed += 1
        else:
            (rejected,) = result.rejected
            assert rejected.reason in ("invalid_type", "invalid_value") and diff[0] in rejected.detail
            refused += 1
    assert landed + refused > 300


# ---- sizes and mix ------------------------------------------------------------------------------------------


def test_record_sizes_track_the_samples_and_have_a_tail() -> None:
    gen = generator(6, mix=UNIFORM)
    sizes = {t: [compact_size(gen.record(t)) for _ in range(400)] for t in TABLES}
    for table, found in sizes.items():
        if table not in SAMPLES:
            continue
        ratio = statistics.mean(found) / compact_size(SAMPLES[table])
        assert 0.6 < ratio < 1.8, f"{table}: mean {statistics.mean(found):.0f} B, ratio {ratio:.2f} to the sample"
    process = sorted(sizes["DeviceProcessEvents"])
    assert 3500 < statistics.mean(process) < 5500
    assert process[-1] > 2 * process[len(process) // 2], "long PowerShell command lines make a tail"
    assert statistics.mean(sizes["DeviceInfo"]) < statistics.mean(sizes["DeviceNetworkEvents"])
    assert 500 < statistics.mean(sizes["IdentityDirectoryEvents"]) < 2500
    for mix in (DEVICE_MIX, DEFAULT_MIX):
        default = generator(6, mix=mix)
        total = sum(len(body) for body in default.messages(records=5000, records_per_message=(1, 1)))
        assert 1500 < total / 5000 < 3000


@pytest.mark.parametrize("mix", [DEFAULT_MIX, DEVICE_MIX], ids=["all", "device"])
def test_mix_proportions_are_honoured(mix: dict[str, float]) -> None:
    n = 20_000
    gen = generator(12, mix=mix)
    list(gen.messages(records=n))
    share = {t: k / n for t, k in gen.manifest.valid.items()}
    weight = sum(mix.values())
    assert set(share) == set(mix)
    for table, w in mix.items():
        expected = w / weight
        tolerance = 5 * (expected * (1 - expected) / n) ** 0.5 + 0.001
        assert abs(share[table] - expected) < tolerance, (table, share[table], expected)
    skewed = generator(12, mix={"DeviceProcessEvents": 3, "DeviceNetworkEvents": 1, "DeviceInfo": 0})
    list(skewed.messages(records=4000))
    assert set(skewed.manifest.valid) == {"DeviceProcessEvents", "DeviceNetworkEvents"}
    assert 2.6 < skewed.manifest.valid["DeviceProcessEvents"] / skewed.manifest.valid["DeviceNetworkEvents"] < 3.4


def test_unknown_table_in_the_mix_names_the_valid_tables() -> None:
    with pytest.raises(ValueError, match="AlertEvidence, AlertInfo") as info:
        TrafficGenerator(1, mix={"DeviceFoo": 1.0})
    assert all(t in str(info.value) for t in TABLES)


# ---- invalid records and the manifest ----------------------------------------------------------------------


@pytest.mark.parametrize("envelope", ["records", "lines"])
def test_invalid_records_come_at_the_requested_rate_and_the_manifest_matches(envelope: Any) -> None:
    rate, n = 0.2, 9000
    gen = generator(21, mix=DEFAULT_MIX, invalid_rate=rate)
    bodies = list(gen.messages(records=n, envelope=envelope))
    manifest = gen.manifest
    assert tally(bodies, envelope) == expected_tally(manifest)
    assert manifest.records == n == manifest.valid_records + manifest.invalid_records
    assert manifest.messages == len(bodies) and manifest.raw_bytes == sum(map(len, bodies))
    assert manifest.skipped == manifest.invalid["unknown_category"]
    assert manifest.dead_letter_records == manifest.invalid_records - manifest.skipped
    sd = (rate * (1 - rate) / n) ** 0.5
    assert abs(manifest.invalid_records / n - rate) < 5 * sd
    per_kind = rate / len(INVALID_KINDS)
    for kind in INVALID_KINDS:
        assert abs(manifest.invalid[kind] / n - per_kind) < 5 * (per_kind / n) ** 0.5 + 0.002, kind
    if envelope == "records":
        broken = [b for b in bodies if records_of(b, "records") == [b]]
        assert len(broken) == manifest.invalid["malformed_json"], "a truncated record travels alone"
        assert all(b.startswith(b'{"records":[{') for b in broken)
    document = json.loads(manifest.to_json())
    assert document["invalid"] == manifest.invalid and document["valid_records"] == manifest.valid_records


@pytest.mark.parametrize("kind", INVALID_KINDS)
def test_each_invalid_kind_is_what_it_claims(kind: Any) -> None:
    gen = generator(30, mix=DEFAULT_MIX, invalid_rate=1.0, invalid_kinds=[kind])
    bodies = list(gen.messages(records=240, envelope="lines"))
    assert tally(bodies, "lines") == Counter({("invalid", kind): 240})
    assert gen.manifest.valid_records == 0 and gen.manifest.invalid[kind] == 240
    if kind == "unknown_category":
        assert gen.manifest.skipped == 240 and gen.manifest.dead_letter_records == 0
    else:
        assert gen.manifest.skipped == 0 and gen.manifest.dead_letter_records == 240


def test_zero_invalid_rate_gives_only_valid_records() -> None:
    gen = generator(31, mix=DEFAULT_MIX)
    bodies = list(gen.messages(records=2000))
    assert gen.manifest.invalid_records == 0 and gen.manifest.valid_records == 2000
    assert all(kind == "valid" for kind, _ in tally(bodies, "records"))


# ---- message bodies -----------------------------------------------------------------------------------------


def test_messages_stay_under_the_event_hubs_limit_by_closing_early() -> None:
    gen = generator(13)
    bodies = list(gen.messages(records=2400, records_per_message=(800, 1200)))
    assert all(len(b) < MAX_MESSAGE_BYTES for b in bodies)
    assert max(len(b) for b in bodies) > 0.9 * MAX_MESSAGE_BYTES, "messages fill up to the limit"
    counts = [len(json.loads(b)["records"]) for b in bodies]
    assert sum(counts) == 2400 and min(counts[:-1]) < 800, "closed before the drawn record count"


def test_records_envelope_mixes_tables_and_respects_records_per_message() -> None:
    gen = generator(14)
    bodies = list(gen.messages(50, records_per_message=(3, 7)))
    assert len(bodies) == 50 == gen.manifest.messages
    documents = [json.loads(b) for b in bodies]
    assert all(set(d) == {"records"} and 3 <= len(d["records"]) <= 7 for d in documents)
    assert any(len({r["category"] for r in d["records"]}) > 1 for d in documents)
    assert gen.manifest.records == sum(len(d["records"]) for d in documents)


def test_lines_envelope_is_one_record_per_line() -> None:
    gen = generator(15)
    bodies = list(gen.messages(records=500, records_per_message=(5, 9), envelope="lines"))
    lines = [line for body in bodies for line in body.split(b"\n")]
    assert len(lines) == 500 == gen.manifest.records
    assert all(not body.endswith(b"\n") and 1 <= body.count(b"\n") + 1 <= 9 for body in bodies)
    assert all(record_problems(json.loads(line)) == [] for line in lines)


def test_bad_arguments_are_refused() -> None:
    gen = generator(1)
    for kwargs in ({}, {"records": 5, "records_per_message": (0, 3)}, {"records": 5, "envelope": "xml"}):
        with pytest.raises(ValueError):
            next(gen.messages(**kwargs))
    with pytest.raises(ValueError, match="valid tables"):
        gen.record("DeviceAlerts")
    for kwargs in (
        {"invalid_rate": 1.5},
        {"drift_rate": -0.1},
        {"devices": 0},
        {"mix": {"DeviceInfo": -1.0}},
        {"invalid_kinds": ["x"]},
    ):
        with pytest.raises(ValueError):
            TrafficGenerator(1, **kwargs)


# ---- writers and the command line ---------------------------------------------------------------------------


def test_write_file_lines_is_a_storage_export_and_records_is_one_message_per_line(tmp_path: Path) -> None:
    gen = generator(17)
    path = tmp_path / "export.jsonl"
    assert write_file(path, gen.messages(records=300, envelope="lines")) == gen.manifest.messages
    lines = path.read_bytes().splitlines()
    assert len(lines) == 300 and all(record_problems(json.loads(line)) == [] for line in lines)
    gen = generator(17)
    path = tmp_path / "messages.ndjson"
    assert write_file(path, gen.messages(40)) == 40
    lines = path.read_bytes().splitlines()
    assert len(lines) == 40 and sum(len(json.loads(line)["records"]) for line in lines) == gen.manifest.records


def test_cli_writes_file_and_manifest_and_is_deterministic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def generate(name: str) -> tuple[bytes, dict[str, Any]]:
        out, manifest = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.manifest.json"
        args = ["--seed", "5", "--events", "700", "--envelope", "lines", "--invalid-rate", "0.1", "--devices", "30"]
        args += [
            "--mix",
            "DeviceProcessEvents=30,DeviceNetworkEvents=25,DeviceInfo=1",
            "--start-time",
            START.isoformat(),
        ]
        assert run([*args, "--records-per-message", "2-6", "--out", str(out), "--manifest", str(manifest)]) == 0
        return out.read_bytes(), json.loads(manifest.read_text())

    data, manifest = generate("a")
    assert (data, manifest) == generate("b")
    lines = data.splitlines()
    assert len(lines) == 700 == manifest["records"]
    counts = Counter(classify(line) for line in lines)
    assert counts == Counter(
        {("valid", t): n for t, n in manifest["valid"].items() if n}
        | {("invalid", k): n for k, n in manifest["invalid"].items() if n}
    )
    assert set(manifest["valid"]) == {"DeviceProcessEvents", "DeviceNetworkEvents", "DeviceInfo"}
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert summary.startswith("generated 700 records") and f"{manifest['messages']} messages" in summary
    assert "DeviceProcessEvents=" in summary and " MB " in summary


def test_cli_generates_every_table_by_default_and_the_device_tables_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def generate(*extra: str) -> dict[str, Any]:
        out, manifest = tmp_path / "out.jsonl", tmp_path / "manifest.json"
        args = ["--seed", "4", "--events", "15000", "--start-time", START.isoformat(), *extra]
        assert run([*args, "--out", str(out), "--manifest", str(manifest)]) == 0
        return dict(json.loads(manifest.read_text()))

    everything = generate()
    assert {t for t, n in everything["valid"].items() if n} == set(TABLES)
    assert everything["drift_rate"] == 0 and everything["drifted_records"] == 0
    assert {t for t, n in generate("--mix", "device", "--events", "3000")["valid"].items() if n} == set(DEVICE_TABLES)
    drifted = generate("--mix", "all", "--drift-rate", "0.05", "--events", "5000")
    assert drifted["drift_rate"] == 0.05 and 150 < drifted["drifted_records"] < 350
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{drifted['drifted_records']} valid with type drift" in summary
    help_text = build_help()
    assert "--drift-rate" in help_text and "device" in help_text and "IdentityLogonEvents" in help_text


def build_help() -> str:
    from ingestor_tools.generate.cli import build_parser

    return build_parser().format_help()


def test_cli_unknown_table_in_mix_fails_naming_the_valid_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never.jsonl"
    assert run(["--mix", "DeviceProcessEvents=3,DeviceFoo=1", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "DeviceFoo" in error and all(t in error for t in TABLES)
    assert not out.exists()


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--topic", "t"],
        ["--out", "x", "--bootstrap-servers", "h:1", "--topic", "t"],
        ["--out", "x", "--partitions", "3"],
        ["--out", "x", "--records-per-message", "9-2"],
        ["--out", "x", "--invalid-rate", "2"],
        ["--out", "x", "--drift-rate", "-1"],
        ["--out", "x", "--mix", "devices"],
        ["--out", "x", "--events", "5", "--messages", "5"],
    ],
)
def test_cli_refuses_inconsistent_options(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(args) == 2
    assert "usage: ingestor generate" in capsys.readouterr().err


# ---- a real broker ------------------------------------------------------------------------------------------


async def consume_all(bootstrap: str, topic: str, expected: int, within: float = 60.0) -> dict[int, list[bytes]]:
    """Every message on `topic` by partition; polls until `expected` messages arrived (counts, not offsets)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    got: dict[int, list[bytes]] = {}
    try:
        deadline = time.monotonic() + within
        while sum(map(len, got.values())) < expected and time.monotonic() < deadline:
            for tp, messages in (await consumer.getmany(timeout_ms=500)).items():
                got.setdefault(tp.partition, []).extend(m.value for m in messages if m.value is not None)
        assert sum(map(len, got.values())) == expected, f"consumed {sum(map(len, got.values()))} of {expected}"
    finally:
        await consumer.stop()
    return got


async def test_produce_to_a_real_broker_and_read_everything_back(kafka_bootstrap: str) -> None:
    topic = f"generate-{uuid.uuid4().hex[:8]}"
    gen = generator(40, invalid_rate=0.05)
    bodies = list(gen.messages(records=3000))
    assert await produce_kafka(kafka_bootstrap, topic, bodies, partitions=3) == len(bodies) == gen.manifest.messages
    by_partition = await consume_all(kafka_bootstrap, topic, len(bodies))
    assert sorted(by_partition) == [0, 1, 2]
    sizes = [len(v) for v in by_partition.values()]
    assert max(sizes) - min(sizes) <= 1, "round-robin over partitions"
    consumed = [body for values in by_partition.values() for body in values]
    assert sorted(consumed) == sorted(bodies)
    assert tally(consumed, "records") == expected_tally(gen.manifest)
    again = generator(41)
    more = list(again.messages(records=200))
    assert await produce_kafka(kafka_bootstrap, topic, more) == len(more), "an existing topic is reused"
    assert sum(map(len, (await consume_all(kafka_bootstrap, topic, len(bodies) + len(more))).values())) == len(
        bodies
    ) + len(more)


def test_cli_produces_to_a_real_broker(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = f"generate-cli-{uuid.uuid4().hex[:8]}"
    manifest_path = tmp_path / "manifest.json"
    args = ["--seed", "3", "--events", "800", "--invalid-rate", "0.1", "--envelope", "lines", "--partitions", "2"]
    args += ["--bootstrap-servers", kafka_bootstrap, "--topic", topic, "--manifest", str(manifest_path)]
    assert run(args) == 0
    manifest = json.loads(manifest_path.read_text())
    by_partition = asyncio.run(consume_all(kafka_bootstrap, topic, manifest["messages"]))
    assert sorted(by_partition) == [0, 1]
    consumed = [body for values in by_partition.values() for body in values]
    assert sum(map(len, consumed)) == manifest["raw_bytes"]
    counts = tally(consumed, "lines")
    assert sum(counts.values()) == 800 == manifest["records"]
    assert counts[("invalid", "unknown_category")] == manifest["skipped"]
    assert sum(n for (kind, _), n in counts.items() if kind == "valid") == manifest["valid_records"]
