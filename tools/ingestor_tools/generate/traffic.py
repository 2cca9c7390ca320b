"""Seeded, deterministic synthetic Defender Streaming API records and message bodies, with a `Manifest`.

Record shapes come from the captured samples in `ingestor_tools/samples/` (IdentityDirectoryEvents, of which no
public record exists, from its schema), column types from `ingestor.tables`. Values are typed as the schema says;
`drift_rate` makes that share of the valid records carry one value in another of Defender's own spellings
(`docs/architecture.md`, Type drift), drawn from a separate random stream so the records are otherwise the same.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ingestor.tables import TableSchema, load_schemas
from ingestor_tools import SAMPLES_DIR
from ingestor_tools.generate import pools
from ingestor_tools.generate.builders import CHILD_COLUMNS, INITIATING
from ingestor_tools.generate.manifest import (
    ENVELOPES,
    INVALID_KINDS,
    MAX_MESSAGE_BYTES,
    Envelope,
    InvalidKind,
    Manifest,
)
from ingestor_tools.generate.world import TICKS, Device, Proc
from ingestor_tools.generate.xdr_builders import XdrBuilders

# The ten Device tables alone, as a realistic endpoint fleet produces them: network, file, image-load, registry
# and process events dominate; device inventory (DeviceInfo, DeviceNetworkInfo) and certificate info are rare.
# The benchmark's `--mix device` and `TrafficGenerator`'s default: the traffic every figure before issue 21 used.
DEVICE_MIX: dict[str, float] = {
    "DeviceNetworkEvents": 27.0,
    "DeviceFileEvents": 20.0,
    "DeviceImageLoadEvents": 16.0,
    "DeviceProcessEvents": 13.0,
    "DeviceRegistryEvents": 13.0,
    "DeviceEvents": 7.5,
    "DeviceLogonEvents": 2.5,
    "DeviceFileCertificateInfo": 0.7,
    "DeviceNetworkInfo": 0.2,
    "DeviceInfo": 0.1,
}
# Every table the Streaming API exports, in records per 100: the default of `ingestor generate` and `make demo`.
# Source: none found. No public per-table volume of one real tenant that covers the non-Device tables turned up
# (Microsoft's Streaming API and Sentinel connector pages give none; community sizing posts give the Device tables
# or screenshots only), so these are estimates, and docs/development.md says so where it lists the generator. The
# Device tables keep DEVICE_MIX's proportions (86% of the records); the rest follow how each table's rows arise in
# a tenant of about 1,000 seats: CloudAppEvents (an audit record per Exchange, SharePoint, OneDrive and Teams
# action of every user) is the largest of them; EmailEvents has a row per recipient of each message, EmailUrlInfo
# one per URL in it and EmailAttachmentInfo one per attachment (the generated messages have 1.5 recipients, 1.8
# URLs and 0.3 attachments on average, and these weights use up what they carry); clicks and post-delivery actions
# follow a small share of messages; IdentityLogonEvents and IdentityQueryEvents are per sign-in and per directory
# query at the domain controllers; IdentityInfo is a row per account change; alerts are rare, with 2.7 evidence
# rows each.
DEFAULT_MIX: dict[str, float] = {
    **{table: round(weight * 0.86, 4) for table, weight in DEVICE_MIX.items()},
    "CloudAppEvents": 6.0,
    "EmailEvents": 1.6,
    "EmailUrlInfo": 1.9,
    "EmailAttachmentInfo": 0.33,
    "EmailPostDeliveryEvents": 0.05,
    "UrlClickEvents": 0.15,
    "IdentityLogonEvents": 1.6,
    "IdentityQueryEvents": 0.7,
    "IdentityDirectoryEvents": 0.1,
    "IdentityInfo": 0.05,
    "AlertInfo": 0.02,
    "AlertEvidence": 0.055,
}
MIXES: dict[str, dict[str, float]] = {"all": DEFAULT_MIX, "device": DEVICE_MIX}
# A child table's rows point at rows of its parent: while no parent row was emitted yet, `messages()` draws the
# parent table instead (see xdr_builders), so every link in a stream points at a row of the same stream.
PARENTS: dict[str, str] = {
    "EmailUrlInfo": "EmailEvents",
    "EmailAttachmentInfo": "EmailEvents",
    "EmailPostDeliveryEvents": "EmailEvents",
    "UrlClickEvents": "EmailUrlInfo",
    "AlertEvidence": "AlertInfo",
}
DRIFT_TYPES = frozenset({"int", "long", "real", "boolean", "datetime", "guid", "dynamic", "string"})


def load_samples() -> dict[str, dict[str, Any]]:
    """The captured record of each table that has one, from `ingestor_tools/samples/<Table>.json`."""
    return {
        table: json.loads(path.read_text(encoding="utf-8"))[0]
        for table in load_schemas()
        if (path := SAMPLES_DIR / f"{table}.json").exists()
    }


def is_json_text(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


@dataclass(slots=True)
class _Plan:
    table: str
    schema: TableSchema
    category: str
    template: dict[str, Any]
    proc_keys: tuple[str, ...]  # initiating-process columns the template carries
    proc_extra: tuple[str, ...]  # initiating-process columns the schema has but the template lacks
    optional: tuple[str, ...]  # non-null template columns that may go null
    nulls: tuple[str, ...]  # null template columns with no builder, filled rarely
    typed: tuple[str, ...]  # int, long and boolean columns a wrong_type record may break
    strings: tuple[str, ...]
    build: Callable[[dict[str, Any], Device, Proc | None, int, int], None]
    device: bool  # a Device table: its rows name a device (DeviceId, DeviceName are required)
    digits: int  # fractional digits of Timestamp in the table's captured record (non-Device tables)
    drift: tuple[tuple[str, str], ...]  # (column, type) that drift may respell: stream columns, none required


class TrafficGenerator(XdrBuilders):
    """Realistic, seeded Defender Streaming API traffic for every table of the schemas.

    `mix` (table -> weight) defaults to DEVICE_MIX, the ten Device tables (what tests and benchmarks that key rows
    by ReportId + DeviceName + Timestamp rely on); pass DEFAULT_MIX for all tables. The same seed, mix, device
    count, start time and drift rate give byte-identical output. `record()` builds one valid record;
    `messages()` builds Event Hubs / Kafka message bodies and accumulates `manifest`.
    """

    def __init__(
        self,
        seed: int,
        mix: dict[str, float] | None = None,
        devices: int = 200,
        start_time: datetime | None = None,
        invalid_rate: float = 0.0,
        *,
        invalid_kinds: Sequence[InvalidKind] = INVALID_KINDS,
        events_per_second: float | None = None,
        drift_rate: float = 0.0,
    ) -> None:
        self.schemas = load_schemas()
        mix = dict(DEVICE_MIX if mix is None else mix)
        unknown = sorted(set(mix) - set(self.schemas))
        if unknown:
            raise ValueError(f"unknown tables {unknown}; valid tables: {', '.join(sorted(self.schemas))}")
        if any(w < 0 or not math.isfinite(w) for w in mix.values()) or sum(mix.values()) <= 0:
            raise ValueError("mix weights must be finite, non-negative and not all zero")
        if devices < 1:
            raise ValueError("devices must be at least 1")
        if not 0.0 <= invalid_rate <= 1.0:
            raise ValueError("invalid_rate must be between 0 and 1")
        if not 0.0 <= drift_rate <= 1.0:
            raise ValueError("drift_rate must be between 0 and 1")
        bad_kinds = sorted(set(invalid_kinds) - set(INVALID_KINDS))
        if bad_kinds or not invalid_kinds:
            raise ValueError(f"invalid kinds must be a non-empty subset of {INVALID_KINDS}, not {bad_kinds}")
        start = start_time or datetime.now(UTC)
        start = (start if start.tzinfo else start.replace(tzinfo=UTC)).astimezone(UTC)
        super().__init__(seed, devices, start, events_per_second)
        self.mix = {t: w for t, w in mix.items() if w > 0}
        self.invalid_rate = invalid_rate
        self.invalid_kinds = tuple(invalid_kinds)
        self.drift_rate = drift_rate
        self._drift_r = random.Random(f"drift-{seed}").random  # apart from the records' stream
        self._drifted = False
        self._tables = tuple(self.mix)
        self._table_cum = self._cumulative(self.mix.values())
        self.manifest = Manifest(seed, self._iso(self._clock), devices, invalid_rate, drift_rate=drift_rate)
        self.manifest.valid = dict.fromkeys(self._tables, 0)
        self.manifest.valid_bytes = dict.fromkeys(self._tables, 0)
        self.manifest.drifted = dict.fromkeys(self._tables, 0)
        self._plans = self._build_plans()
        known = {schema.category for schema in self.schemas.values()}
        self._alien_categories = tuple(c for c in pools.ALIEN_CATEGORIES if c not in known)
        if not self._alien_categories:
            raise ValueError("every category in pools.ALIEN_CATEGORIES is a table of the schemas")

    def _view(self, proc: Proc, plan: _Plan, full: bool) -> dict[str, Any]:
        key = (plan.table, full)
        view = proc.views.get(key)
        if view is None:
            keys = plan.proc_keys + plan.proc_extra if full else plan.proc_keys
            view = proc.views[key] = {k: proc.fields[k] for k in keys}
        return view

    # ---- plans --------------------------------------------------------------------------------------

    def _build_plans(self) -> dict[str, _Plan]:
        samples = load_samples()
        builders: dict[str, Callable[[dict[str, Any], Device, Proc | None, int, int], None]] = {
            "DeviceEvents": self._b_events,
            "DeviceFileCertificateInfo": self._b_cert,
            "DeviceFileEvents": self._b_file,
            "DeviceImageLoadEvents": self._b_image,
            "DeviceInfo": self._b_info,
            "DeviceLogonEvents": self._b_logon,
            "DeviceNetworkEvents": self._b_network,
            "DeviceNetworkInfo": self._b_netinfo,
            "DeviceProcessEvents": self._b_process,
            "DeviceRegistryEvents": self._b_registry,
            "AlertEvidence": self._b_alert_evidence,
            "AlertInfo": self._b_alert_info,
            "CloudAppEvents": self._b_cloud_app,
            "EmailAttachmentInfo": self._b_email_attachment,
            "EmailEvents": self._b_email,
            "EmailPostDeliveryEvents": self._b_email_post_delivery,
            "EmailUrlInfo": self._b_email_url,
            "IdentityDirectoryEvents": self._b_identity_directory,
            "IdentityInfo": self._b_identity_info,
            "IdentityLogonEvents": self._b_identity_logon,
            "IdentityQueryEvents": self._b_identity_query,
            "UrlClickEvents": self._b_url_click,
        }
        missing = sorted(set(self.schemas) - set(builders))
        if missing:
            raise ValueError(f"no record builder for tables {missing}")
        # Columns each builder always sets; the rest of the null template columns get a rare typed value.
        built = {
            "AdditionalFields",
            "ReportId",
            "Timestamp",
            "DeviceId",
            "DeviceName",
            "MachineGroup",
            "ActionType",
            "RemoteUrl",
            "FileOriginUrl",
            "FileOriginIP",
            "FileOriginReferrerUrl",
            "RequestSourceIP",
            "RequestSourcePort",
            "ShareName",
            "SensitivityLabel",
            "SensitivitySubLabel",
            "IsAzureInfoProtectionApplied",
            "RemoteIP",
            "RemotePort",
            "RemoteDeviceName",
            "RemoteIPType",
            "FailureReason",
            "Protocol",
            "IsLocalAdmin",
            "LogonId",
            "CertificateCountersignatureTime",
            "OSBuild",
            "IsInternetFacing",
            "ConnectedNetworks",
            "DnsAddresses",
            "DefaultGateways",
            "IPv4Dhcp",
            "IPv6Dhcp",
            "NetworkAdapterVendor",
            "AppGuardContainerId",
            *CHILD_COLUMNS.values(),
        }
        plans = {}
        for table, schema in self.schemas.items():
            types = {c.name: c.type for c in schema.input_columns if c.origin == "stream"}
            device = "DeviceId" in schema.required
            sample = samples.get(table)
            if sample is None:  # no public record (IdentityDirectoryEvents): the schema's columns, all null
                props: dict[str, Any] = dict.fromkeys(types)
                digits = 7
            else:
                props = sample["properties"]
                fraction = str(props.get("Timestamp", "")).rstrip("Z").partition(".")[2]
                digits = len(fraction)
            if device:
                template = {k: (None if types[k] == "dynamic" and not is_json_text(v) else v) for k, v in props.items()}
            else:  # the samples' own drift, respelled as the schema types it: default traffic is typed exactly
                template = {k: _typed(v, types[k]) for k, v in props.items()}
            for k, v in template.items():
                if v is not None and not _conforms(v, types[k]):
                    raise ValueError(f"sample {table}.{k}={v!r} is not a {types[k]}")
            initiating = [k for k in types if k.startswith(INITIATING) or k == "IsInitiatingProcessRemoteSession"]
            fixed = {"ActionType", "ReportId", *schema.required}
            plans[table] = _Plan(
                table=table,
                schema=schema,
                category=schema.category,
                template=template,
                proc_keys=tuple(k for k in initiating if k in template),
                proc_extra=tuple(k for k in initiating if k not in template),
                optional=tuple(
                    k
                    for k, v in template.items()
                    if device and v is not None and k not in fixed and not k.startswith(INITIATING)
                ),
                nulls=tuple(
                    k
                    for k, v in template.items()
                    if device and v is None and k not in built and not k.startswith(INITIATING)
                ),
                typed=tuple(k for k in template if types[k] in ("long", "int", "boolean") and k not in schema.required),
                strings=tuple(k for k in template if types[k] == "string" and k not in schema.required),
                build=builders[table],
                device=device,
                digits=digits,
                drift=tuple((k, t) for k, t in types.items() if t in DRIFT_TYPES and k not in schema.required),
            )
        return plans

    # ---- records --------------------------------------------------------------------------------------

    def record(self, table: str) -> dict[str, Any]:
        """One valid Streaming API record of `table` (does not touch `manifest`)."""
        plan = self._plans.get(table)
        if plan is None:
            raise ValueError(f"unknown table {table!r}; valid tables: {', '.join(sorted(self._plans))}")
        r = self._r
        dev = self._pick_device(table)
        # The clock moves in whole microseconds; Windows adds 100 ns digits, so event times never go backwards.
        self._clock += (int(-math.log(1.0 - r()) * self._gap) // 10 + 1) * 10
        ts = self._clock + int(r() * 10) if dev.os == "Windows" else self._clock
        delay = 8 * TICKS + int(min(-math.log(1.0 - r()) * 45.0, 290.0) * TICKS) + int(r() * TICKS)
        received = ts + delay
        props = plan.template.copy()
        proc = None
        if plan.proc_keys:
            proc = self._pick_proc(dev, ts)
            props.update(self._view(proc, plan, bool(plan.proc_extra) and r() < 0.4))
        plan.build(props, dev, proc, ts, received)
        if plan.device:
            props["DeviceId"] = dev.id
            props["DeviceName"] = dev.name
            props["MachineGroup"] = dev.group
            props["Timestamp"] = self._dt(ts, dev.os != "Windows")
            if plan.optional and r() < 0.12:
                for _ in range(1 + int(r() * 3)):
                    props[self._choice(plan.optional)] = None
            if plan.nulls and r() < 0.04:
                column = self._choice(plan.nulls)
                if props.get(column) is None:
                    props[column] = self._filler(plan, column, dev, ts)
            if dev.compact:
                props = {k: v for k, v in props.items() if v is not None}
        else:  # the precision of the table's captured Timestamp (seconds for mail, milliseconds for cloud apps)
            step = 10 ** (7 - plan.digits)
            props["Timestamp"] = self._dt(ts - ts % step)
        self._drifted = bool(self.drift_rate) and self._drift_r() < self.drift_rate and self._drift(plan, props)
        return {
            "time": self._iso(received + int((90.0 + 60.0 * r()) * TICKS)),
            "tenantId": self.tenant_id,
            "operationName": "Publish",
            "category": plan.category,
            "_TimeReceivedBySvc": self._iso(received),
            "properties": props,
            "Tenant": "DefaultTenant",
        }

    def _filler(self, plan: _Plan, column: str, dev: Device, ts: int) -> Any:
        kind = next(c.type for c in plan.schema.columns if c.name == column)
        if kind in ("long", "int"):
            return self._int(0, 65535)
        if kind == "boolean":
            return self._r() < 0.5
        if kind == "real":
            return round(self._r() * 100, 3)
        if kind == "datetime":
            return self._dt(ts - self._int(1, 86400) * TICKS)
        if kind == "dynamic":
            return self._choice(("[]", "{}", '["Synthetic"]'))
        if kind == "guid" or column.endswith(("ObjectId", "Id")):
            return self._guid()
        if column.endswith("IP"):
            return self._private_ip()
        if column.endswith(("Url", "Urls")):
            return self._expand("{url}")
        if column.endswith("Upn"):
            return dev.users[0].upn or f"{dev.users[0].name}@{self.org}.com"
        if column.endswith("DeviceName"):
            return self._choice(self._devices).name
        return self._expand(self._choice(("{word}", "{vendor}", "{word}-{n}", "{proj}")))

    def _drift(self, plan: _Plan, props: dict[str, Any]) -> bool:
        """Respell one value of `props` as Defender also writes it (the same value: `respell`); False if none can be."""
        candidates = [(c, t) for c, t in plan.drift if c in props and respell(props[c], t, 0.0) is not _NONE]
        if not candidates:
            return False
        column, kind = candidates[int(self._drift_r() * len(candidates))]
        props[column] = respell(props[column], kind, self._drift_r())
        return True

    # ---- invalid records ------------------------------------------------------------------------------

    def invalid_record(self, kind: InvalidKind, table: str | None = None) -> Any:
        """One invalid record of `kind`: a JSON value, or `bytes` (a truncated record) for `malformed_json`."""
        table = table or self._tables[self._pick(self._table_cum)]
        if kind == "not_an_object":
            return self._choice(
                (self._int(0, 10**6), round(self._r() * 1000, 3), self.schemas[table].category, "Publish", self._guid())
            )
        if kind == "unknown_category":  # a category the Streaming API exports that no schema of ours has
            category = self._choice(self._alien_categories)
            received = self._clock + 30 * TICKS
            return {
                "time": self._iso(received + 100 * TICKS),
                "tenantId": self.tenant_id,
                "operationName": "Publish",
                "category": category,
                "_TimeReceivedBySvc": self._iso(received),
                "properties": {
                    "Timestamp": self._dt(self._clock),
                    "BehaviorId": f"ca{self._hex(32)}",
                    "ActionType": "ImpossibleTravelActivity",
                    "Description": "User signed in from two distant locations within a short time",
                    "Categories": '["InitialAccess"]',
                    "AttackTechniques": '["Valid Accounts (T1078)"]',
                    "ServiceSource": "Microsoft Cloud App Security",
                    "DetectionSource": "Cloud App Security",
                    "DataSources": '["Microsoft Defender for Cloud Apps"]',
                    "StartTime": self._dt(self._clock - 3600 * TICKS),
                    "EndTime": self._dt(self._clock),
                },
                "Tenant": "DefaultTenant",
            }
        rec = self.record(table)
        if kind == "malformed_json":
            data = self._enc.encode(rec)
            cut = self._int(1, len(data) - 2)
            while cut > 1 and data[cut - 1] >= 0x80:  # cut on an ASCII byte: truncated JSON, not broken UTF-8
                cut -= 1
            return data[:cut]
        props = rec["properties"]
        plan = self._plans[table]
        if kind == "missing_required":
            column = self._choice(plan.schema.required)
            if self._r() < 0.75:
                props.pop(column, None)
            else:
                props[column] = None
        elif kind == "bad_datetime":
            props["Timestamp"] = self._choice(pools.BAD_DATETIMES)
        elif kind == "wrong_type":  # no spelling of Defender's: a word for a number or flag, an array for a string
            typed = [c for c in plan.typed if props.get(c) is not None]
            # A string column Microsoft documents as dynamic takes an array (its JSON text): not one of those.
            arrays = {c.name for c in plan.schema.columns if c.stream_type == "dynamic"}
            strings = [c for c in plan.strings if props.get(c) is not None and c not in arrays]
            if strings and (not typed or self._r() < 0.5):
                props[self._choice(strings)] = [self._int(1, 10**6)]
            elif typed:
                props[self._choice(typed)] = self._choice(("n/a", "unknown", "0x1F4-bad", "twelve"))
            else:
                props[self._choice([c for c in plan.strings if c not in arrays] or plan.typed)] = [self._int(1, 10**6)]
        return rec

    # ---- message bodies -------------------------------------------------------------------------------

    def has_parent(self, table: str) -> bool:
        """Whether a row of `table` can point at an emitted row of its parent table (always, for the others)."""
        if table not in PARENTS or self._xdr_state is None:
            return table not in PARENTS
        state = self._xdr_state
        if table == "EmailUrlInfo":
            return bool(state.url_rows or state.url_messages)
        if table == "EmailAttachmentInfo":
            return bool(state.attachment_rows or state.attachment_messages)
        if table == "EmailPostDeliveryEvents":
            return bool(state.messages)
        if table == "UrlClickEvents":
            return bool(state.clicked)
        return bool(state.evidence_rows or state.alerts)  # AlertEvidence

    def _draw(self) -> tuple[bytes, str, InvalidKind | None, bool]:
        table = self._tables[self._pick(self._table_cum)]
        while table in PARENTS and PARENTS[table] in self.mix and not self.has_parent(table):
            table = PARENTS[table]
        if self.invalid_rate and self._r() < self.invalid_rate:
            kind: InvalidKind = self._choice(self.invalid_kinds)
            value = self.invalid_record(kind, table)
            return (value if isinstance(value, bytes) else self._enc.encode(value)), table, kind, False
        data = self._enc.encode(self.record(table))
        return data, table, None, self._drifted

    def messages(
        self,
        count: int | None = None,
        *,
        records: int | None = None,
        records_per_message: tuple[int, int] = (1, 40),
        envelope: Envelope = "records",
    ) -> Iterator[bytes]:
        """Message bodies: `count` messages, or as many as hold `records` records, whichever ends first.

        "records" bodies are `{"records":[...]}` with tables mixed; "lines" bodies are JSON Lines (Storage
        export), one record per line. A `malformed_json` record breaks a whole "records" body, so it travels in
        a message of its own. Every body stays under `MAX_MESSAGE_BYTES`; `manifest` counts each body as it is
        yielded.
        """
        if count is None and records is None:
            raise ValueError("give count (messages) or records")
        lo, hi = records_per_message
        if not 1 <= lo <= hi:
            raise ValueError(f"records_per_message must be 1 <= min <= max, not {records_per_message}")
        if envelope not in ENVELOPES:
            raise ValueError(f"envelope must be one of {ENVELOPES}, not {envelope!r}")
        lines = envelope == "lines"
        head, tail = (b"", b"") if lines else (b'{"records":[', b"]}")
        sep = b"\n" if lines else b","
        man = self.manifest
        man.envelope = envelope
        pending: tuple[bytes, str, InvalidKind | None, bool] | None = None
        sent_messages = sent_records = 0
        while (count is None or sent_messages < count) and (records is None or sent_records < records):
            target = self._int(lo, hi)
            if records is not None:
                target = min(target, records - sent_records)
            parts: list[tuple[bytes, str, InvalidKind | None, bool]] = []
            size = len(head) + len(tail)
            while len(parts) < target:
                item = pending or self._draw()
                pending = None
                data = item[0]
                alone = item[2] == "malformed_json" and not lines
                if (alone and parts) or size + len(data) + 1 > MAX_MESSAGE_BYTES:
                    if not parts:
                        raise ValueError(f"a {len(data)}-byte record does not fit in a message")
                    pending = item
                    break
                parts.append(item)
                size += len(data) + (1 if len(parts) > 1 else 0)
                if alone:
                    break
            body = head + sep.join(p[0] for p in parts) + tail
            for data, table, kind, drifted in parts:
                if kind is None:
                    man.valid[table] += 1
                    man.valid_bytes[table] += len(data)
                    man.drifted[table] += drifted
                else:
                    man.invalid[kind] += 1
                    if kind == "unknown_category":
                        man.skipped += 1
            man.messages += 1
            man.records += len(parts)
            man.raw_bytes += len(body)
            sent_messages += 1
            sent_records += len(parts)
            yield body


def _conforms(value: object, column_type: str) -> bool:
    """Whether a non-null property value has the schema's column type (as the Streaming API encodes it; a
    dynamic value is JSON text, or an object or array, as the non-Device tables' records carry them)."""
    if column_type == "string" or column_type == "guid":
        return isinstance(value, str)
    if column_type in ("long", "int"):
        return isinstance(value, int) and not isinstance(value, bool)
    if column_type == "boolean":
        return isinstance(value, bool)
    if column_type == "real":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if column_type == "datetime":
        return isinstance(value, str) and value.endswith("Z")
    if column_type == "dynamic":
        return isinstance(value, dict | list) or is_json_text(value)
    return False


