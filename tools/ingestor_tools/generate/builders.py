"""Per-table record builders: fill one record's properties from the world's devices, processes and pools.

Each `_b_*` method (one per table) sets the columns whose values vary; the rest come from the captured sample
template.
"""

from __future__ import annotations

from typing import Any

from ingestor_tools.generate import pools
from ingestor_tools.generate.world import DOTNET_EPOCH_TICKS, TICKS, Device, Proc, World

INITIATING = "InitiatingProcess"
# Initiating-process column -> the same fact about the created process in DeviceProcessEvents.
CHILD_COLUMNS: dict[str, str] = {
    "InitiatingProcessFileName": "FileName",
    "InitiatingProcessSHA1": "SHA1",
    "InitiatingProcessSHA256": "SHA256",
    "InitiatingProcessMD5": "MD5",
    "InitiatingProcessFileSize": "FileSize",
    "InitiatingProcessId": "ProcessId",
    "InitiatingProcessCommandLine": "ProcessCommandLine",
    "InitiatingProcessCreationTime": "ProcessCreationTime",
    "InitiatingProcessIntegrityLevel": "ProcessIntegrityLevel",
    "InitiatingProcessTokenElevation": "ProcessTokenElevation",
    "InitiatingProcessAccountName": "AccountName",
    "InitiatingProcessAccountDomain": "AccountDomain",
    "InitiatingProcessAccountSid": "AccountSid",
    "InitiatingProcessAccountUpn": "AccountUpn",
    "InitiatingProcessAccountObjectId": "AccountObjectId",
    "InitiatingProcessLogonId": "LogonId",
    "InitiatingProcessSessionId": "CreatedProcessSessionId",
    "IsInitiatingProcessRemoteSession": "IsProcessRemoteSession",
    "InitiatingProcessRemoteSessionDeviceName": "ProcessRemoteSessionDeviceName",
    "InitiatingProcessRemoteSessionIP": "ProcessRemoteSessionIP",
    "InitiatingProcessUniqueId": "ProcessUniqueId",
    **{
        f"{INITIATING}VersionInfo{s}": f"ProcessVersionInfo{s}"
        for s in (
            "CompanyName",
            "ProductName",
            "ProductVersion",
            "InternalFileName",
            "OriginalFileName",
            "FileDescription",
        )
    },
}


