"""Alert channels (where messages go) and the delivery of one message, with retries.

A channel is a webhook URL or a list of e-mail addresses, for every plan (``plan = ''``) or for one
plan, receiving quota alerts, monthly reports or both. In an e-mail channel the address ``user``
stands for the user's own address (``users.email``), for alerts and for the user's own report.

Webhook requests are JSON, signed: ``X-Swarmlens-Signature: sha256=HEX`` where HEX is the
HMAC-SHA256, keyed by the channel's secret, of ``TIMESTAMP.BODY`` (``X-Swarmlens-Timestamp`` is
the Unix time of the request). A network error, 429 or 5xx is retried with exponential backoff;
any other status is final. SMTP 4xx replies and lost connections are retried the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from swarmlens.accounts import InvalidInput, check_name
from swarmlens.store.client import query_file

KINDS = ("webhook", "email")
USER_ADDRESS = "user"  # in an e-mail channel: the user's own address
MAX_BACKOFF = 300.0
_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


@dataclass(frozen=True)
class Channel:
    name: str
    plan: str
    kind: str
    target: str
    secret: str = ""
    alerts: bool = True
    reports: bool = False
    created_at: datetime | None = None

    def applies_to(self, plan: str) -> bool:
        return self.plan == "" or self.plan == plan

    def addresses(self, user_email: str = "") -> list[str]:
        """The e-mail addresses of this channel for one user (``user`` replaced by theirs, when known)."""
        ops, own = self.audiences(user_email)
        return ops + own

    def audiences(self, user_email: str = "") -> tuple[list[str], list[str]]:
        """(the ops addresses, the user's own address if the channel sends to ``user`` and it is
        known): two audiences, each getting a message of its own, so that the end user never sees
        the ops addresses nor the wording written for ops."""
        ops, own = [], []
        for a in (x.strip() for x in self.target.split(",")):
            if a == USER_ADDRESS:
                if user_email and _EMAIL.match(user_email):
                    own = [user_email]
            elif a:
                ops.append(a)
        return ops, own

    def shown_target(self) -> str:
        if self.kind == "webhook":
            parts = urlsplit(self.target)  # never show credentials or a query string that may hold a key
            return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"
        return self.target


# ---------------------------------------------------------------------------------------------
# Configuration rows


def _now() -> datetime:
    return datetime.now(timezone.utc)


def check_target(kind: str, target: str) -> str:
    target = (target or "").strip()
    if kind == "webhook":
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname or len(target) > 2000:
            raise InvalidInput(f"a webhook is an http:// or https:// URL, not {target[:60]!r}")
        return target
    addresses = [a.strip() for a in target.split(",") if a.strip()]
    if not addresses:
        raise InvalidInput("give one or more e-mail addresses, separated by commas (or 'user' for the user's own)")
    for a in addresses:
        if a != USER_ADDRESS and not _EMAIL.match(a):
            raise InvalidInput(f"not an e-mail address: {a[:60]!r}")
    return ", ".join(addresses)


def list_channels(client, config, include_deleted: bool = False) -> list[Channel]:
    rows = query_file(client, "alert_channels", {"deleted": int(include_deleted)}, config=config).named_results()
    return [Channel(r["name"], r["plan"], r["kind"], r["target"], r["secret"], bool(r["alerts"]), bool(r["reports"]),
                    _utc(r["created_at"])) for r in rows]


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def get_channel(client, config, name: str) -> Channel | None:
    return next((c for c in list_channels(client, config) if c.name == name), None)


def set_channel(client, config, name: str, *, kind: str, target: str, plan: str = "", secret: str | None = None,
                alerts: bool = True, reports: bool = False, now: datetime | None = None) -> Channel:
    """Creates or replaces a channel. A webhook without a secret gets a generated one (kept when the
    channel is changed again without one). ``plan`` '' means every plan."""
    from swarmlens import accounts

    name = check_name(name, "a channel name")
    if kind not in KINDS:
        raise InvalidInput(f"a channel is a webhook or email, not {str(kind)[:20]!r}")
    target = check_target(kind, target)
    plan = (plan or "").strip()
    if plan:
        plan = check_name(plan, "a plan name")
        if not accounts.get_plan(client, config, plan):
            raise InvalidInput(f"no plan {plan!r}: create it first (`swarmlens plans set {plan} --quota N`)")
    if not alerts and not reports:
        raise InvalidInput("a channel receives alerts, reports or both")
    existing = get_channel(client, config, name)
    if kind == "webhook":
        secret = (secret or "").strip() or (existing.secret if existing and existing.kind == "webhook" else "") \
            or secrets.token_urlsafe(32)
    else:
        secret = ""
    when = now or _now()
    created = existing.created_at if existing and existing.created_at else when
    row = {"name": name, "plan": plan, "kind": kind, "target": target, "secret": secret, "alerts": bool(alerts),
           "reports": bool(reports), "deleted": False, "created_at": created, "updated_at": when}
    client.insert("alert_channels", [list(row.values())], column_names=list(row), database=config["SWARMLENS_DATABASE"])
    return Channel(name, plan, kind, target, secret, bool(alerts), bool(reports), created)


def delete_channel(client, config, name: str) -> Channel:
    existing = get_channel(client, config, name)
    if existing is None:
        raise InvalidInput(f"no channel {name[:60]!r} (see `swarmlens notify channels`)")
    row = {"name": existing.name, "plan": existing.plan, "kind": existing.kind, "target": existing.target,
           "secret": "", "alerts": existing.alerts, "reports": existing.reports, "deleted": True,
           "created_at": existing.created_at or _now(), "updated_at": _now()}
    client.insert("alert_channels", [list(row.values())], column_names=list(row), database=config["SWARMLENS_DATABASE"])
    return existing


# ---------------------------------------------------------------------------------------------
# Delivery


@dataclass
class Message:
    """One message, as e-mail (subject, plain text, HTML, attachment) and as webhook JSON (payload).
    ``for_user`` is the end user's own version (their wording), which alone goes to the address
    ``user`` of an e-mail channel; a message without one goes to the ops addresses only."""

    event: str
    subject: str
    text: str
    payload: dict[str, Any]
    attachment: tuple[str, bytes] | None = None  # (file name, PDF bytes)
    user_email: str = ""
    html: str = ""
    for_user: "Message | None" = None

    @classmethod
    def of(cls, event: str, body, payload: dict[str, Any], **kw) -> "Message":
        """A message whose text and HTML parts both come from ``body`` (render.mail.MailBody)."""
        return cls(event, body.subject, body.text(), payload, html=body.html(), **kw)


@dataclass
class Outcome:
    status: str  # sent | failed
    attempts: int
    detail: str
    target: str = ""


class _Retry(Exception):
    """A failure worth another attempt."""


class _Final(Exception):
    """A failure another attempt would not fix."""


@dataclass
class Sender:
    """Delivers messages over the configured SMTP server and HTTP, with retries. ``sleep`` and
    ``clock`` are injectable so that tests neither wait nor depend on the time."""

    config: Mapping[str, Any]
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], datetime] = _now
    timeout: float = 15.0

    def deliver(self, channel: Channel, message: Message, delivery_id: str) -> Outcome:
        attempts = max(1, int(self.config.get("SWARMLENS_NOTIFY_ATTEMPTS") or 1))
        wait = float(self.config.get("SWARMLENS_NOTIFY_BACKOFF") or 0)
        send = self._webhook if channel.kind == "webhook" else self._email
        target = channel.shown_target()
        last = ""
        sent: set[str] = set()  # the audiences of an e-mail already sent: a retry sends only the rest
        for attempt in range(1, attempts + 1):
            try:
                detail, target = send(channel, message, delivery_id, sent)
                return Outcome("sent", attempt, detail, target)
            except _Final as exc:
                return Outcome("failed", attempt, str(exc)[:500], target)
            except _Retry as exc:
                last = str(exc)[:500]
            if attempt < attempts:
                self.sleep(min(MAX_BACKOFF, wait * 2 ** (attempt - 1)))
        return Outcome("failed", attempts, f"gave up after {attempts} attempts: {last}", target)

    # -- webhook ---------------------------------------------------------------------------------
    def _webhook(self, channel: Channel, message: Message, delivery_id: str, sent: set[str]) -> tuple[str, str]:
        payload = dict(message.payload)
        if message.attachment:
            import base64

            name, data = message.attachment
            payload["attachment"] = {"filename": name, "content_type": "application/pdf",
                                     "content_base64": base64.b64encode(data).decode("ascii")}
        body = json.dumps(payload, separators=(",", ":"), default=str).encode("utf-8")
        timestamp = str(int(self.clock().timestamp()))
        signature = sign(channel.secret, timestamp, body)
        request = urllib.request.Request(channel.target, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "swarmlens-notifier",
            "X-Swarmlens-Event": message.event, "X-Swarmlens-Delivery": delivery_id,
            "X-Swarmlens-Timestamp": timestamp, "X-Swarmlens-Signature": f"sha256={signature}"})
        target = channel.shown_target()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                return f"HTTP {resp.status}", target
        except urllib.error.HTTPError as exc:
            if exc.code == 429 or exc.code >= 500:
                raise _Retry(f"HTTP {exc.code} {exc.reason}") from None
            raise _Final(f"HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise _Retry(f"cannot reach {target}: {getattr(exc, 'reason', exc)}") from None

    # -- e-mail ----------------------------------------------------------------------------------
    def _email(self, channel: Channel, message: Message, delivery_id: str, sent: set[str]) -> tuple[str, str]:
        cfg = self.config
        ops, own = channel.audiences(message.user_email)
        pieces = [(audience, to, m) for audience, to, m in (("ops", ops, message), ("user", own, message.for_user))
                  if to and m is not None]
        if not pieces:
            raise _Final("no address: the channel sends to the user, who has no e-mail address")
        if not cfg.get("SWARMLENS_SMTP_HOST"):
            raise _Final("SWARMLENS_SMTP_HOST is not set")
        security = (cfg.get("SWARMLENS_SMTP_SECURITY") or "starttls").lower()
        if security not in ("starttls", "ssl", "none"):
            raise _Final(f"SWARMLENS_SMTP_SECURITY must be starttls, ssl or none, not {security!r}")
        sender = parseaddr(cfg["SWARMLENS_SMTP_FROM"])[1]
        domain = sender.rpartition("@")[2] or "swarmlens.invalid"
        refused: dict = {}
        for audience, recipients, m in pieces:
            if audience in sent:
                continue
            mail = _mime(m, sender, recipients, f"<{delivery_id}.{audience}@{domain}>")
            refused.update(self._smtp_send(mail, security))
            sent.add(audience)
        to = ", ".join(r for _, rs, _ in pieces for r in rs)
        if refused:
            return f"sent; refused: {', '.join(refused)}", to
        return "sent", to

    def _smtp_send(self, msg: EmailMessage, security: str) -> dict:
        cfg = self.config
        host, port = cfg["SWARMLENS_SMTP_HOST"], int(cfg["SWARMLENS_SMTP_PORT"])
        try:
            if security == "ssl":
                smtp = smtplib.SMTP_SSL(host, port, timeout=self.timeout, context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(host, port, timeout=self.timeout)
            with smtp:
                if security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if cfg.get("SWARMLENS_SMTP_USER"):
                    smtp.login(cfg["SWARMLENS_SMTP_USER"], cfg.get("SWARMLENS_SMTP_PASSWORD") or "")
                return smtp.send_message(msg)
        except smtplib.SMTPResponseException as exc:
            reply = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
            text = f"SMTP {exc.smtp_code} {reply}"
            if 400 <= exc.smtp_code < 500:
                raise _Retry(text) from None
            raise _Final(text) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise _Final(f"every recipient refused: {', '.join(exc.recipients)}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise _Retry(f"SMTP {host}:{port}: {exc}") from None


def _mime(message: Message, sender: str, recipients: list[str], message_id: str) -> EmailMessage:
    """One e-mail: a plain-text part, an HTML alternative when the message has one, the PDF."""
    msg = EmailMessage()
    msg["From"] = formataddr(("swarmlens", sender))
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = message.subject
    msg["Message-ID"] = message_id
    msg["Date"] = formatdate(usegmt=True)
    msg["X-Swarmlens-Event"] = message.event
    msg.set_content(message.text)
    if message.html:
        msg.add_alternative(message.html, subtype="html")
    if message.attachment:
        name, data = message.attachment
        msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return msg


def as_mime(message: Message, config: Mapping[str, Any], recipients: list[str], message_id: str) -> EmailMessage:
    """The e-mail a message becomes (for previews: `swarmlens notify send-monthly --out`)."""
    return _mime(message, parseaddr(config["SWARMLENS_SMTP_FROM"])[1], recipients, message_id)


def test_message(channel: Channel) -> Message:
    """What `swarmlens notify test` sends to the channel's webhook or ops addresses: says what the
    channel receives, changes nothing."""
    from swarmlens.render.mail import MailBody

    sends = " and ".join(x for x, on in (("quota alerts", channel.alerts), ("monthly reports", channel.reports)) if on)
    scope = f"users of plan {channel.plan}" if channel.plan else "every plan"
    body = MailBody(f"[swarmlens] Test message for channel {channel.name}", f"Test message for channel {channel.name}",
                    [f"This is a test from swarmlens. The channel {channel.name} receives {sends} for {scope}."])
    return Message.of("test", body, {"event": "test", "channel": channel.name, "plan": channel.plan or None,
                                     "alerts": channel.alerts, "reports": channel.reports,
                                     "sent_at": datetime.now(timezone.utc).isoformat()})


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The webhook signature: hex HMAC-SHA256 of ``TIMESTAMP.BODY`` keyed by the channel's secret."""
    return hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
