"""Seeded, deterministic synthetic Defender Streaming API records and message bodies, with a `Manifest`.

Record shapes come from the captured samples in `ingestor_tools/samples/`, column types from `ingestor.tables`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ingestor.tables import TableSchema, load_schemas
from ingestor_tools import SAMPLES_DIR
from ingestor_tools.generate import pools
from ingestor_tools.generate.builders import CHILD_COLUMNS, INITIATING, TableBuilders
from ingestor_tools.generate.manifest import (
    ENVELOPES,
    INVALID_KINDS,
    MAX_MESSAGE_BYTES,
    Envelope,
    InvalidKind,
    Manifest,
)
from ingestor_tools.generate.world import TICKS, Device, Proc

# Relative weights for a realistic tenant: network, file, image-load, registry and process events dominate;
# device inventory (DeviceInfo, DeviceNetworkInfo) and certificate info are rare.
DEFAULT_MIX: dict[str, float] = {
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


def load_samples() -> dict[str, dict[str, Any]]:
    """The captured record for each table, from `ingestor_tools/samples/<Table>.json`."""
    return {
        table: json.loads((SAMPLES_DIR / f"{table}.json").read_text(encoding="utf-8"))[0] for table in load_schemas()
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
    longs: tuple[str, ...]
    strings: tuple[str, ...]
    build: Callable[[dict[str, Any], Device, Proc | None, int, int], None]


class TrafficGenerator(TableBuilders):
    """Realistic, seeded Defender Streaming API traffic for the ten Device* tables.

    The same seed, mix, device count and start time give byte-identical output. `record()` builds one valid
    record; `messages()` builds Event Hubs / Kafka message bodies and accumulates `manifest`.
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
    ) -> None:
        self.schemas = load_schemas()
        mix = dict(DEFAULT_MIX if mix is None else mix)
        unknown = sorted(set(mix) - set(self.schemas))
        if unknown:
            raise ValueError(f"unknown tables {unknown}; valid tables: {', '.join(sorted(self.schemas))}")
        if any(w < 0 or not math.isfinite(w) for w in mix.values()) or sum(mix.values()) <= 0:
            raise ValueError("mix weights must be finite, non-negative and not all zero")
        if devices < 1:
            raise ValueError("devices must be at least 1")
        if not 0.0 <= invalid_rate <= 1.0:
            raise ValueError("invalid_rate must be between 0 and 1")
        bad_kinds = sorted(set(invalid_kinds) - set(INVALID_KINDS))
        if bad_kinds or not invalid_kinds:
            raise ValueError(f"invalid kinds must be a non-empty subset of {INVALID_KINDS}, not {bad_kinds}")
        start = start_time or datetime.now(UTC)
        start = (start if start.tzinfo else start.replace(tzinfo=UTC)).astimezone(UTC)
        super().__init__(seed, devices, start, events_per_second)
        self.mix = {t: w for t, w in mix.items() if w > 0}
        self.invalid_rate = invalid_rate
        self.invalid_kinds = tuple(invalid_kinds)
        self._tables = tuple(self.mix)
        self._table_cum = self._cumulative(self.mix.values())
        self.manifest = Manifest(seed, self._iso(self._clock), devices, invalid_rate)
        self.manifest.valid = dict.fromkeys(self._tables, 0)
        self.manifest.valid_bytes = dict.fromkeys(self._tables, 0)
        self._plans = self._build_plans()

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
        }
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
            props = samples[table]["properties"]
            types = {c.name: c.type for c in schema.input_columns if c.origin == "stream"}
            template = {k: (None if types[k] == "dynamic" and not is_json_text(v) else v) for k, v in props.items()}
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
                    k for k, v in template.items() if v is not None and k not in fixed and not k.startswith(INITIATING)
                ),
                nulls=tuple(
                    k for k, v in template.items() if v is None and k not in built and not k.startswith(INITIATING)
                ),
                longs=tuple(k for k in template if types[k] in ("long", "int") and k not in fixed),
                strings=tuple(k for k in template if types[k] == "string" and k not in fixed),
                build=builders[table],
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

    # ---- invalid records ------------------------------------------------------------------------------

    def invalid_record(self, kind: InvalidKind, table: str | None = None) -> Any:
        """One invalid record of `kind`: a JSON value, or `bytes` (a truncated record) for `malformed_json`."""
        table = table or self._tables[self._pick(self._table_cum)]
        if kind == "not_an_object":
            return self._choice(
                (self._int(0, 10**6), round(self._r() * 1000, 3), self.schemas[table].category, "Publish", self._guid())
            )
        if kind == "unknown_category":
            category = self._choice(pools.ALIEN_CATEGORIES)
            received = self._clock + 30 * TICKS
            return {
                "time": self._iso(received + 100 * TICKS),
                "tenantId": self.tenant_id,
                "operationName": "Publish",
                "category": category,
                "_TimeReceivedBySvc": self._iso(received),
                "properties": {
                    "Timestamp": self._dt(self._clock),
                    "AlertId": f"da{self._hex(16)}_{self._int(1, 10**9)}",
                    "Title": "Suspicious PowerShell command line",
                    "Severity": "Medium",
                    "Category": "Execution",
                    "ServiceSource": "Microsoft Defender for Endpoint",
                    "DetectionSource": "EDR",
                    "AttackTechniques": '["PowerShell (T1059.001)"]',
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
        elif kind == "wrong_type":
            longs = [c for c in plan.longs if props.get(c) is not None] or ["ReportId"]
            strings = [c for c in plan.strings if props.get(c) is not None]
            if strings and self._r() < 0.5:  # an array: a number in a string column is Defender's own spelling
                props[self._choice(strings)] = [self._int(1, 10**6)]
            else:
                props[self._choice(longs)] = self._choice(("n/a", "unknown", "0x1F4-bad", "twelve"))
        return rec

    # ---- message bodies -------------------------------------------------------------------------------

    def _draw(self) -> tuple[bytes, str, InvalidKind | None]:
        table = self._tables[self._pick(self._table_cum)]
        if self.invalid_rate and self._r() < self.invalid_rate:
            kind: InvalidKind = self._choice(self.invalid_kinds)
            value = self.invalid_record(kind, table)
            return (value if isinstance(value, bytes) else self._enc.encode(value)), table, kind
        return self._enc.encode(self.record(table)), table, None

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
        pending: tuple[bytes, str, InvalidKind | None] | None = None
        sent_messages = sent_records = 0
        while (count is None or sent_messages < count) and (records is None or sent_records < records):
            target = self._int(lo, hi)
            if records is not None:
                target = min(target, records - sent_records)
            parts: list[tuple[bytes, str, InvalidKind | None]] = []
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
            for data, table, kind in parts:
                if kind is None:
                    man.valid[table] += 1
                    man.valid_bytes[table] += len(data)
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
    """Whether a non-null property value has the schema's column type (as the Streaming API encodes it)."""
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
        return is_json_text(value)
    return False