class TableBuilders(World):
    """`World` plus one builder per Device* table."""

    def _event_report_id(self, dev: Device) -> int:
        dev.report_id += 1 + int(self._r() * 3)
        return dev.report_id

    def _b_network(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        r = self._r
        ip, url, port, ip_type = self._endpoints[int(len(self._endpoints) * r() * r())]
        roll = r()
        win = dev.os == "Windows"
        p["ReportId"] = self._event_report_id(dev)
        p["LocalIP"] = dev.local_ip
        p["LocalIPType"] = "Private"
        p["Protocol"] = "Udp" if port == 53 else "Tcp"
        af: str | None = None
        if roll < (0.3 if dev.server else 0.08):
            action, port = "InboundConnectionAccepted", self._choice((445, 135, 3389, 5985, 22, 443))
            p["RemoteIP"], p["RemotePort"], p["RemoteUrl"] = self._private_ip(), self._int(49152, 65535), None
            p["LocalPort"], p["RemoteIPType"] = port, "Private"
        else:
            if win and roll > 0.9:
                action = self._choice(("HttpConnectionInspected", "SslConnectionInspected", "DnsConnectionInspected"))
                af = self._inspected(action, url or ip)
            else:
                action = (
                    ("ConnectionSuccess" if win else "ConnectionRequest")
                    if roll < 0.82
                    else self._choice(("ConnectionFailed", "ConnectionAttempt", "ListeningConnectionCreated"))
                )
            p["RemoteIP"], p["RemotePort"], p["RemoteUrl"] = ip, port, url
            p["LocalPort"], p["RemoteIPType"] = self._int(49152, 65535), ip_type
        p["ActionType"] = action
        if proc is not None and af is None:
            af = self._posix_json((INITIATING, proc))
        p["AdditionalFields"] = af
        p["AppGuardContainerId"] = "" if win and r() < 0.5 else None

    def _inspected(self, action: str, target: str) -> str:
        host = target.split("/")[2] if "://" in target else target
        if action == "HttpConnectionInspected":
            doc: dict[str, Any] = {
                "direction": "Out",
                "host": host,
                "method": self._choice(("GET", "POST")),
                "status_code": self._choice(("200", "204", "301", "404")),
                "uri": target.split(host, 1)[-1] or "/",
                "version": "1.1",
                "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
                "(KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36",
            }
        elif action == "SslConnectionInspected":
            doc = {
                "version": "TLS1_3",
                "client_random": self._hex(64),
                "server_name": host,
                "established": True,
                "direction": "Out",
            }
        else:
            doc = {
                "direction": "Out",
                "query": host,
                "qtype": 1,
                "qtype_name": "A",
                "rcode": 0,
                "answers": [self._public_ip() for _ in range(self._int(1, 4))],
                "uid": self._b64(9),
            }
        return self._enc.encode(doc).decode()

    def _b_process(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        assert proc is not None
        image = self._images[dev.os][self._pick(self._spawn_cum[dev.os])]
        child = self._new_proc(dev, image, ts, parent=proc)
        fields = child.fields
        for k, v in CHILD_COLUMNS.items():
            p[v] = fields[k]
        p["FolderPath"] = self._expand(image.path, user=child.user.name, org=self.org)
        p["FileName"] = image.name
        p["ReportId"] = self._event_report_id(dev)
        p["ActionType"] = "ProcessCreated"
        p["AppGuardContainerId"] = None if dev.os != "Windows" or self._r() < 0.5 else ""
        af = self._posix_json((INITIATING, proc), ("Process", child))
        if af is None and self._r() < 0.3:
            af = self._enc.encode(
                {"ProcessStartKey": self._int(10**15, 10**16), "ParentProcessStartKey": self._int(10**15, 10**16)}
            ).decode()
        p["AdditionalFields"] = af
        if self._r() < 0.25:
            dev.procs[int(self._r() * len(dev.procs))] = child

    def _b_file(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        r = self._r
        user = proc.user.name if proc is not None and not proc.user.system else dev.users[0].name
        folders = (
            pools.WIN_FILE_FOLDERS
            if dev.os == "Windows"
            else pools.MAC_FILE_FOLDERS
            if dev.os == "macOS"
            else pools.LINUX_FILE_FOLDERS
        )
        folder = self._expand(self._choice(folders), user=user, org=self.org)
        if r() < 0.55:
            name = self._expand(self._choice(pools.DOC_NAMES)) + self._choice(pools.DOC_EXTS)
        else:
            name = self._expand(self._choice(pools.TEMP_NAMES))
        roll = r()
        action = (
            "FileCreated"
            if roll < 0.45
            else "FileModified"
            if roll < 0.8
            else "FileRenamed"
            if roll < 0.9
            else "FileDeleted"
        )
        p["ActionType"] = action
        p["FileName"], p["FolderPath"] = name, folder + name
        hashed = action != "FileDeleted" or r() < 0.5
        p["SHA1"] = self._hex(40) if hashed else None
        p["SHA256"] = self._hex(64) if hashed else None
        p["MD5"] = self._hex(32) if hashed else None
        p["FileSize"] = self._lognormal(60_000, 2.0) if hashed else None
        download = action == "FileCreated" and "Downloads" in folder
        if download:
            url = self._expand("{url}")
            p["FileOriginUrl"], p["FileOriginIP"] = url, self._public_ip()
            p["FileOriginReferrerUrl"] = self._expand("https://{domain}/") if r() < 0.6 else None
        else:
            p["FileOriginUrl"] = p["FileOriginIP"] = p["FileOriginReferrerUrl"] = None
        if action == "FileRenamed":
            old = self._expand(self._choice(pools.TEMP_NAMES))
            p["PreviousFileName"], p["PreviousFolderPath"] = old, folder + old
        else:
            p["PreviousFileName"] = p["PreviousFolderPath"] = ""
        smb = dev.os == "Windows" and r() < 0.1
        p["RequestProtocol"] = "Smb" if smb else "Local"
        p["ShareName"] = self._choice(("C$", "ADMIN$", "Data", "Users", "Finance")) if smb else None
        p["RequestSourceIP"] = self._private_ip() if smb else None
        p["RequestSourcePort"] = self._int(49152, 65535) if smb else None
        account = proc.user if proc is not None else dev.system
        p["RequestAccountName"] = account.name.upper() if account.system else account.name
        p["RequestAccountDomain"] = account.domain.upper()
        p["RequestAccountSid"] = account.sid
        labelled = name.endswith((".docx", ".xlsx", ".pptx", ".pdf")) and r() < 0.15
        p["SensitivityLabel"] = self._choice(("Confidential", "General", "Highly Confidential")) if labelled else None
        p["SensitivitySubLabel"] = self._choice(("All Employees", "Finance", "Recipients Only")) if labelled else None
        p["IsAzureInfoProtectionApplied"] = (r() < 0.5) if labelled else None
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        kinds = {
            "docx": "Docx",
            "xlsx": "Xlsx",
            "pdf": "Pdf",
            "pptx": "Pptx",
            "zip": "Zip",
            "png": "Png",
            "txt": "Text",
            "csv": "Csv",
            "msg": "Msg",
            "log": "Text",
            "etl": "Etl",
        }
        p["AdditionalFields"] = f'{{"FileType":"{kinds.get(ext, "Unknown")}"}}' if hashed else None
        p["ReportId"] = self._event_report_id(dev)
        p["AppGuardContainerId"] = "" if dev.os == "Windows" else None

    def _b_image(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        name, path, sha1, sha256, md5, size = self._dlls[int(len(self._dlls) * self._r() * self._r())]
        p["FileName"], p["FolderPath"], p["SHA1"], p["SHA256"], p["MD5"], p["FileSize"] = (
            name,
            path,
            sha1,
            sha256,
            md5,
            size,
        )
        p["ActionType"] = "ImageLoaded"
        p["ReportId"] = self._event_report_id(dev)

    def _b_registry(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        key, value, kind = self._choice(self._registry)
        action = self._choice(pools.REGISTRY_ACTIONS)
        p["ActionType"] = action
        p["RegistryKey"] = key
        p["ReportId"] = self._event_report_id(dev)
        if action.startswith("RegistryKey"):
            for c in (
                "RegistryValueName",
                "RegistryValueType",
                "RegistryValueData",
                "PreviousRegistryValueName",
                "PreviousRegistryValueData",
            ):
                p[c] = None
            return
        p["RegistryValueName"], p["RegistryValueType"] = value, kind
        data = self._registry_data(kind)
        p["RegistryValueData"] = None if action == "RegistryValueDeleted" else data
        changed = action == "RegistryValueSet" and self._r() < 0.6
        p["PreviousRegistryValueName"] = value if changed or action == "RegistryValueDeleted" else None
        p["PreviousRegistryValueData"] = (
            self._registry_data(kind) if changed else (data if action == "RegistryValueDeleted" else None)
        )

    def _registry_data(self, kind: str) -> str:
        if kind == "Dword":
            return str(self._choice((0, 1, 2, 3, 4, 255)))
        if kind == "Qword":
            return str(self._int(10**16, 10**18))
        if kind == "Binary":
            return self._hex(2 * min(self._lognormal(24, 1.0) + 4, 2048)).upper()
        if kind == "MultiSz":
            return f"\\??\\C:\\Windows\\SoftwareDistribution\\Download\\{self._hex(32)}\\{self._hex(8)}.tmp"
        return self._choice(
            (
                self._guid(),
                self._expand("{vendor} {word} {n}"),
                self._expand('"C:\\Program Files\\{vendor}\\{script}.exe" --background'),
            )
        )

    def _b_logon(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        r = self._r
        win = dev.os == "Windows"
        roll = r()
        action = "LogonSuccess" if roll < 0.75 else "LogonFailed" if roll < 0.95 else "LogonAttempted"
        logon_type = self._choice(pools.LOGON_TYPES) if win else self._choice(("Local", "Network", "Interactive"))
        user = dev.system if logon_type == "Service" else self._choice(dev.users)
        remote = logon_type in ("Network", "RemoteInteractive")
        p["ActionType"], p["LogonType"] = action, logon_type
        p["AccountName"], p["AccountDomain"], p["AccountSid"] = user.name, user.domain, user.sid
        p["Protocol"] = self._choice(("Kerberos", "NTLM", "Negotiate")) if win and remote else None
        p["FailureReason"] = self._choice(pools.FAILURE_REASONS) if action == "LogonFailed" else None
        p["IsLocalAdmin"] = (r() < 0.2) if win else None
        p["LogonId"] = self._int(10**5, 10**9) if win and action == "LogonSuccess" else None
        p["RemoteIP"] = self._private_ip() if remote else ""
        p["RemoteIPType"] = "Private" if remote else None
        p["RemotePort"] = self._int(49152, 65535) if remote and r() < 0.7 else None
        p["RemoteDeviceName"] = self._choice(self._devices).name if remote and r() < 0.6 else None
        p["ReportId"] = self._event_report_id(dev)
        if win:
            af: dict[str, Any] = {"IsLocalLogon": not remote}
            if r() < 0.4:
                af["ElevatedToken"] = r() < 0.3
        else:
            af = {
                "Terminal": "/dev/console" if logon_type == "Local" else f"/dev/ttys{self._int(0, 9):03d}",
                "PosixUserId": user.uid,
                "PosixPrimaryGroupName": user.group,
                "PosixPrimaryGroupId": user.gid,
                "PosixSecondaryGroups": [
                    {"Name": g, "PosixGroupId": i}
                    for g, i in (
                        ("everyone", 12),
                        ("localaccounts", 61),
                        ("_appserverusr", 79),
                        ("admin", 80),
                        ("_appserveradm", 81),
                        ("_lpadmin", 98),
                        ("_developer", 204),
                    )[: self._int(1, 7)]
                ],
            }
        p["AdditionalFields"] = self._enc.encode(af).decode()

    def _b_events(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        r = self._r
        action = self._choice(pools.DEVICE_EVENT_ACTIONS[dev.os])
        p["ActionType"] = action
        p["ReportId"] = self._event_report_id(dev)
        p["SHA256"] = None
        af: dict[str, Any] | None = None
        if action == "ScriptContent":
            script = self._choice(self._scripts)
            start = int(r() * len(script) * 0.5)
            af = {"ScriptContent": script[start:]}
            p["SHA256"] = self._hex(64)
        elif action == "PowerShellCommand":
            af = {"Command": self._choice(pools.PS_COMMANDS)}
        elif action == "DnsQueryResponse":
            host = self._expand("{domain}")
            af = {
                "DnsQueryString": host,
                "DnsQueryResult": [
                    {"DnsQueryType": "A", "DnsResponse": self._public_ip()} for _ in range(self._int(1, 4))
                ],
            }
        elif action == "NamedPipeEvent":
            pipe = self._expand(
                self._choice(
                    (
                        "mojo.{n}.{big}.{big}",
                        "LOCAL\\crashpad_{n}_{hex16}",
                        "lsarpc",
                        "srvsvc",
                        "PSHost.{big}.{n}.DefaultAppDomain.powershell",
                    )
                )
            )
            p["FileName"] = pipe
            af = {
                "PipeName": f"\\Device\\NamedPipe\\{pipe}",
                "PipeNamespace": "\\Device\\NamedPipe",
                "FileOperation": self._choice(("File opened", "File created")),
                "DesiredAccess": 1180063,
                "SharingFlags": 3,
                "ShareMode": "Read, Write",
                "RemoteClientsAccess": "AcceptRemote",
                "NamedPipeEnd": "Client",
                "ReadMode": "Byte",
                "PipeType": "Byte",
                "ThreadId": self._int(100, 20000),
                "IsNewFileOrPipe": False,
            }
        elif action in ("OpenProcessApiCall", "ProcessCreatedUsingWmiQuery", "AsrOfficeChildProcessAudited"):
            target = self._images[dev.os][self._pick(self._spawn_cum[dev.os])]
            sha1, sha256, md5, size = self._image_hashes(dev.os, target)
            p["FileName"], p["FolderPath"] = target.name, self._expand(target.path, user=dev.users[0].name)
            p["SHA1"], p["SHA256"], p["MD5"], p["FileSize"] = sha1, sha256, md5, size
            p["ProcessId"] = 4 * self._int(60, 16000)
            p["ProcessCreationTime"] = self._dt(ts - self._int(1, 3600) * TICKS)
            if action == "OpenProcessApiCall":
                af = {"DesiredAccess": self._choice((4096, 1040, 1410, 2097151))}
            else:
                cmd = self._choice(target.cmdlines) if target.cmdlines else f'"{target.path}"'
                p["ProcessCommandLine"] = self._expand(cmd, user=dev.users[0].name, org=self.org)
                af = {"IsAudit": True} if action.startswith("Asr") else None
        elif action == "AntivirusScanCompleted":
            af = {
                "ScanTypeIndex": self._int(1, 3),
                "ScanId": "{" + self._guid().upper() + "}",
                "Duration": self._int(20, 7200),
                "NumberOfScannedItems": self._int(1000, 900_000),
            }
        elif action == "LdapSearch":
            af = {
                "AttributeList": '["objectSid","sAMAccountName","memberOf","userAccountControl"]',
                "ScopeOfSearch": "WholeSubtree",
                "SearchFilter": f"(&(objectCategory=person)(objectClass=user)(sAMAccountName={dev.users[0].name}))",
                "DistinguishedName": f"DC=corp,DC={self.org},DC=com",
            }
        elif action == "FirewallOutboundConnectionBlocked":
            ip, _, port, _ = self._choice(self._endpoints)
            p["RemoteIP"], p["RemotePort"], p["LocalIP"], p["LocalPort"] = (
                ip,
                port,
                dev.local_ip,
                self._int(49152, 65535),
            )
        elif action == "SmartScreenUrlWarning":
            p["RemoteUrl"] = self._expand("{url}")
            af = {"Experience": self._choice(("Malicious", "Phishing", "Untrusted"))}
        p["AdditionalFields"] = None if af is None else self._enc.encode(af).decode()

    def _b_cert(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        r = self._r
        signer, issuer, ms_root, signer_hash, issuer_hash = self._choice(self._signers[dev.os])
        created = ts - self._int(30, 6 * 365) * 86400 * TICKS
        p["SHA1"] = self._hex(40)
        p["IsSigned"] = r() < 0.97
        p["IsTrusted"] = r() < 0.93
        p["IsRootSignerMicrosoft"] = ms_root
        p["Signer"], p["SignerHash"], p["Issuer"], p["IssuerHash"] = signer, signer_hash, issuer, issuer_hash
        p["SignatureType"] = "Catalog" if ms_root and r() < 0.5 else "Embedded"
        p["CertificateCreationTime"] = self._base(created // TICKS) + "Z"
        p["CertificateExpirationTime"] = self._base((created // TICKS) + self._int(365, 5 * 365) * 86400) + "Z"
        p["CertificateCountersignatureTime"] = (
            self._base(created // TICKS + self._int(1, 400) * 86400) + "Z" if r() < 0.3 else None
        )
        p["CrlDistributionPointUrls"] = self._choice(pools.CRL_URLS)
        p["CertificateSerialNumber"] = self._hex(self._choice((16, 32, 38, 40)))
        p["ReportId"] = self._event_report_id(dev)

    def _b_info(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        if dev.info is None:
            dev.info = self._device_info(dev)
        p.update(dev.info)
        users = [
            {"UserName": u.name, "DomainName": u.domain.upper(), "Sid": u.sid}
            if dev.os == "Windows"
            else {"UserName": u.name}
            for u in dev.users
            if self._r() < 0.9
        ]
        p["LoggedOnUsers"] = self._enc.encode(users).decode()
        p["ReportId"] = DOTNET_EPOCH_TICKS + received
        p["SensorHealthState"] = "Active" if self._r() < 0.97 else "Inactive"

    def _device_info(self, dev: Device) -> dict[str, Any]:
        win, mac = dev.os == "Windows", dev.os == "macOS"
        if win:
            platforms = [x for x in pools.WINDOWS_PLATFORMS if (x[3] == "Server") == dev.server]
            platform, build, info, dtype = self._choice(platforms)
            vendor, model = self._choice(pools.WINDOWS_MODELS)
            os_version, distribution = "10.0", None
        elif mac:
            platform, build, info, dtype = "macOS", None, "", "Workstation"
            vendor, model, os_version, distribution = "Apple", self._choice(pools.MAC_MODELS), "15.5", "macOS"
        else:
            distribution, os_version = self._choice(pools.LINUX_DISTROS)
            platform, build, info, dtype = "Linux", None, "", "Server"
            vendor, model = "Microsoft Corporation", "Virtual Machine"
        azure = dev.server and self._r() < 0.6
        vm = self._guid() if azure else None
        sub = self._guid() if azure else None
        return {
            "ClientVersion": "10.8760.26100.4652" if win else "101.25062.0003" if not mac else "20.126052.16.0",
            "PublicIP": dev.public_ip,
            "OSArchitecture": "64-bit",
            "OSPlatform": platform,
            "OSBuild": build,
            "OsBuildRevision": str(self._int(1000, 4700)) if win else None,
            "IsAzureADJoined": win and not dev.server,
            "JoinType": ("Hybrid Azure AD Join" if win and not dev.server else "Domain Joined")
            if win
            else "AAD Registered",
            "AadDeviceId": self._guid() if not dev.server else None,
            "RegistryDeviceTag": None if win else ("mac" if mac else None),
            "OSVersion": os_version,
            "OSVersionInfo": info,
            "OSDistribution": distribution,
            "Vendor": vendor,
            "Model": model,
            "DeviceCategory": "Endpoint",
            "DeviceType": dtype,
            "DeviceSubtype": dtype,
            "HardwareUuid": self._guid(),
            "IsInternetFacing": (self._r() < 0.1) if dev.server else None,
            "ExposureLevel": self._choice(("Low", "Medium", "Medium", "High")),
            "AzureVmId": vm,
            "AzureVmSubscriptionId": sub,
            "CloudPlatforms": '["Azure"]' if azure else None,
            "AzureResourceId": f"/subscriptions/{sub}/resourceGroups/rg-{self._choice(pools.PROJECTS)}/providers/"
            f"Microsoft.Compute/virtualMachines/{dev.name.split('.')[0]}"
            if azure
            else None,
            "DeviceDynamicTags": '["Servers"]' if dev.server and self._r() < 0.5 else None,
            "DeviceManualTags": '["Tier0"]' if dev.group.endswith("Tier 0") else None,
            "AssetValue": "High" if dev.group.endswith("Tier 0") else None,
            "AdditionalFields": self._enc.encode({"IsAzureADRegistered": True, "DeviceIdentity": dev.id[:8]}).decode()
            if win and self._r() < 0.3
            else None,
        }

    def _b_netinfo(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        if dev.adapters is None:
            dev.adapters = self._device_adapters(dev)
        p.update(self._choice(dev.adapters))
        p["ReportId"] = DOTNET_EPOCH_TICKS + received

    def _device_adapters(self, dev: Device) -> list[dict[str, Any]]:
        # The first adapter carries the device's network; virtual and tunnel adapters report little.
        names = {
            "Windows": (
                ("Ethernet", "Ethernet"),
                ("Wi-Fi", "Wireless80211"),
                ("vEthernet (Default Switch)", "Ethernet"),
                ("Bluetooth Network Connection", "Ethernet"),
                ("Local Area Connection* 1", "Wireless80211"),
                ("vEthernet (WSL)", "Ethernet"),
            ),
            "macOS": (
                ("en0", "Wireless80211"),
                ("utun13", "Unknown"),
                ("awdl0", "Unknown"),
                ("llw0", "Unknown"),
                ("bridge0", "Ethernet"),
            ),
            "Linux": (("eth0", "Ethernet"), ("docker0", "Ethernet"), (f"veth{self._hex(7)}", "Ethernet")),
        }[dev.os]
        out = []
        gateway = dev.local_ip.rsplit(".", 1)[0] + ".1"
        for i, (name, kind) in enumerate(names[: self._int(min(3, len(names)), len(names))]):
            primary = i == 0
            addresses = [
                {
                    "IPAddress": dev.local_ip if primary else self._private_ip(),
                    "SubnetPrefix": 24,
                    "AddressType": "Private",
                },
                {
                    "IPAddress": f"fe80::{self._hex(4)}:{self._hex(4)}:{self._hex(4)}:{self._hex(4)}",
                    "SubnetPrefix": 64,
                    "AddressType": "Private",
                },
            ]
            out.append(
                {
                    "NetworkAdapterName": name,
                    "NetworkAdapterType": kind,
                    "NetworkAdapterStatus": "Up" if primary or self._r() < 0.7 else "Down",
                    "TunnelType": "None",
                    "MacAddress": "-".join(self._hex(2).upper() for _ in range(6)),
                    "ConnectedNetworks": self._enc.encode(
                        [
                            {
                                "Name": self.ad_domain,
                                "Description": self.ad_domain,
                                "IsConnectedToInternet": True,
                                "Category": "Domain",
                            }
                        ]
                    ).decode()
                    if primary
                    else None,
                    "DnsAddresses": self._enc.encode([gateway[:-1] + "10", gateway[:-1] + "11"]).decode()
                    if primary
                    else None,
                    "DefaultGateways": self._enc.encode([gateway]).decode() if primary else None,
                    "IPv4Dhcp": gateway if primary and not dev.server else None,
                    "IPv6Dhcp": None,
                    "IPAddresses": self._enc.encode(addresses).decode(),
                    "NetworkAdapterVendor": self._choice(("Intel Corporation", "Realtek", "Microsoft", "Broadcom"))
                    if dev.os == "Windows"
                    else None,
                }
            )
        return out