def _typed(value: Any, column_type: str) -> Any:
    """A captured value as the schema types it: Defender's other spellings of the same value (the drift a sample
    carries: `"0"` for false, `58210` for `"58210"`, `[]` for `"[]"` in a string column) are written back."""
    if value is None or _conforms(value, column_type):
        return None if column_type == "dynamic" and isinstance(value, str) and not is_json_text(value) else value
    if value == "":
        return None
    if column_type == "boolean":
        return {"0": False, "1": True, "false": False, "true": True, 0: False, 1: True}.get(
            value.lower() if isinstance(value, str) else value
        )
    if column_type in ("long", "int") and isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    if column_type == "string":
        return json.dumps(value, separators=(",", ":"))
    return None


class _Unset:
    pass


_NONE: Any = _Unset()  # respell's "no other spelling"


def respell(value: Any, column_type: str, roll: float) -> Any:
    """Another of Defender's spellings of the same `value` of a `column_type` column (`roll` in [0, 1) picks
    one), or `_NONE`. The spellings are those docs/architecture.md's Type drift section converts: `""` for null,
    `"1"`/`"True"`/`1` for true, a decimal string for an integer, a number or boolean for a string's text; a
    dynamic object as its JSON text."""
    if value is None:
        return "" if column_type != "string" else _NONE
    if column_type in ("long", "int") and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if column_type == "boolean" and isinstance(value, bool):
        spellings = ("1", "True", "true", 1) if value else ("0", "False", "false", 0)
        return spellings[int(roll * len(spellings))]
    if column_type == "string" and isinstance(value, str):
        if value.isascii() and value.isdigit() and len(value) < 16 and (value == "0" or value[0] != "0"):
            return int(value)
        if value in ("true", "false"):
            return value == "true"
        return _NONE
    if column_type == "dynamic" and isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return _NONE
