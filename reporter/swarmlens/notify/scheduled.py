"""Scheduled reports: on the first of each month, last month's PDF for each user who had tasks in
it, and the ops summary (the monthly usage report), to the channels that take reports.

A channel gets the reports of the months that end after it was created, so a new channel does not
receive last month's reports at once. Whatever the notifier finds unsent for last month it sends
at its next check: after a downtime over the first of the month it catches up, and the claims
(level ``report`` per user, ``summary`` for the ops summary) keep everything to one send.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping
from urllib.parse import quote

from swarmlens.notify import claims
from swarmlens.notify.alerts import public_link
from swarmlens.notify.channels import Channel, Message, Sender, as_mime, check_target, list_channels
from swarmlens.render import fmt
from swarmlens.render.files import download_name, safe_part
from swarmlens.render.mail import MailBody
from swarmlens.reports import common as rc


def report_filename(user_id: str | None, period_key: str) -> str:
    """``swarmlens-USER-2026-03.pdf`` for a user's report, ``swarmlens-summary-2026-03.pdf`` for ops
    (render.files: the name the reporter's download of the same report carries)."""
    return download_name(user_id or "summary", period_key, ext="pdf")


def due_month(now: datetime) -> rc.Period:
    """The month whose reports are due at ``now``: the last complete calendar month (UTC)."""
    return rc.month_period(None, rc.add_months(rc.month_start(now.date()), -1))


def user_month_context(client, config: Mapping[str, Any], user_id: str, month: rc.Period) -> dict[str, Any]:
    """What the monthly user PDF shows (reports.users.user_month_context: the page's download too)."""
    from swarmlens.reports import users as users_report

    return users_report.user_month_context(client, config, user_id, month)


def _user_message(config, row: dict[str, Any], month: rc.Period, pdf_bytes: bytes, now: datetime) -> Message:
    """The user's monthly report: for ops, and in the user's own words for their own address."""
    user = row["user_id"]
    name = report_filename(user, month.key)
    link = public_link(config, f"/users/{quote(user, safe='')}/report.pdf?month={month.key}")
    tasks, tokens = int(row["tasks"] or 0), int(row["tokens"] or 0)
    facts = [("Tasks", fmt.num(tasks)), ("Task tokens", fmt.num(tokens))]
    if int(row.get("quota") or 0) > 0:
        facts += [("Monthly quota", fmt.num(int(row["quota"]))),
                  ("Share used", fmt.percent(100.0 * tokens / int(row["quota"])))]
    footer = "The PDF is attached. Quotas count task tokens (input + output) per calendar month, UTC."
    ops = MailBody(f"[swarmlens] Monthly usage report of {user}, {month.label}",
                   f"Monthly usage report of {user}, {month.label}",
                   [f"The monthly usage report of {user} for {month.label} is attached ({name}): {tasks:,} tasks, "
                    f"{tokens:,} task tokens."], facts, ("Open it online", link) if link else None, footer)
    own = MailBody(f"Your usage report for {month.label}", f"Your usage in {month.label}",
                   [f"Your usage report for {month.label} is attached ({name}): {tasks:,} tasks, {tokens:,} task "
                    "tokens."], facts, ("Open it online", link) if link else None, footer)
    payload = {"event": "report.user_monthly", "user_id": user, "period": month.key,
               "tasks": tasks, "tokens": tokens, "sent_at": now.isoformat(), "url": link or None}
    return Message.of("report.user_monthly", ops, payload, attachment=(name, pdf_bytes),
                      user_email=row.get("email") or "",
                      for_user=Message.of("report.user_monthly", own, payload, attachment=(name, pdf_bytes)))


def _summary_message(config, month: rc.Period, pdf_bytes: bytes, ctx: dict[str, Any], now: datetime) -> Message:
    name = report_filename(None, month.key)
    by = {t["key"]: t for t in ctx["totals"]}
    tasks, tokens = int(by["tasks"]["current"] or 0), int(by["tokens"]["current"] or 0)
    users = int(by["active_users"]["current"] or 0)
    link = public_link(config, f"/reports/monthly?month={month.key}")
    body = MailBody(f"[swarmlens] Monthly usage summary, {month.label}", f"Monthly usage summary, {month.label}",
                    [f"The ops summary for {month.label} is attached ({name}): {tasks:,} tasks, {tokens:,} tokens, "
                     f"{users:,} active users."],
                    [("Tasks", fmt.num(tasks)), ("Tokens", fmt.num(tokens)), ("Active users", fmt.num(users))],
                    ("Open it online", link) if link else None, "The PDF is attached.")
    payload = {"event": "report.summary_monthly", "user_id": None, "period": month.key, "tasks": tasks,
               "tokens": tokens, "active_users": users, "sent_at": now.isoformat(), "url": link or None}
    return Message.of("report.summary_monthly", body, payload, attachment=(name, pdf_bytes))


@dataclass
class Planned:
    """One message of a month's reports: to whom (a channel), under which claim, built on demand."""

    key: claims.Key
    channel: Channel
    make: Callable[[], Message]


def plan_month(client, config, month: rc.Period, chans: list[Channel], now: datetime,
               users: list[str] | None = None, done: set | None = None) -> list[Planned]:
    """Every report of ``month`` that ``chans`` take and ``done`` (claimed keys) does not cover:
    each user's PDF (for users with tasks in the month, or only ``users``) and the ops summary."""
    from swarmlens.render import pdf
    from swarmlens.reports import usage

    done = done or set()
    out: list[Planned] = []
    rows = [r for r in rc.quota_rows(client, config, month) if int(r.get("tasks") or 0) > 0
            and (users is None or r["user_id"] in users)]
    for row in rows:
        cache: dict[str, Message] = {}

        def message(row=row, cache=cache):
            if "m" not in cache:  # one PDF per user, however many channels
                body = pdf.user_month_pdf(user_month_context(client, config, row["user_id"], month))
                cache["m"] = _user_message(config, row, month, body, now)
            return cache["m"]

        for ch in chans:
            if ch.applies_to(row["plan"] or "") and (row["user_id"], "report", ch.name) not in done:
                out.append(Planned(claims.Key(row["user_id"], month.start, "report", ch.name), ch, message))
    # The ops summary goes to channels for every plan, and to ops addresses only (not "user").
    summary_chans = [ch for ch in chans if ch.plan == "" and ("", "summary", ch.name) not in done
                     and (ch.kind == "webhook" or ch.audiences()[0])]
    if rows and summary_chans and users is None:
        cache: dict[str, Message] = {}

        def summary():
            if "m" not in cache:
                ctx = usage.build(client, config, month, "monthly")
                cache["m"] = _summary_message(config, month, pdf.usage_report_pdf(ctx), ctx, now)
            return cache["m"]

        out += [Planned(claims.Key("", month.start, "summary", ch.name), ch, summary) for ch in summary_chans]
    return out


def send_planned(client, config, sender: Sender, planned: list[Planned], now: datetime, *, record: bool = True,
                 say=lambda line: None) -> list[dict[str, Any]]:
    """Sends each planned message; with ``record`` under its claim (sent once, logged), without it
    (a preview to addresses given on the command line) under a delivery id of its own."""
    import uuid

    out: list[dict[str, Any]] = []
    for p in planned:
        key, ch = p.key, p.channel
        if record:
            claim_id = claims.claim(client, config, key, now)
            if claim_id is None:
                continue
        else:
            claim_id = f"preview-{uuid.uuid4().hex}"
        outcome = sender.deliver(ch, p.make(), claim_id)
        if record:
            claims.record(client, config, key, claim_id, kind=ch.kind, target=outcome.target, status=outcome.status,
                          attempts=outcome.attempts, detail=outcome.detail)
        say(f"{key.level} {key.user_id or 'ops'} ({key.month:%Y-%m}) to {ch.name}: {outcome.status} after "
            f"{outcome.attempts} attempt(s), {outcome.detail}")
        out.append({"user_id": key.user_id, "level": key.level, "channel": ch.name, "status": outcome.status,
                    "target": outcome.target})
    return out


def send_due_reports(client, config, sender: Sender, now: datetime, channels: list[Channel] | None = None,
                     say=lambda line: None) -> list[dict[str, Any]]:
    """Sends last month's reports that no claim covers yet; returns one dict per delivery made."""
    month = due_month(now)
    chans = [c for c in (channels if channels is not None else list_channels(client, config))
             if c.reports and (c.created_at is None or c.created_at < month.end_ts)]
    if not chans:
        return []
    planned = plan_month(client, config, month, chans, now, done=claims.claimed(client, config, month.start))
    return [{k: v for k, v in d.items() if k != "target"}
            for d in send_planned(client, config, sender, planned, now, say=say)]


def send_monthly(client, config, sender: Sender, month: rc.Period, now: datetime, *, to: str = "",
                 users: list[str] | None = None, dry_run: bool = False, out_dir: str = "",
                 say=lambda line: None) -> list[dict[str, Any]]:
    """A month's reports on demand (`swarmlens notify send-monthly`).

    To the report channels (``to`` empty): whatever no claim covers yet, under the same claims as
    the schedule, so it is never sent twice, whenever the channel was created. To ``to`` (e-mail
    addresses; ``user`` for each user's own): every report of the month, unrecorded, as a preview.
    ``dry_run`` sends nothing and says what would go where; ``out_dir`` also writes each e-mail as
    an ``.eml`` file (and each webhook body as ``.json``) to look at."""
    import json
    import os

    if month.start > now.date():
        raise ValueError(f"{month.label} has not begun")
    if month.end > now.date() and not (to or dry_run or out_dir):
        raise ValueError(f"{month.label} is not over: its reports go to the channels on {month.end:%-d %B %Y}; "
                         "preview it with --dry-run, --out DIR or --to ADDRESSES")
    if to:
        chans = [Channel("--to", "", "email", check_target("email", to), reports=True, alerts=False)]
        done: set = set()
    else:
        chans = [c for c in list_channels(client, config) if c.reports]
        if not chans:
            raise ValueError("no channel takes monthly reports: add one with `swarmlens notify set NAME --email "
                             "ADDRESSES --reports`, or give --to ADDRESSES")
        done = claims.claimed(client, config, month.start)
    planned = plan_month(client, config, month, chans, now, users=users, done=done)
    if not (dry_run or out_dir):
        return send_planned(client, config, sender, planned, now, record=not to, say=say)
    out: list[dict[str, Any]] = []
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    for n, p in enumerate(planned, 1):
        message = p.make()
        stem = f"{n:03d}-{p.key.level}-{safe_part(p.key.user_id or 'ops')}-{safe_part(p.channel.name)}"
        if p.channel.kind == "webhook":
            target = p.channel.shown_target()
            if out_dir:
                with open(os.path.join(out_dir, stem + ".json"), "w", encoding="utf-8") as f:
                    json.dump(message.payload, f, indent=2, default=str)
        else:
            ops, own = p.channel.audiences(message.user_email)
            pieces = [(a, rs, m) for a, rs, m in (("ops", ops, message), ("user", own, message.for_user))
                      if rs and m is not None]
            target = ", ".join(r for _, rs, _ in pieces for r in rs) or "(no address)"
            for audience, recipients, m in pieces:
                if out_dir:
                    mime = as_mime(m, config, recipients, f"<preview-{stem}.{audience}@swarmlens.invalid>")
                    with open(os.path.join(out_dir, f"{stem}-{audience}.eml"), "wb") as f:
                        f.write(mime.as_bytes())
        say(f"{p.key.level} {p.key.user_id or 'ops'} ({month.key}) to {p.channel.name} ({target}): "
            f"{'written' if out_dir else 'would be sent'}: {message.subject}"
            + (f", {message.attachment[0]}" if message.attachment else ""))
        out.append({"user_id": p.key.user_id, "level": p.key.level, "channel": p.channel.name,
                    "status": "preview", "target": target})
    return out
