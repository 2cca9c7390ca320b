"""Record builders for the twelve non-Device tables: mail, URL clicks, identity, cloud apps and alerts.

They draw on the same world as the Device builders (its Windows devices, their domain users and processes) and
keep the links a hunter joins on: an email's rows share its NetworkMessageId across EmailEvents, EmailUrlInfo,
EmailAttachmentInfo and EmailPostDeliveryEvents; UrlClickEvents clicks a (NetworkMessageId, Url) that an
EmailUrlInfo row carried; AlertEvidence rows share their AlertInfo's AlertId and point at the world's devices,
process images (same SHA1/SHA256), accounts, IPs and mailboxes; the identity and cloud-app tables name the world's
domain accounts, their devices and its domain controllers. A child row is built from parents already emitted
(`has_parent`); with none, it invents its parent without emitting it (only a direct `record()` call or a mix
without the parent table does that: `messages()` draws the parent table instead, see `traffic.PARENTS`).
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ingestor_tools.generate import pools
from ingestor_tools.generate.builders import TableBuilders
from ingestor_tools.generate.world import TICKS, Device, Proc, User

RECENT = 256  # parents a child row may still refer to


@dataclass(frozen=True, slots=True)
class Account:
    """A domain account: a Windows device's user, with the directory facts the identity tables carry."""

    user: User
    device: Device  # where it signs in (the device whose DeviceLogonEvents name it)
    display: str
    given: str
    surname: str
    department: str
    job: str
    created: int  # ticks
    cloud_sid: str
    admin: bool

    @property
    def upn(self) -> str:
        assert self.user.upn is not None
        return self.user.upn


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str
    object_id: str | None
    account: Account | None  # None for an external recipient


@dataclass(slots=True)
class Message:
    """One email as Defender for Office 365 saw it; its rows are spread over the mail tables."""

    nmid: str
    imid: str
    ts: int
    direction: str
    sender: str
    sender_display: str
    sender_object_id: str | None
    sender_ip: str
    recipients: list[Recipient]
    subject: str
    urls: list[str]
    attachments: list[tuple[str, str, str, str, int]]  # (FileName, FileType, FileExtension, SHA256, FileSize)
    size: int
    language: str
    cluster: int
    verdict: tuple[str, str, str, str, str, str, str] | None
    bulk: int | None
    connector: str | None
    first_contact: bool


@dataclass(slots=True)
class Alert:
    """One alert and the entities its evidence rows point at."""

    alert_id: str
    ts: int
    kind: tuple[str, str, str, str, str, str, tuple[str, ...]]
    device: Device
    account: Account
    proc: Proc | None
    message: Message | None
    url: str | None
    ip: str


@dataclass(slots=True)
class _XdrState:
    accounts: list[Account]
    dcs: list[tuple[str, str]]  # (FQDN, IP) of the domain controllers
    mail_rows: deque[tuple[Message, int]] = field(default_factory=deque)  # EmailEvents rows still to emit
    messages: deque[Message] = field(default_factory=lambda: deque(maxlen=RECENT))  # emitted messages
    url_rows: deque[tuple[Message, int]] = field(default_factory=deque)
    url_messages: deque[Message] = field(default_factory=lambda: deque(maxlen=RECENT))
    attachment_rows: deque[tuple[Message, int]] = field(default_factory=deque)
    attachment_messages: deque[Message] = field(default_factory=lambda: deque(maxlen=RECENT))
    clicked: deque[tuple[Message, int]] = field(default_factory=lambda: deque(maxlen=RECENT))  # emitted URL rows
    alerts: deque[Alert] = field(default_factory=lambda: deque(maxlen=RECENT))
    evidence_rows: deque[tuple[Alert, str]] = field(default_factory=deque)
    info_next: int = 0
    account_cum: list[float] = field(default_factory=list)


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


