"""Scheduled reports: on the first of each month, last month's PDF for each user who had tasks in
it, and the ops summary (the monthly usage report), to the channels that take reports.

A channel gets the reports of the months that end after it was created, so a new channel does not
receive last month's reports at once. Whatever the notifier finds unsent for last month it sends
at its next check: after a downtime over the first of the month it catches up, and the claims
(level ``report`` per user, ``summary`` for the ops summary) keep everything to one send.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Mapping

from swarmlens.notify import claims
from swarmlens.notify.alerts import public_link
from swarmlens.notify.channels import Channel, Message, Sender, list_channels
from swarmlens.reports import common as rc

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


def report_filename(user_id: str | None, period_key: str) -> str:
    """``swarmlens-USER-2026-03.pdf`` for a user's report, ``swarmlens-summary-2026-03.pdf`` for ops."""
    who = _UNSAFE.sub("_", user_id).strip("._") if user_id else "summary"
    return f"swarmlens-{who or 'user'}-{period_key}.pdf"


def due_month(now: datetime) -> rc.Period:
    """The month whose reports are due at ``now``: the last complete calendar month (UTC)."""
    return rc.month_period(None, rc.add_months(rc.month_start(now.date()), -1))


def user_month_context(client, config: Mapping[str, Any], user_id: str, month: rc.Period) -> dict[str, Any]:
    """What the monthly user PDF shows (reports.users.user_month_context: the page's download too)."""
    from swarmlens.reports import users as users_report

    return users_report.user_month_context(client, config, user_id, month)


def _user_message(config, row: dict[str, Any], month: rc.Period, pdf_bytes: bytes, now: datetime) -> Message:
    name = report_filename(row["user_id"], month.key)
    link = public_link(config, f"/users/{row['user_id']}/report.pdf?month={month.key}")
    text = (f"The monthly usage report of {row['user_id']} for {month.label} is attached ({name}): "
            f"{int(row['tasks'] or 0):,} tasks, {int(row['tokens'] or 0):,} task tokens.\n"
            + (f"\nOnline: {link}\n" if link else ""))
    payload = {"event": "report.user_monthly", "user_id": row["user_id"], "period": month.key,
               "tasks": int(row["tasks"] or 0), "tokens": int(row["tokens"] or 0), "sent_at": now.isoformat(),
               "url": link or None}
    return Message("report.user_monthly", f"[swarmlens] Monthly usage report of {row['user_id']}, {month.label}",
                   text, payload, attachment=(name, pdf_bytes), user_email=row.get("email") or "")


def _summary_message(config, month: rc.Period, pdf_bytes: bytes, ctx: dict[str, Any], now: datetime) -> Message:
    name = report_filename(None, month.key)
    by = {t["key"]: t for t in ctx["totals"]}
    tasks, tokens = int(by["tasks"]["current"] or 0), int(by["tokens"]["current"] or 0)
    users = int(by["active_users"]["current"] or 0)
    link = public_link(config, f"/reports/monthly?month={month.key}")
    text = (f"The ops summary for {month.label} is attached ({name}): {tasks:,} tasks, {tokens:,} tokens, "
            f"{users:,} active users.\n" + (f"\nOnline: {link}\n" if link else ""))
    payload = {"event": "report.summary_monthly", "user_id": None, "period": month.key, "tasks": tasks,
               "tokens": tokens, "active_users": users, "sent_at": now.isoformat(), "url": link or None}
    return Message("report.summary_monthly", f"[swarmlens] Monthly usage summary, {month.label}", text, payload,
                   attachment=(name, pdf_bytes))


def send_due_reports(client, config, sender: Sender, now: datetime, channels: list[Channel] | None = None,
                     say=lambda line: None) -> list[dict[str, Any]]:
    """Sends last month's reports that no claim covers yet; returns one dict per delivery made."""
    from swarmlens.render import pdf
    from swarmlens.reports import usage

    month = due_month(now)
    chans = [c for c in (channels if channels is not None else list_channels(client, config))
             if c.reports and (c.created_at is None or c.created_at < month.end_ts)]
    if not chans:
        return []
    done = claims.claimed(client, config, month.start)
    out: list[dict[str, Any]] = []

    def send(key: claims.Key, ch: Channel, make_message) -> None:
        claim_id = claims.claim(client, config, key, now)
        if claim_id is None:
            return
        outcome = sender.deliver(ch, make_message(), claim_id)
        claims.record(client, config, key, claim_id, kind=ch.kind, target=outcome.target, status=outcome.status,
                      attempts=outcome.attempts, detail=outcome.detail)
        say(f"{key.level} {key.user_id or 'ops'} ({month.key}) to {ch.name}: {outcome.status} after "
            f"{outcome.attempts} attempt(s), {outcome.detail}")
        out.append({"user_id": key.user_id, "level": key.level, "channel": ch.name, "status": outcome.status})

    rows = [r for r in rc.quota_rows(client, config, month) if int(r.get("tasks") or 0) > 0]
    for row in rows:
        todo = [ch for ch in chans if ch.applies_to(row["plan"] or "")
                and (row["user_id"], "report", ch.name) not in done]
        cache: dict[str, Message] = {}

        def message(row=row):
            if "m" not in cache:  # one PDF per user, however many channels
                body = pdf.user_month_pdf(user_month_context(client, config, row["user_id"], month))
                cache["m"] = _user_message(config, row, month, body, now)
            return cache["m"]

        for ch in todo:
            send(claims.Key(row["user_id"], month.start, "report", ch.name), ch, message)

    # The ops summary goes to channels for every plan, and to ops addresses only (not "user").
    summary_chans = [ch for ch in chans if ch.plan == "" and ("", "summary", ch.name) not in done
                     and (ch.kind == "webhook" or ch.addresses())]
    if rows and summary_chans:
        cache: dict[str, Message] = {}

        def summary():
            if "m" not in cache:
                ctx = usage.build(client, config, month, "monthly")
                cache["m"] = _summary_message(config, month, pdf.usage_report_pdf(ctx), ctx, now)
            return cache["m"]

        for ch in summary_chans:
            send(claims.Key("", month.start, "summary", ch.name), ch, summary)
    return out
