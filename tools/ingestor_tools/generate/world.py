"""The simulated tenant behind the synthetic traffic: seeded RNG helpers, datetimes, devices, processes, pools.

`World` holds all state the per-table record builders draw from; one seed replays the same world.
"""

from __future__ import annotations

import base64
import math
import random
import time
from bisect import bisect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from ingestor_tools.generate import pools
from ingestor_tools.generate.pools import Image

TICKS = 10_000_000  # 100 ns ticks per second
DOTNET_EPOCH_TICKS = 621_355_968_000_000_000  # .NET DateTime ticks at 1970-01-01T00:00:00Z
T = TypeVar("T")
# Tables whose records Windows devices alone produce, and those Linux devices never produce.
WINDOWS_ONLY = frozenset({"DeviceImageLoadEvents", "DeviceRegistryEvents"})
NOT_LINUX = frozenset({"DeviceFileCertificateInfo"})
_SECONDS_CACHE_LIMIT = 200_000


@dataclass(frozen=True, slots=True)
class User:
    """An account as the sensor reports it (Windows domain user, SYSTEM, or a Posix user)."""

    name: str
    domain: str
    sid: str
    upn: str | None
    object_id: str | None
    uid: int
    group: str
    gid: int
    system: bool


@dataclass(slots=True)
class Proc:
    """A running process on a device; `fields` are its InitiatingProcess* columns, precomputed."""

    image: Image
    user: User
    pid: int
    created: int
    fields: dict[str, Any]
    posix: dict[str, Any] | None  # macOS/Linux: Posix facts carried in AdditionalFields
    views: dict[tuple[str, bool], dict[str, Any]] = field(default_factory=dict)


@dataclass(slots=True)
class Device:
    """One onboarded device with its stable identity, users and (lazily) running processes."""

    id: str
    name: str
    os: str  # Windows, macOS, Linux
    group: str
    server: bool
    users: tuple[User, ...]
    system: User
    local_ip: str
    public_ip: str
    compact: bool  # omits null properties instead of carrying explicit nulls
    report_id: int
    boot: int
    unique_base: int
    activity: float  # relative event volume
    procs: list[Proc] = field(default_factory=list)
    info: dict[str, Any] | None = None
    adapters: list[dict[str, Any]] | None = None


class _Fill(dict[str, str]):
    """`str.format_map` mapping that draws placeholder values from the world on demand."""

    __slots__ = ("gen",)
    FRESH = frozenset({"n", "n1", "n8", "big", "word", "features", "ext"})

    def __init__(self, gen: World, **fixed: str) -> None:
        super().__init__(fixed)
        self.gen = gen

    def __missing__(self, key: str) -> str:
        value = self.gen._placeholder(key, self)
        if key not in self.FRESH:
            self[key] = value
        return value