class XdrBuilders(TableBuilders):
    """`TableBuilders` plus one builder per non-Device table; their world state is made on first use, so traffic
    of the Device tables alone draws exactly what it drew before these tables existed."""

    _xdr_state: _XdrState | None = None

    # ---- shared world ---------------------------------------------------------------------------------

    @property
    def _xdr(self) -> _XdrState:
        state = self._xdr_state
        if state is None:
            state = self._xdr_state = _XdrState(self._new_accounts(), self._new_dcs())
        return state

    def _new_accounts(self) -> list[Account]:
        seen: dict[str, Account] = {}
        for dev in self._devices:
            if dev.os != "Windows":
                continue
            for user in dev.users:
                if user.system or user.upn is None or user.upn in seen:
                    continue
                admin = user.name.startswith("adm-")
                given = user.name.removeprefix("adm-").split(".")[0].title()
                surname = user.name.split(".")[1].title() if "." in user.name else "Admin"
                department, job = self._choice(pools.DEPARTMENTS)
                seen[user.upn] = Account(
                    user=user,
                    device=dev,
                    display=f"{given} {surname}",
                    given=given,
                    surname=surname,
                    department="IT" if admin else department,
                    job="Systems Administrator" if admin else job,
                    created=dev.boot - self._int(30, 2000) * 86400 * TICKS,
                    cloud_sid=f"S-1-12-1-{self._int(10**8, 4 * 10**9)}-{self._int(10**8, 4 * 10**9)}-"
                    f"{self._int(10**8, 4 * 10**9)}-{self._int(10**8, 4 * 10**9)}",
                    admin=admin,
                )
        return list(seen.values())  # device 0 is always Windows, so there is at least one

    def _new_dcs(self) -> list[tuple[str, str]]:
        return [(f"dc{i:02d}.{self.ad_domain}", self._private_ip()) for i in range(1, self._int(2, 3) + 1)]

    def _account(self) -> Account:
        """An account, as often as its device is active: the busy users sign in, mail and work the most."""
        state = self._xdr
        if not state.account_cum:
            state.account_cum = self._cumulative(a.device.activity for a in state.accounts)
        return state.accounts[self._pick(state.account_cum)]

    def _dc(self) -> tuple[str, str]:
        return self._choice(self._xdr.dcs)

    def _nmid(self) -> str:
        h = self._hex(32)
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-08de{h[20:28]}"

    def _big(self) -> str:
        return str(10**18 + self._bits(63))  # 19 or 20 digits, as the captured mail ReportIds carry

    def _mail_domain(self) -> str:
        return f"{self.org}.com"

    # ---- mail -----------------------------------------------------------------------------------------

    def _new_message(self, ts: int) -> Message:
        r = self._r
        roll = r()
        direction = "Inbound" if roll < 0.72 else "Intra-org" if roll < 0.92 else "Outbound"
        accounts = self._xdr.accounts
        if direction == "Inbound":
            template, display, ip = self._choice(pools.MAIL_SENDERS)
            first, last = self._choice(pools.FIRST_NAMES), self._choice(pools.LAST_NAMES)
            fill = {"user": first, "User": first.title(), "last": last, "Last": last.title()}
            fill["partner"] = self._choice(pools.MAIL_PARTNERS)
            address, _, sender_display = self._expand(f"{template}\n{display}", **fill).partition("\n")
            sender, sender_object_id = address.lower(), None
            sender_ip = self._expand(ip)
        else:
            author = self._choice(accounts)
            sender, sender_display, sender_object_id = author.upn, author.display, author.user.object_id
            sender_ip = self._private_ip() if direction == "Intra-org" else self._choice(self._egress)
        count = 1 if r() < 0.8 else self._int(2, min(5, max(2, len(accounts))))
        if direction == "Outbound":
            partner = self._choice(pools.MAIL_PARTNERS)
            names = dict.fromkeys(self._choice(pools.FIRST_NAMES) for _ in range(count))
            recipients = [Recipient(f"{name}@{partner}.com", None, None) for name in names]
        else:
            chosen = {a.upn: a for a in (self._choice(accounts) for _ in range(count))}.values()
            recipients = [Recipient(a.upn, a.user.object_id, a) for a in chosen]
        n_urls = 0 if r() < 0.35 else min(1 + int(-2.2 * math.log(1.0 - r())), 24)
        urls = [self._mail_url() for _ in range(n_urls)]
        attachments = []
        if r() < 0.22:
            for _ in range(1 if r() < 0.8 else self._int(2, 4)):
                name, kind, ext = self._choice(pools.MAIL_ATTACHMENTS)
                attachments.append((self._expand(name), kind, ext, self._hex(64), self._lognormal(90_000, 1.6) + 40))
        verdict = self._choice(pools.MAIL_VERDICTS) if direction == "Inbound" and r() < 0.06 else None
        bulk = self._int(4, 9) if direction == "Inbound" and "Newsletter" in sender_display else None
        return Message(
            nmid=self._nmid(),
            imid=f"<{self._guid()}@{self._choice(pools.MAIL_HOSTS)}>",
            ts=ts,
            direction=direction,
            sender=sender,
            sender_display=sender_display,
            sender_object_id=sender_object_id,
            sender_ip=sender_ip,
            recipients=recipients,
            subject=self._expand(self._choice(pools.MAIL_SUBJECTS), User=sender_display.split(" ")[0]),
            urls=urls,
            attachments=attachments,
            size=self._lognormal(60_000, 1.1) + 4000 + sum(a[4] for a in attachments),
            language=self._choice(pools.MAIL_LANGUAGES),
            cluster=self._int(10**8, 4 * 10**9),
            verdict=verdict,
            bulk=bulk,
            connector=self._expand(self._choice(pools.MAIL_CONNECTORS)) if r() < 0.1 else None,
            first_contact=direction == "Inbound" and r() < 0.3,
        )

    def _mail_url(self) -> str:
        template = self._choice(pools.MAIL_URLS)
        if "{path}" in template:
            return self._expand(template, path=self._expand(self._choice(pools.URL_PATHS)))
        return self._expand(template)

    def _b_email(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        state = self._xdr
        if state.mail_rows:
            msg, index = state.mail_rows.popleft()
        else:
            msg, index = self._new_message(ts), 0
            state.mail_rows.extend((msg, i) for i in range(1, len(msg.recipients)))
            state.messages.append(msg)
            if msg.urls:
                state.url_messages.append(msg)
                state.url_rows.extend((msg, i) for i in range(len(msg.urls)))
            if msg.attachments:
                state.attachment_messages.append(msg)
                state.attachment_rows.extend((msg, i) for i in range(len(msg.attachments)))
        rcpt = msg.recipients[index]
        sender_domain = msg.sender.rsplit("@", 1)[-1]
        verdict = msg.verdict
        p["NetworkMessageId"], p["InternetMessageId"] = msg.nmid, msg.imid
        p["SenderMailFromAddress"] = p["SenderFromAddress"] = msg.sender
        p["SenderDisplayName"], p["SenderObjectId"] = msg.sender_display, msg.sender_object_id
        p["SenderMailFromDomain"] = p["SenderFromDomain"] = sender_domain
        p["SenderIPv4"], p["SenderIPv6"] = msg.sender_ip, None
        p["RecipientEmailAddress"], p["RecipientObjectId"] = rcpt.address, rcpt.object_id
        p["Subject"], p["EmailClusterId"], p["EmailDirection"] = msg.subject, msg.cluster, msg.direction
        if verdict is None:
            p["DeliveryAction"] = "Delivered"
            p["DeliveryLocation"] = "Inbox/folder" if msg.direction != "Outbound" else "On-premises/External"
            p["ThreatTypes"] = p["ThreatNames"] = p["DetectionMethods"] = p["ConfidenceLevel"] = None
            p["EmailAction"] = p["EmailActionPolicy"] = p["EmailActionPolicyGuid"] = None
        else:
            threat, methods, confidence, action, location, email_action, policy = verdict
            p["DeliveryAction"], p["DeliveryLocation"] = action, location
            p["ThreatTypes"], p["DetectionMethods"], p["ConfidenceLevel"] = threat, methods, confidence
            p["ThreatNames"] = "Trojan:HTML/Phish.AB!MTB" if threat == "Phish" and self._r() < 0.4 else None
            p["EmailAction"], p["EmailActionPolicy"] = email_action, policy
            p["EmailActionPolicyGuid"] = self._guid()
        p["BulkComplaintLevel"] = msg.bulk
        spf = "pass" if msg.direction != "Inbound" or self._r() < 0.9 else "fail"
        p["AuthenticationDetails"] = _json(
            {"SPF": spf, "DKIM": self._choice(("pass", "pass", "none")), "DMARC": spf, "CompAuth": spf}
        )
        p["AttachmentCount"], p["UrlCount"] = len(msg.attachments), len(msg.urls)
        p["EmailLanguage"], p["Connectors"] = msg.language, msg.connector
        p["OrgLevelAction"] = "Allow" if msg.connector else None
        p["OrgLevelPolicy"] = "Connection policy" if msg.connector else None
        p["UserLevelAction"] = p["UserLevelPolicy"] = None
        p["ReportId"] = f"{msg.nmid}-{self._big()}-{index + 1}"
        p["To"] = [r.address for r in msg.recipients]
        p["Cc"] = []
        p["RecipientDomain"] = rcpt.address.rsplit("@", 1)[-1]
        p["EmailSize"], p["IsFirstContact"] = msg.size, msg.first_contact

    def _message_from(self, pool: deque[Message]) -> Message | None:
        if not pool:
            return None
        return pool[len(pool) - 1 - int(len(pool) * self._r() * self._r())]  # recent ones more often

    def _b_email_url(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        state = self._xdr
        if state.url_rows:
            msg, index = state.url_rows.popleft()
        else:
            found = self._message_from(state.url_messages)
            msg = found or self._new_message(ts)
            if not msg.urls:
                msg.urls.append(self._mail_url())
            index = int(self._r() * len(msg.urls))
        url = msg.urls[index]
        p["NetworkMessageId"], p["Url"] = msg.nmid, url
        p["UrlDomain"] = url.split("/")[2].split("@")[-1].split(":")[0]
        p["UrlLocation"] = self._choice(pools.URL_LOCATIONS)
        p["UrlChainId"], p["UrlChainPosition"] = None, 0
        p["ReportId"] = f"{msg.nmid}-{self._big()}"
        if any(r.account is not None for r in msg.recipients):
            state.clicked.append((msg, index))

    def _b_email_attachment(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        state = self._xdr
        if state.attachment_rows:
            msg, index = state.attachment_rows.popleft()
        else:
            msg = self._message_from(state.attachment_messages) or self._new_message(ts)
            if not msg.attachments:
                name, kind, ext = self._choice(pools.MAIL_ATTACHMENTS)
                msg.attachments.append((self._expand(name), kind, ext, self._hex(64), self._lognormal(90_000, 1.6)))
            index = int(self._r() * len(msg.attachments))
        name, kind, ext, sha256, size = msg.attachments[index]
        rcpt = self._choice(msg.recipients)
        malware = msg.verdict is not None and msg.verdict[0] == "Malware"
        p["NetworkMessageId"] = msg.nmid
        p["SenderFromAddress"], p["SenderDisplayName"] = msg.sender, msg.sender_display
        p["SenderObjectId"] = msg.sender_object_id
        p["RecipientEmailAddress"], p["RecipientObjectId"] = rcpt.address, rcpt.object_id
        p["FileName"], p["FileType"], p["SHA256"], p["FileSize"] = name, kind, sha256, size
        p["ThreatTypes"] = "Malware" if malware else None
        p["ThreatNames"] = "Trojan:Win32/Wacatac.B!ml" if malware else None
        p["DetectionMethods"] = '{"Malware":["File detonation"]}' if malware else None
        p["ReportId"] = f"{msg.nmid}-{self._big()}-{sha256}-{index + 1}"
        p["FileExtension"] = ext or None

    def _b_email_post_delivery(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        msg = self._message_from(self._xdr.messages) or self._new_message(ts)
        action, kind, trigger, result, location, threat, methods = self._choice(pools.POST_DELIVERY)
        p["NetworkMessageId"], p["InternetMessageId"] = msg.nmid, msg.imid
        p["Action"], p["ActionType"], p["ActionTrigger"], p["ActionResult"] = action, kind, trigger, result
        p["RecipientEmailAddress"] = self._choice(msg.recipients).address
        p["DeliveryLocation"], p["ThreatTypes"], p["DetectionMethods"] = location, threat, methods
        p["ReportId"] = f"{msg.nmid}-{self._big()}"
        p["SenderFromAddress"] = msg.sender
        p["EmailDirection"] = msg.direction if self._r() < 0.5 else None

    def _b_url_click(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        state = self._xdr
        if state.clicked:  # of two links, people click the call to action: the tracked, longer one
            pair = [state.clicked[len(state.clicked) - 1 - int(len(state.clicked) * self._r())] for _ in range(2)]
            msg, index = max(pair, key=lambda c: len(c[0].urls[c[1]]))
        else:
            msg = self._message_from(state.url_messages) or self._new_message(ts)
            if not msg.urls:
                msg.urls.append(self._mail_url())
            index = int(self._r() * len(msg.urls))
        url = msg.urls[index]
        insiders = [r.account for r in msg.recipients if r.account is not None]
        account = self._choice(insiders) if insiders else self._account()
        action = self._choice(pools.URL_CLICK_ACTIONS)
        app, version = self._choice(pools.URL_CLICK_APPS)
        p["Url"], p["ActionType"], p["AccountUpn"], p["Workload"] = url, action, account.upn, "Email"
        p["NetworkMessageId"] = msg.nmid
        blocked = action != "ClickAllowed"
        p["ThreatTypes"] = "Phish" if blocked else None
        p["DetectionMethods"] = '{"Phish":["URL detonation reputation"]}' if blocked else None
        p["IPAddress"] = account.device.public_ip
        p["IsClickedThrough"] = blocked and self._r() < 0.2
        redirect = "/click" in url or "/els/" in url  # a tracking link: the chain ends where it redirects to
        chain = [url, self._expand("https://{domain}") + self._expand(self._choice(pools.URL_PATHS))]
        p["UrlChain"] = _json(chain if redirect or self._r() < 0.2 else chain[:1])
        p["ReportId"] = self._guid()
        p["AppName"], p["AppVersion"], p["SourceId"] = app, version, msg.nmid

    # ---- alerts ---------------------------------------------------------------------------------------

    def _alert_id(self, service: str) -> str:
        if service == "Microsoft Defender for Endpoint":
            return f"da{self._int(10**17, 10**18 - 1)}_{self._int(10**8, 2 * 10**9)}"
        if service == "AAD Identity Protection":
            return "ad" + self._hex(40)
        if "Office 365" in service or service == "Microsoft Defender XDR":
            return "fa" + self._guid()
        return f"{self._guid()}_1"

    def _new_alert(self, ts: int) -> Alert:
        kind = self._choice(pools.ALERT_KINDS)
        account = self._account()
        windows = [d for d in self._devices if d.os == "Windows"]
        device = account.device if self._r() < 0.7 else self._choice(windows)
        proc = self._pick_proc(device, ts) if "Process" in kind[6] or "File" in kind[6] else None
        message = None
        if "MailMessage" in kind[6]:
            pool = self._xdr.messages
            threats = [m for m in pool if m.verdict is not None]
            message = self._choice(threats) if threats else self._message_from(pool) or self._new_message(ts)
        url = self._choice(message.urls) if message is not None and message.urls else self._mail_url()
        if "Ip" in kind[6]:  # a public address the world's devices talk to (DeviceNetworkEvents' RemoteIP)
            ip = self._choice([e[0] for e in self._endpoints[:200] if e[3] == "Public"])
        else:
            ip = account.device.public_ip
        return Alert(self._alert_id(kind[0]), ts, kind, device, account, proc, message, url, ip)

    def _b_alert_info(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        alert = self._new_alert(ts)
        state = self._xdr
        state.alerts.append(alert)
        state.evidence_rows.extend((alert, entity) for entity in alert.kind[6])
        service, detection, title, category, severity, techniques, _ = alert.kind
        p["AlertId"], p["Title"], p["Category"], p["Severity"] = alert.alert_id, title, category, severity
        p["ServiceSource"], p["DetectionSource"], p["AttackTechniques"] = service, detection, techniques
        p["MachineGroup"] = alert.device.group if service == "Microsoft Defender for Endpoint" else None

    def _b_alert_evidence(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        state = self._xdr
        if state.evidence_rows:
            alert, entity = state.evidence_rows.popleft()
        else:
            alert = state.alerts[-1 - int(len(state.alerts) * self._r())] if state.alerts else self._new_alert(ts)
            entity = self._choice(alert.kind[6])
        service, detection, title, category, severity, techniques, _ = alert.kind
        for column in list(p):  # the template's entity columns start empty
            if column not in ("Timestamp", "ReportId"):
                p[column] = None
        p["AlertId"], p["Title"], p["Categories"] = alert.alert_id, title, _json([category])
        p["AttackTechniques"], p["ServiceSource"], p["DetectionSource"] = techniques, service, detection
        p["Severity"], p["EntityType"], p["CloudPlatform"], p["SubscriptionId"] = severity, entity, "", ""
        p["EvidenceRole"] = "Impacted" if entity in ("Machine", "User", "Mailbox") else "Related"
        account, device = alert.account, alert.device
        extra: dict[str, Any]
        if entity == "Machine":
            p["DeviceId"], p["DeviceName"], p["MachineGroup"] = device.id, device.name, device.group
            short, _, domain = device.name.partition(".")
            extra = {"HostName": short, "DnsDomain": domain, "OSFamily": device.os, "MdatpDeviceId": device.id}
        elif entity in ("Process", "File"):
            running = alert.proc or self._pick_proc(device, ts)
            f = running.fields
            p["FileName"] = f["InitiatingProcessFileName"]
            p["FolderPath"] = f["InitiatingProcessFolderPath"].rsplit("\\", 1)[0]
            p["SHA1"], p["SHA256"] = f["InitiatingProcessSHA1"], f["InitiatingProcessSHA256"]
            p["FileSize"] = f["InitiatingProcessFileSize"]
            p["DeviceId"], p["DeviceName"] = device.id, device.name
            if entity == "Process":
                p["ProcessCommandLine"] = f["InitiatingProcessCommandLine"]
                extra = {"ProcessId": str(f["InitiatingProcessId"]), "CommandLine": f["InitiatingProcessCommandLine"]}
            else:
                extra = {"Directory": p["FolderPath"], "Name": p["FileName"]}
        elif entity in ("User", "Mailbox"):
            user = account.user
            p["AccountName"], p["AccountDomain"], p["AccountSid"] = user.name, user.domain, user.sid
            p["AccountObjectId"], p["AccountUpn"] = user.object_id, account.upn
            if entity == "Mailbox":
                extra = {"MailboxPrimaryAddress": account.upn, "DisplayName": account.display, "Upn": account.upn}
            else:
                extra = {"Name": user.name, "NTDomain": user.domain.upper(), "UPNSuffix": self._mail_domain()}
        elif entity == "MailMessage":
            msg = alert.message or self._new_message(ts)
            p["NetworkMessageId"], p["EmailSubject"] = msg.nmid, msg.subject
            extra = {"Recipient": msg.recipients[0].address, "Sender": msg.sender, "NetworkMessageId": msg.nmid}
            extra["Urls"] = msg.urls[:5]
        elif entity == "Url":
            p["RemoteUrl"] = alert.url
            extra = {"Url": alert.url}
        else:  # Ip
            country, city, _, _ = self._choice(pools.CLOUD_ISPS)
            p["RemoteIP"] = alert.ip
            extra = {"Address": alert.ip, "Location": {"CountryCode": country, "City": city.title()}, "Type": "ip"}
        p["AdditionalFields"] = _json(extra)

    # ---- cloud apps -----------------------------------------------------------------------------------

    def _b_cloud_app(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        r = self._r
        account = self._account()
        app, app_id, workload, actions = self._choice(pools.CLOUD_APPS)
        action = self._choice(actions)
        country, city, isp, category = self._choice(pools.CLOUD_ISPS[2:] if r() < 0.7 else pools.CLOUD_ISPS)
        platform, device_type, agent = self._choice(pools.CLIENT_PLATFORMS)
        ip = account.device.public_ip if r() < 0.8 else self._public_ip()
        obj_name = obj_type = obj_id = None
        if workload in ("SharePoint", "OneDrive"):
            obj_name = self._expand("{doc}") + self._choice(pools.DOC_EXTS)
            site = "sites/{proj}" if workload == "SharePoint" else f"personal/{account.user.name.replace('.', '_')}"
            obj_id = self._expand(f"https://{{org}}.sharepoint.com/{site}/Shared Documents/") + obj_name
            obj_type = "File"
        elif action in ("Send", "MoveToDeletedItems", "New-InboxRule"):
            obj_name, obj_type = action, "Task"
        created = self._iso(ts)[:19] + "Z"
        raw: dict[str, Any] = {
            "CreationTime": created,
            "Id": self._guid(),
            "Operation": action,
            "OrganizationId": self.tenant_id,
            "RecordType": self._choice((2, 6, 15, 25, 50)),
            "ResultStatus": "Succeeded",
            "UserKey": account.user.object_id,
            "UserType": 2 if account.admin else 0,
            "Version": 1,
            "Workload": workload,
            "ClientIP": ip,
            "UserId": account.upn,
            "AppAccessContext": {"AADSessionId": self._guid(), "IssuedAtTime": created, "UniqueTokenId": self._b64(16)},
        }
        if obj_id is not None:
            raw |= {"ObjectId": obj_id, "SourceFileName": obj_name, "SiteUrl": obj_id.rsplit("/Shared", 1)[0]}
        if workload == "Exchange":
            raw |= {"MailboxGuid": self._guid(), "MailboxOwnerUPN": account.upn, "ClientInfoString": agent}
        p["ActionType"], p["Application"], p["ApplicationId"] = action, app, app_id
        p["AccountDisplayName"], p["AccountObjectId"] = account.display, account.user.object_id
        p["AccountId"] = account.user.object_id
        p["DeviceType"], p["OSPlatform"] = device_type, platform
        p["IPAddress"], p["IsAnonymousProxy"] = ip, False
        p["CountryCode"], p["City"], p["ISP"] = country, city, isp
        p["UserAgent"] = agent
        p["IsAdminOperation"] = account.admin and workload == "Azure"
        p["ActivityObjects"] = [
            {
                "Type": "User",
                "Role": "Actor",
                "Name": account.display,
                "Id": account.user.object_id,
                "ApplicationId": 11161,
                "ApplicationInstance": 0,
            }
        ] + ([{"Type": obj_type, "Role": "Target", "Name": obj_name, "Id": obj_id}] if obj_id else [])
        p["AdditionalFields"] = {"IsSatelliteProvider": False}
        p["ActivityType"] = "Basic" if obj_type != "Task" else "Run"
        p["ObjectName"], p["ObjectType"], p["ObjectId"] = obj_name, obj_type, obj_id
        p["AppInstanceId"], p["AccountType"] = 0, "Admin" if account.admin else "Regular"
        p["IsExternalUser"], p["IsImpersonated"] = False, False
        p["IPTags"], p["IPCategory"] = [isp], category
        p["UserAgentTags"] = None
        p["RawEventData"] = raw
        p["UncommonForUser"] = [] if r() < 0.9 else ["ISP"]
        p["LastSeenForUser"] = {"ActionType": 0, "ISP": 0 if r() < 0.9 else -1, "IPAddress": 0, "Application": 0}
        p["AuditSource"] = "Defender for Cloud Apps app connector"
        p["ReportId"] = f"{self._int(10**7, 10**8 - 1)}_{app_id}_{self._guid()}"

    # ---- identity -------------------------------------------------------------------------------------

    def _identity_account(self, p: dict[str, Any], account: Account) -> None:
        user = account.user
        p["AccountName"], p["AccountDomain"], p["AccountUpn"] = user.name, self.ad_domain, account.upn
        p["AccountSid"], p["AccountObjectId"], p["AccountDisplayName"] = user.sid, user.object_id, account.display

    def _b_identity_logon(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        r = self._r
        account = self._account()
        device = account.device
        self._identity_account(p, account)
        failed = r() < 0.08
        p["ActionType"] = "LogonFailed" if failed else "LogonSuccess"
        p["FailureReason"] = self._choice(pools.LOGON_FAILURES) if failed else None
        if r() < 0.55:  # on premises, through a domain controller
            dc, dc_ip = self._dc()
            kerberos = r() < 0.8
            p["Application"], p["LogonType"] = "Active Directory", self._choice(pools.AD_LOGON_TYPES)
            p["Protocol"] = "Kerberos" if kerberos else "Ntlm"
            p["DeviceName"], p["IPAddress"], p["Port"] = device.name, device.local_ip, str(self._int(49152, 65535))
            p["DeviceType"] = p["OSPlatform"] = None
            p["DestinationDeviceName"], p["DestinationIPAddress"] = dc, dc_ip
            p["DestinationPort"] = "88" if kerberos else "445"
            p["TargetDeviceName"] = self._choice(self._devices).name if r() < 0.5 else None
            p["Location"] = p["ISP"] = None
            p["AdditionalFields"] = {
                "Count": "1",
                "TO.DEVICE": dc.split(".")[0].upper(),
                "ACTOR.DEVICE": device.name.split(".")[0].upper(),
            }
            p["UncommonForUser"], p["LastSeenForUser"] = None, None
        else:  # a cloud sign-in
            country, _, isp, _ = self._choice(pools.CLOUD_ISPS)
            platform, device_type, _ = self._choice(pools.CLIENT_PLATFORMS)
            p["Application"], p["LogonType"] = (
                self._choice(pools.CLOUD_LOGON_APPS),
                self._choice(pools.CLOUD_LOGON_TYPES),
            )
            p["Protocol"], p["DeviceName"] = None, None
            p["IPAddress"], p["Port"] = device.public_ip, None
            p["DeviceType"], p["OSPlatform"] = device_type, platform
            p["DestinationDeviceName"] = p["DestinationIPAddress"] = p["DestinationPort"] = None
            p["TargetDeviceName"] = None
            p["Location"], p["ISP"] = country, isp
            p["AdditionalFields"] = {
                "ARG.CLOUD_SERVICE": p["Application"],
                "Request ID": self._guid(),
                "Pass-through authentication": "false",
                "ACTOR.ALIAS": account.display,
                "ACTOR.ENTITY_USER": account.display,
            }
            p["UncommonForUser"] = []
            p["LastSeenForUser"] = {"ActionType": 0, "OSPlatform": 0, "ISP": 0, "CountryCode": 0, "IPAddress": 0}
        p["TargetAccountDisplayName"] = None
        p["ReportId"] = self._hex(64) if p["Application"] != "Active Directory" else self._guid()

    def _b_identity_query(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        r = self._r
        account = self._account()
        device = account.device
        dc, dc_ip = self._dc()
        action, query_type, protocol, port, target = self._choice(pools.AD_QUERIES)
        machine = r() < 0.4  # the device's own machine account asks
        fill = {
            "server": dc,
            "group": self._choice(pools.AD_GROUPS),
            "account": self._account().user.name,
        }
        p["ActionType"], p["Application"], p["QueryType"] = action, "Active Directory", query_type
        p["QueryTarget"] = self._expand(target, **fill)
        p["Query"] = None if protocol != "Ldap" else f"(&(objectCategory=person)(sAMAccountName={fill['account']}))"
        p["Protocol"] = protocol
        if machine:
            p["AccountName"] = p["AccountDomain"] = p["AccountUpn"] = p["AccountSid"] = p["AccountObjectId"] = None
            p["AccountDisplayName"] = device.name.split(".")[0].upper() + "$"
        else:
            self._identity_account(p, account)
        p["DeviceName"], p["IPAddress"], p["Port"] = device.name, device.local_ip, str(self._int(49152, 65535))
        p["DestinationDeviceName"], p["DestinationIPAddress"], p["DestinationPort"] = dc, dc_ip, str(port)
        p["TargetDeviceName"] = p["TargetAccountUpn"] = p["TargetAccountDisplayName"] = p["Location"] = None
        p["IsAdminOperation"] = account.admin and not machine
        p["AdditionalFields"] = {
            "Count": "1",
            "ARG.TASK": action,
            "TO.DEVICE": dc.split(".")[0].upper(),
            "ACTOR.DEVICE": device.name.split(".")[0].upper(),
            "SourceComputerOperatingSystemType": "windows",
            "DestinationComputerOperatingSystemType": "windows",
        }
        p["ReportId"] = f"{self._guid()}_{self._int(10**8, 10**9)}_{(ts // TICKS) * 1000}_{self._int(1000, 30000)}"

    def _b_identity_directory(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        # No public record of this table exists (tools/ingestor_tools/samples/SOURCES.md): the columns are the
        # schema's, their meanings those of Microsoft's table reference (defender-xdr/advanced-hunting-
        # identitydirectoryevents-table.md): the actor is the Account*, the account changed the TargetAccount*,
        # the domain controller that processed it the Destination*; ActionType values and AdditionalFields keys
        # are those published hunting queries over this table filter on and read.
        r = self._r
        action = self._choice(pools.DIRECTORY_ACTIONS)
        target = self._account()
        admins = [a for a in self._xdr.accounts if a.admin]
        actor = target if action == "Account Password changed" and r() < 0.7 else self._choice(admins or [target])
        dc, dc_ip = self._dc()
        device = actor.device
        self._identity_account(p, actor)
        p["ActionType"], p["Application"] = action, "Active Directory"
        p["TargetAccountUpn"], p["TargetAccountDisplayName"] = target.upn, target.display
        p["TargetDeviceName"] = None
        p["DestinationDeviceName"], p["DestinationIPAddress"] = dc, dc_ip
        p["DestinationPort"], p["Protocol"] = "389", "Ldap"
        p["DeviceName"], p["IPAddress"], p["Port"] = device.name, device.local_ip, str(self._int(49152, 65535))
        p["Location"] = p["ISP"] = None
        p["ReportId"] = self._guid()
        extra: dict[str, Any] = {
            "ACTOR.ACCOUNT": actor.display,
            "ACTOR.DEVICE": device.name.split(".")[0].upper(),
            "TARGET_OBJECT.USER": target.display,
            "TO.DEVICE": dc.split(".")[0].upper(),
        }
        if action == "Group Membership changed":
            group = self._choice(pools.AD_GROUPS)
            extra["TO.GROUP" if r() < 0.7 else "FROM.GROUP"] = group
        p["AdditionalFields"] = extra
        p["IsAdminOperation"] = actor.admin

    def _b_identity_info(self, p: dict[str, Any], dev: Device, proc: Proc | None, ts: int, received: int) -> None:
        r = self._r
        state = self._xdr
        account = state.accounts[state.info_next % len(state.accounts)]
        state.info_next += 1
        user = account.user
        hybrid = r() < 0.8
        p["ReportId"], p["IdentityId"] = self._guid(), f"User_{self.tenant_id}_{self._guid()}"
        p["AccountName"], p["AccountDomain"], p["AccountUpn"] = user.name, self.ad_domain, account.upn
        p["AccountObjectId"], p["AccountDisplayName"] = user.object_id, account.display
        p["GivenName"], p["Surname"] = account.given, account.surname
        p["Department"], p["JobTitle"], p["EmailAddress"] = account.department, account.job, account.upn
        p["Manager"] = None if account.admin else self._account().display
        p["CreatedDateTime"] = self._base(account.created // TICKS) + "Z"
        ou = "Admins" if account.admin else "Employees"
        dc_parts = ",".join(f"DC={part}" for part in self.ad_domain.split("."))
        p["DistinguishedName"] = f"CN={account.display},OU={ou},OU=Users,{dc_parts}" if hybrid else None
        p["OnPremSid"] = user.sid if hybrid else None
        p["CloudSid"] = account.cloud_sid
        p["IsAccountEnabled"] = r() < 0.97
        p["SourceProvider"] = "ActiveDirectory" if hybrid and r() < 0.3 else "AzureActiveDirectory"
        p["ChangeSource"] = self._choice(("AzureActiveDirectory", "AzureActiveDirectory", "EntraRiskChanged"))
        risky = p["ChangeSource"] == "EntraRiskChanged"
        p["RiskLevel"] = self._choice(("Low", "Medium", "High")) if risky else None
        p["RiskLevelDetails"] = "Admin confirmed user compromised" if risky and p["RiskLevel"] == "High" else None
        p["Tags"] = '["Sensitive"]' if account.admin else "[]"
        p["SourceProviders"] = ["ActiveDirectory", "AzureActiveDirectory"] if hybrid else ["AzureActiveDirectory"]
        p["IdentityEnvironment"] = "Hybrid" if hybrid else "Cloud"
        p["CriticalityLevel"] = 4 if account.admin else self._int(0, 2)
        p["SipProxyAddress"] = f"sip:{account.upn}" if r() < 0.5 else ""
        p["Type"] = "User"
