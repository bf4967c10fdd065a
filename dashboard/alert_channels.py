"""What an alert says, and how it goes out: e-mail (SMTP), a signed webhook, a mailbox file, the log.

An alert carries no more patient data than its channel may: the tier, the panel, the times and a
link to the report in the app. The patient's name and MRN are added only for a channel marked
``patient_identifiers: true`` (e-mail inside the hospital, say). Protocols are the libraries':
the standard library's ``smtplib`` and ``email`` and ``mailbox``, and ``httpx`` for webhooks.

A webhook's body is signed: ``X-Backline-Signature: sha256=HEX``, the HMAC-SHA256 with the
channel's key of ``TIMESTAMP.BODY`` (the timestamp is ``X-Backline-Timestamp``, Unix seconds), so a
receiver can check that the body came from Backline and is recent (:func:`verify_signature`).
Every alert has an id (``X-Backline-Alert-Id``, and the e-mail's Message-ID), the same on each try,
so a receiver that sees an alert twice (a retry after a lost answer) can tell.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import mailbox
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import quote

import httpx

from dashboard.alert_config import LoadedConfig, LogChannel, MailboxChannel, SmtpChannel, WebhookChannel

log = logging.getLogger("backline.alerts")
_MAILBOX_LOCK = threading.Lock()

KIND_WORDS = {
    "chain": "not yet acknowledged",
    "overdue": "past its response target, not acknowledged",
    "undelivered": "an alert about it could not be delivered",
}


class DeliveryError(Exception):
    """A channel did not take the alert (refused, failed, or no answer in time); says why."""


@dataclass(frozen=True)
class Alert:
    alert_id: str
    kind: str  # chain, overdue, undelivered
    report_id: str
    tier: str
    tier_label: str
    panel_id: str
    reported_at: datetime
    due_at: datetime
    to_name: str
    link: str
    step: int | None = None
    steps: int | None = None
    chain: str | None = None
    target_minutes: int | None = None
    failed_to: str | None = None  # for an undelivered alert: whom the alert could not reach
    patient_name: str | None = None
    mrn: str | None = None

    @property
    def headline(self) -> str:
        tier = self.tier_label.upper()
        if self.kind == "overdue":
            return f"{tier} report on {self.panel_id} not acknowledged within {self.target_minutes} min"
        if self.kind == "undelivered":
            return f"{tier} report on {self.panel_id}: the alert to {self.failed_to} could not be delivered"
        if self.step and self.step > 1:
            return f"{tier} report on {self.panel_id} still not acknowledged (escalation {self.step} of {self.steps})"
        return f"{tier} back-pain report on {self.panel_id}: acknowledge now"

    def fields(self, identifiers: bool) -> dict:
        """The alert as data (the webhook's body): no name or MRN unless ``identifiers``."""
        out = {
            "alert_id": self.alert_id, "kind": self.kind, "headline": self.headline, "tier": self.tier,
            "panel": self.panel_id, "report_id": self.report_id, "reported_at": self.reported_at.isoformat(),
            "due_at": self.due_at.isoformat(), "to": self.to_name, "link": self.link,
        }
        if self.kind == "chain":
            out.update(step=self.step, steps=self.steps, chain=self.chain)
        if identifiers:
            out["patient"] = {"name": self.patient_name, "mrn": self.mrn}
        return out

    def text(self, identifiers: bool) -> str:
        lines = [self.headline, "", f"Tier: {self.tier_label}", f"Panel: {self.panel_id}",
                 f"Reported: {self.reported_at:%a %d %b %Y %H:%M %Z}", f"Report: {self.report_id}"]
        if identifiers:
            lines += [f"Patient: {self.patient_name}", f"MRN: {self.mrn}"]
        if self.kind == "chain" and self.steps:
            lines.append(f"Escalation step {self.step} of {self.steps} ({self.chain}); it goes on up the chain "
                         "until someone acknowledges the report in Backline.")
        lines += ["", f"Open the report: {self.link}", "",
                  "Acknowledge it in Backline: this alert is not an acknowledgement."]
        return "\n".join(lines)


def report_link(app_url: str, report_id: str) -> str:
    """The report in the app: the triage queue (every role that may see it starts there) with it open."""
    return f"{app_url.rstrip('/')}/?report={quote(report_id, safe='')}"


def message_id(alert_id: str) -> str:
    return f"<{hashlib.sha256(alert_id.encode()).hexdigest()[:32]}@backline.alerts>"


def email_message(alert: Alert, sender: str, to: str, identifiers: bool) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = f"[Backline] {alert.headline}"
    msg["Date"] = format_datetime(datetime.now().astimezone())
    msg["Message-ID"] = message_id(alert.alert_id)
    msg["X-Backline-Alert-Id"] = alert.alert_id
    msg["X-Priority"] = "1" if alert.tier == "emergency" else "3"
    msg.set_content(alert.text(identifiers))
    return msg


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str, *, now: float | None = None,
                     tolerance_seconds: int = 300) -> bool:
    """What a receiver checks: the signature matches, and the timestamp is recent (no replays)."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance_seconds and hmac.compare_digest(sign(secret, timestamp, body), signature)


# --------------------------------------------------------------------------- sending


def send(loaded: LoadedConfig, contact_id: str, alert: Alert) -> str:
    """Deliver one alert to a contact by its channel; return what the channel said. Raises DeliveryError."""
    config = loaded.config
    contact = config.contacts[contact_id]
    channel = config.channels[contact.channel]
    identifiers = channel.patient_identifiers
    try:
        if isinstance(channel, SmtpChannel):
            return _smtp(loaded, channel, contact.address, alert)
        if isinstance(channel, WebhookChannel):
            return _webhook(channel, contact.address, alert)
        if isinstance(channel, MailboxChannel):
            where = loaded.local_path(channel.path)
            where.parent.mkdir(parents=True, exist_ok=True)
            with _MAILBOX_LOCK:  # the worker's threads one at a time; the file lock guards against other processes
                box = mailbox.mbox(where)
                box.lock()
                try:
                    box.add(email_message(alert, "backline@localhost", contact.address, identifiers))
                    box.flush()
                finally:
                    box.unlock()
                    box.close()
            return f"written to {channel.path}"
        if isinstance(channel, LogChannel):
            log.warning("ALERT to %s: %s - %s", contact.name, alert.headline, alert.link)
            return "written to the log"
    except DeliveryError:
        raise
    except (OSError, smtplib.SMTPException, httpx.HTTPError) as exc:
        raise DeliveryError(_why(exc)) from None
    raise DeliveryError(f"unknown channel type {channel.type!r}")  # pragma: no cover - the config refuses it


def _why(exc: Exception) -> str:
    if isinstance(exc, (TimeoutError, httpx.TimeoutException)):
        return "no answer in time"
    if isinstance(exc, ConnectionRefusedError) or isinstance(exc, httpx.ConnectError):
        return f"could not connect ({' '.join(str(exc).split()) or type(exc).__name__})"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"the SMTP server refused the sign-in ({exc.smtp_code})"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the SMTP server refused it: {exc.smtp_code} {exc.smtp_error.decode(errors='replace')[:200]}"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def _smtp(loaded: LoadedConfig, channel: SmtpChannel, to: str, alert: Alert) -> str:
    context = ssl.create_default_context(
        cafile=str(loaded.local_path(channel.ca_file)) if channel.ca_file else None)
    msg = email_message(alert, channel.sender, to, channel.patient_identifiers)
    if channel.security == "tls":
        server: smtplib.SMTP = smtplib.SMTP_SSL(channel.host, channel.port, timeout=channel.timeout_seconds,
                                                context=context)
    else:
        server = smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout_seconds)
    with server:
        server.ehlo()
        if channel.security == "starttls":
            server.starttls(context=context)
            server.ehlo()
        if channel.username:
            server.login(channel.username, channel.password or "")
        refused = server.send_message(msg)
    if refused:
        raise DeliveryError(f"the SMTP server refused {', '.join(refused)}")
    return f"accepted by {channel.host}:{channel.port}"


def _webhook(channel: WebhookChannel, to: str, alert: Alert) -> str:
    fields = alert.fields(channel.patient_identifiers)
    fields["address"] = to
    body = json.dumps(fields, ensure_ascii=False, sort_keys=True).encode("utf-8")
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Backline-alerts",
        "X-Backline-Alert-Id": alert.alert_id,
        "X-Backline-Timestamp": timestamp,
        "X-Backline-Signature": sign(channel.secret or "", timestamp, body),
    }
    response = httpx.post(channel.url, content=body, headers=headers, timeout=channel.timeout_seconds,
                          follow_redirects=False)
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"the receiver answered HTTP {response.status_code}")
    return f"HTTP {response.status_code}"