class World:
    """The seeded randomness and the simulated tenant: devices, their users and running processes, value pools.

    Every draw comes from one `random.Random(seed)`, so a given seed replays the same world and the same events.
    """

    def __init__(self, seed: int, devices: int, start_time: datetime, events_per_second: float | None) -> None:
        self.seed = seed
        self.start_time = start_time
        self._rng = random.Random(seed)
        self._r = self._rng.random
        self._bits = self._rng.getrandbits
        self._clock = int(start_time.timestamp()) * TICKS + start_time.microsecond * 10
        self._gap = TICKS / (events_per_second or 2.0 * devices)
        self._secs: dict[int, str] = {}
        self._enc = msgspec.json.Encoder()
        self.tenant_id = self._guid()
        self.org = self._choice(pools.ORGS)
        self.ad_domain = f"corp.{self.org}.com"
        self._domain_sid = (
            f"S-1-5-21-{self._int(10**9, 4 * 10**9)}-{self._int(10**9, 4 * 10**9)}-{self._int(10**8, 4 * 10**9)}"
        )
        self._egress = [self._public_ip() for _ in range(4)]
        self._images = {"Windows": pools.WINDOWS_IMAGES, "macOS": pools.MAC_IMAGES, "Linux": pools.LINUX_IMAGES}
        self._image_cum = {os: self._cumulative(i.weight for i in imgs) for os, imgs in self._images.items()}
        self._spawn_cum = {os: self._cumulative(i.spawn for i in imgs) for os, imgs in self._images.items()}
        self._hashes: dict[tuple[str, str], list[tuple[str, str, str, int]]] = {}
        self._placeholders = self._placeholder_table()
        self._build_pools()
        self._devices = [self._new_device(i) for i in range(devices)]
        self._device_cum: dict[str, tuple[list[Device], list[float]]] = {}

    @staticmethod
    def _cumulative(weights: Iterable[float]) -> list[float]:
        total, out = 0.0, []
        for w in weights:
            total += w
            out.append(total)
        return out

    def _pick(self, cum: list[float]) -> int:
        return min(bisect(cum, self._r() * cum[-1]), len(cum) - 1)  # r * total may round up to total

    def _choice(self, seq: Sequence[T]) -> T:
        return seq[int(self._r() * len(seq))]

    def _int(self, lo: int, hi: int) -> int:
        return lo + int(self._r() * (hi - lo + 1))

    def _hex(self, n: int) -> str:
        return format(self._bits(4 * n), f"0{n}x")

    def _guid(self) -> str:
        h = self._hex(32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def _lognormal(self, median: float, sigma: float) -> int:
        return int(median * math.exp(sigma * self._rng.gauss(0.0, 1.0)))

    def _public_ip(self) -> str:
        first = self._choice((20, 20, 13, 40, 52, 104, 142, 151, 172, 185, 81, 23, 34, 35, 3, 18))
        return f"{first}.{self._int(0, 255)}.{self._int(0, 255)}.{self._int(1, 254)}"

    def _private_ip(self) -> str:
        return f"10.{self._int(0, 40)}.{self._int(0, 255)}.{self._int(2, 254)}"

    def _expand(self, template: str, **fixed: str) -> str:
        if "{" not in template:
            return template
        return template.format_map(_Fill(self, **fixed))

    def _placeholder(self, key: str, ctx: _Fill) -> str:
        if key.startswith("hex"):
            return self._hex(int(key[3:]))
        if key == "url":
            return f"https://{ctx['domain']}{self._expand(self._choice(pools.URL_PATHS))}"
        return self._placeholders[key]()

    def _placeholder_table(self) -> dict[str, Callable[[], str]]:
        return {
            "n": lambda: str(self._int(1, 9999)),
            "n1": lambda: str(self._int(1, 4)),
            "n8": lambda: str(self._int(1, 254)),
            "big": lambda: str(self._int(10**6, 10**10)),
            "guid": lambda: self._guid().upper(),
            "user": lambda: self._choice(pools.FIRST_NAMES),
            "org": lambda: self.org,
            "proj": lambda: self._choice(pools.PROJECTS),
            "vendor": lambda: self._choice(pools.VENDORS),
            "script": lambda: self._choice(pools.SCRIPTS),
            "pkg": lambda: self._choice(pools.PKGS),
            "word": lambda: self._choice(pools.WORDS),
            "svc": lambda: self._choice(pools.SERVICES),
            "svcname": lambda: self._choice(pools.SERVICE_NAMES),
            "wmi": lambda: self._choice(pools.WMI_CLASSES),
            "export": lambda: self._choice(pools.EXPORTS),
            "dll": lambda: self._choice(pools.DLLS),
            "ext": lambda: self._choice(pools.DOC_EXTS),
            "shcmd": lambda: self._choice(pools.SHELL_COMMANDS),
            "ctype": lambda: self._choice(("renderer", "renderer", "utility", "gpu-process", "crashpad-handler")),
            "epoch": lambda: str(self._int(10**15, 2 * 10**15)),
            "ticks": lambda: str(self._int(10**9, 10**12)),
            "port": lambda: str(self._choice((8080, 8443, 9000, 5000, 3000))),
            "sid": lambda: f"{self._domain_sid}-{self._int(1100, 30000)}",
            "b64short": lambda: self._b64(self._int(6, 18))[: self._int(8, 22)],
            "b64long": lambda: self._b64(self._lognormal(180, 0.9) + 24),
            "encoded": lambda: self._choice(self._encoded),
            "features": lambda: ",".join(self._rng.sample(pools.CHROMIUM_FEATURES, self._int(2, 9))),
            "doc": lambda: self._expand(self._choice(pools.DOC_NAMES)),
            "domain": lambda: self._expand(self._choice(pools.DOMAINS)),
            "build": lambda: str(self._int(1000, 4700)),
        }

    def _b64(self, nbytes: int) -> str:
        return base64.b64encode(self._bits(8 * nbytes).to_bytes(nbytes, "little")).decode()

    # ---- datetimes ------------------------------------------------------------------------------------

    def _base(self, sec: int) -> str:
        base = self._secs.get(sec)
        if base is None:
            if len(self._secs) > _SECONDS_CACHE_LIMIT:
                self._secs.clear()
            base = self._secs[sec] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return base

    def _iso(self, ticks: int) -> str:
        """Envelope style: always seven fractional digits."""
        sec, frac = divmod(ticks, TICKS)
        return f"{self._base(sec)}.{frac:07d}Z"

    def _dt(self, ticks: int, coarse: bool = False) -> str:
        """Property style: trailing zeros dropped (microsecond precision when `coarse`, as macOS/Linux)."""
        sec, frac = divmod(ticks, TICKS)
        if coarse:
            frac -= frac % 10
        if not frac:
            return self._base(sec) + "Z"
        return f"{self._base(sec)}.{f'{frac:07d}'.rstrip('0')}Z"

    # ---- pools ----------------------------------------------------------------------------------------

    def _build_pools(self) -> None:
        statements = pools.PS_STATEMENTS
        self._encoded: list[str] = []
        for _ in range(96):
            count = 1 + min(int(-math.log(1.0 - self._r()) * 9), 60)
            script = "; ".join(self._expand(self._choice(statements)) for _ in range(count))
            self._encoded.append(base64.b64encode(script.encode("utf-16-le")).decode())
        # (RemoteIP, RemoteUrl, RemotePort, RemoteIPType); popular endpoints first (picked with a skew).
        self._endpoints: list[tuple[str, str | None, int, str]] = []
        for _ in range(1500):
            if self._r() < 0.2:
                server = self._expand("srv-{word}-{n}.") + self.ad_domain
                self._endpoints.append(
                    (
                        self._private_ip(),
                        server if self._r() < 0.3 else None,
                        self._choice(pools.INTERNAL_PORTS),
                        "Private",
                    )
                )
                continue
            host = self._expand(self._choice(pools.DOMAINS))
            url = f"https://{host}{self._expand(self._choice(pools.URL_PATHS))}" if self._r() < 0.3 else host
            self._endpoints.append(
                (self._public_ip(), url if self._r() < 0.6 else None, self._choice(pools.PUBLIC_PORTS), "Public")
            )
        self._dlls: list[tuple[str, str, str, str, str, int]] = []
        for name in pools.DLLS:
            for _ in range(self._int(1, 2)):
                folder = self._expand(self._choice(pools.DLL_FOLDERS))
                self._dlls.append(
                    (
                        name,
                        folder + name,
                        self._hex(40),
                        self._hex(64),
                        self._hex(32),
                        self._lognormal(400_000, 1.2) + 8192,
                    )
                )
        self._registry: list[tuple[str, str, str]] = []
        for _ in range(400):
            key, value, kind = self._choice(pools.REGISTRY_KEYS)
            self._registry.append((self._expand(key), self._expand(value), kind))
        self._signers: dict[str, list[tuple[str, str, bool, str, str]]] = {
            os: [(s, i, ms, self._hex(40), self._hex(40)) for s, i, ms in signers]
            for os, signers in (("Windows", pools.WINDOWS_SIGNERS), ("macOS", pools.MAC_SIGNERS))
        }
        self._scripts: list[str] = []
        for _ in range(48):
            lines = [self._expand(self._choice(pools.PS_STATEMENTS)) for _ in range(self._int(1, 40))]
            self._scripts.append("\n".join(lines))

    def _image_hashes(self, os: str, image: Image) -> tuple[str, str, str, int]:
        variants = self._hashes.get((os, image.name))
        if variants is None:
            variants = [
                (self._hex(40), self._hex(64), self._hex(32), max(4096, self._lognormal(image.size, 0.05)))
                for _ in range(self._int(1, 3))
            ]
            self._hashes[(os, image.name)] = variants
        return variants[0] if len(variants) == 1 or self._r() < 0.8 else self._choice(variants)

    # ---- devices and processes ------------------------------------------------------------------------

    def _new_device(self, index: int) -> Device:
        roll = self._r()
        os = "Windows" if index == 0 or roll < 0.72 else ("macOS" if roll < 0.88 else "Linux")
        server = os == "Linux" or (os == "Windows" and self._r() < 0.18)
        first = self._choice(pools.FIRST_NAMES)
        last = self._choice(pools.LAST_NAMES)
        if os == "Windows":
            short = (
                f"srv-{self._choice(('sql', 'web', 'app', 'file', 'dc', 'rds'))}-{self._int(1, 40):02d}"
                if server
                else f"{self._choice(('desktop', 'laptop', 'wks'))}-{self._hex(7)}"
            )
            name = f"{short}.{self.ad_domain}"
        elif os == "macOS":
            short = f"mbp-{first}{self._int(1, 99)}"
            name = f"{short}.{self.ad_domain}"
        else:
            short = f"{self._choice(('web', 'api', 'k8s-node', 'db', 'build'))}-{self._int(1, 60):02d}"
            name = f"{short}.prod.{self.org}.com"
        if os == "Windows":
            system = User("system", "nt authority", "S-1-5-18", None, None, 0, "", 0, True)
            sam = f"adm-{first}" if server else f"{first}.{last}"
            users = (
                User(
                    sam,
                    self.org,
                    f"{self._domain_sid}-{self._int(1100, 30000)}",
                    f"{sam}@{self.org}.com",
                    self._guid(),
                    0,
                    "",
                    0,
                    False,
                ),
            )
        else:
            system = User("root", short, "S-1-5-18", None, None, 0, "wheel" if os == "macOS" else "root", 0, True)
            sid = f"S-1-5-21-{self._int(10**9, 4 * 10**9)}-{self._int(10**9, 4 * 10**9)}-{self._int(10**8, 10**9)}"
            uid = self._int(501, 505) if os == "macOS" else self._int(1000, 1010)
            users = (
                User(
                    first,
                    short,
                    f"{sid}-{uid + 1500}",
                    f"{first}@{self.org}.com" if self._r() < 0.5 else None,
                    None,
                    uid,
                    "staff" if os == "macOS" else first,
                    20 if os == "macOS" else uid,
                    False,
                ),
            )
        groups = ("Servers - Tier 0", "Servers") if os == "Windows" and server else pools.MACHINE_GROUPS[os]
        return Device(
            id=self._hex(40),
            name=name,
            os=os,
            group=self._choice(groups),
            server=server,
            users=users,
            system=system,
            local_ip=self._private_ip(),
            public_ip=self._choice(self._egress),
            compact=self._r() < 0.3,
            report_id=self._int(500, 60_000),
            boot=self._clock - self._int(3600, 20 * 86400) * TICKS,
            unique_base=self._int(13 * 10**15, 14 * 10**15) if os == "Windows" else 0,
            activity=math.exp(0.8 * self._rng.gauss(0.0, 1.0)) * (2.0 if server else 1.0),
        )

    def _pick_device(self, table: str) -> Device:
        entry = self._device_cum.get(table)
        if entry is None:
            if table in WINDOWS_ONLY:
                devs = [d for d in self._devices if d.os == "Windows"]
            elif table in NOT_LINUX:
                devs = [d for d in self._devices if d.os != "Linux"]
            else:
                devs = self._devices
            entry = self._device_cum[table] = (devs, self._cumulative(d.activity for d in devs))
        devs, cum = entry
        return devs[self._pick(cum)]

    def _new_proc(self, dev: Device, image: Image, created: int, parent: Proc | None = None) -> Proc:
        win = dev.os == "Windows"
        user = dev.system if image.system or (dev.server and self._r() < 0.5) else self._choice(dev.users)
        sha1, sha256, md5, size = self._image_hashes(dev.os, image)
        template = self._choice(image.cmdlines) if image.cmdlines else f'"{image.path}"'
        fill = {"user": user.name if not user.system else self._choice(pools.FIRST_NAMES), "org": self.org}
        cmdline = self._expand(template, **fill)
        path = self._expand(image.path, **fill)
        if win:
            pid = 4 * self._int(60, 16000)
        else:
            pid = self._int(200, 99_999) if dev.os == "macOS" else self._int(300, 400_000)
        coarse = not win
        if parent is not None:
            parent_name, parent_pid, parent_created = parent.image.name, parent.pid, parent.created
        else:
            parents = pools.WINDOWS_PARENTS if win else pools.MAC_PARENTS if dev.os == "macOS" else pools.LINUX_PARENTS
            parent_name = self._choice(parents)
            parent_pid = pid if not win and self._r() < 0.3 else (4 * self._int(1, 4000) if win else self._int(1, 9000))
            parent_created = max(dev.boot, created - self._int(1, 7200) * TICKS - self._int(0, TICKS))
        version = image.version.format(build=self._int(1000, 4700), n=self._int(10, 200)) if image.version else None
        remote = self._r() < 0.02 and win and not user.system
        elevation = (
            "None"
            if not win
            else (
                "TokenElevationTypeDefault"
                if user.system
                else self._choice(("TokenElevationTypeLimited", "TokenElevationTypeFull"))
            )
        )
        f: dict[str, Any] = {
            "InitiatingProcessFileName": image.name if not win or self._r() < 0.6 else image.name.lower(),
            "InitiatingProcessFolderPath": path.lower(),
            "InitiatingProcessCommandLine": cmdline,
            "InitiatingProcessSHA1": sha1,
            "InitiatingProcessSHA256": sha256,
            "InitiatingProcessMD5": md5,
            "InitiatingProcessFileSize": size,
            "InitiatingProcessId": pid,
            "InitiatingProcessCreationTime": self._dt(created, coarse),
            "InitiatingProcessParentFileName": parent_name,
            "InitiatingProcessParentId": parent_pid,
            "InitiatingProcessParentCreationTime": self._dt(parent_created, coarse),
            "InitiatingProcessAccountName": user.name,
            "InitiatingProcessAccountDomain": user.domain,
            "InitiatingProcessAccountSid": user.sid,
            "InitiatingProcessAccountUpn": user.upn,
            "InitiatingProcessAccountObjectId": user.object_id,
            "InitiatingProcessIntegrityLevel": ("System" if user.system else self._choice(("Medium", "High")))
            if win
            else None,
            "InitiatingProcessTokenElevation": elevation,
            "InitiatingProcessVersionInfoCompanyName": image.company,
            "InitiatingProcessVersionInfoProductName": image.product if win else None,
            "InitiatingProcessVersionInfoProductVersion": version if win else None,
            "InitiatingProcessVersionInfoInternalFileName": image.name if win and image.company else None,
            "InitiatingProcessVersionInfoOriginalFileName": image.name if win and image.company else None,
            "InitiatingProcessVersionInfoFileDescription": image.description if win else None,
            "InitiatingProcessSessionId": (0 if user.system else self._int(1, 3)) if win else None,
            "InitiatingProcessLogonId": (999 if user.system else self._int(10**5, 10**8)) if win else 0,
            "InitiatingProcessUniqueId": str(dev.unique_base + self._int(1, 10**6)) if win else "0",
            "InitiatingProcessSignerType": "OsVendor" if image.company in (pools.MS, "(APPLE)") else "Publisher",
            "InitiatingProcessSignatureStatus": "Valid" if self._r() < 0.97 else "Unsigned",
            "IsInitiatingProcessRemoteSession": remote,
            "InitiatingProcessRemoteSessionDeviceName": f"laptop-{self._hex(7)}" if remote else None,
            "InitiatingProcessRemoteSessionIP": self._private_ip() if remote else None,
        }
        posix = None
        if not win:
            posix_user = {
                "Sid": user.sid,
                "Name": user.name,
                "DomainName": user.domain,
                "LogonId": 0,
                "PosixUserId": user.uid,
                "PrimaryPosixGroup": {"Name": user.group, "PosixGroupId": user.gid},
            }
            posix = {
                "PosixEffectiveUser": posix_user,
                "PosixEffectiveGroup": {"Name": user.group, "PosixGroupId": user.gid},
                "PosixProcessGroupId": parent_pid,
                "PosixSessionId": self._int(1, 400),
                "CurrentWorkingDirectory": "/"
                if user.system
                else f"/{'Users' if dev.os == 'macOS' else 'home'}/{user.name}",
                "PosixFilePermissions": ["None"]
                if self._r() < 0.7
                else ["UserRead", "UserWrite", "UserExecute", "GroupRead", "OthersRead"],
                "PosixRealUser": posix_user,
            }
        return Proc(image, user, pid, created, f, posix)

    def _pick_proc(self, dev: Device, ts: int) -> Proc:
        images = self._images[dev.os]
        if not dev.procs:
            uptime = (ts - dev.boot) // TICKS
            for _ in range(8):
                image = images[self._pick(self._image_cum[dev.os])]
                if image.system and self._r() < 0.6:
                    created = dev.boot + self._int(1, 120) * TICKS
                else:
                    created = ts - self._int(2, min(8 * 3600, uptime - 1)) * TICKS - self._int(0, TICKS)
                dev.procs.append(self._new_proc(dev, image, created))
        if self._r() < 0.03:
            image = images[self._pick(self._image_cum[dev.os])]
            dev.procs[int(self._r() * len(dev.procs))] = self._new_proc(dev, image, ts - self._int(2, 600) * TICKS)
        return dev.procs[int(self._r() * len(dev.procs))]

    def _posix_json(self, *procs: tuple[str, Proc]) -> str | None:
        out: dict[str, Any] = {}
        for prefix, proc in procs:
            if proc.posix is None:
                return None
            for k, v in proc.posix.items():
                out[prefix + k] = v
        return self._enc.encode(out).decode()
