"""Quota alerts: a user at their plan's warning threshold or at 100% of it this month.

Each (user, month, level, channel) is sent once. A user who jumps from below the threshold to over
100% between two checks gets the "over" alert only: the warning would arrive late and say less.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping
from urllib.parse import quote

from swarmlens.notify import claims
from swarmlens.notify.channels import Channel, Message, Sender, list_channels
from swarmlens.render import fmt
from swarmlens.render.mail import MailBody
from swarmlens.reports import common as rc

LEVELS = {"warn": "quota.warning", "over": "quota.exceeded"}


def public_link(config: Mapping[str, Any], path: str) -> str:
    base = (config.get("SWARMLENS_PUBLIC_URL") or "").rstrip("/")
    return f"{base}{path}" if base else ""


def alert_message(config: Mapping[str, Any], row: dict[str, Any], month: rc.Period, now: datetime) -> Message:
    """The alert, for ops (the webhook payload and the ops addresses) and, as ``for_user``, in the
    end user's own words for their own address."""
    level = row["level"]
    plan = row.get("plan_name") or row["plan"]
    tokens, quota = int(row["tokens"] or 0), int(row["quota"])
    percent = 100.0 * tokens / quota
    shown = fmt.percent(percent)  # cut, not rounded: 99.99% must not read as 100.0% (it is not over)
    warn_at = int(row["warn_at_percent"] or 80)
    user = row["user_id"]
    link = public_link(config, f"/users/{quote(user, safe='')}")
    renews = f"{month.end:%-d %B %Y}"
    facts = [("Task tokens used", fmt.num(tokens)), ("Monthly quota", fmt.num(quota)), ("Share used", shown),
             ("Plan", plan), ("Month", month.label)]
    footer = "Quotas count task tokens (input + output) per calendar month, UTC."
    tone = "bad" if level == "over" else "warn"
    if level == "over":
        ops = MailBody(f"[swarmlens] {user} is over the {plan} plan's monthly quota ({shown}, {month.label})",
                       f"{user} is over the monthly quota",
                       [f"{user} has used {tokens:,} task tokens in {month.label}, over the {plan} plan's quota "
                        f"of {quota:,} ({shown})."], facts, ("Usage of " + user, link) if link else None, footer, tone)
        own = MailBody(f"You are over your monthly quota ({month.label})", "You are over your monthly quota",
                       [f"You have used {tokens:,} task tokens in {month.label}, more than the {quota:,} your "
                        f"{plan} plan includes ({shown}).",
                        f"Your quota starts again on {renews}. To raise it, ask your account's administrator "
                        "about a larger plan."], facts, ("Your usage", link) if link else None, footer, tone)
    else:
        ops = MailBody(f"[swarmlens] {user} reached {shown} of the {plan} plan's monthly quota ({month.label})",
                       f"{user} reached {shown} of the monthly quota",
                       [f"{user} has used {tokens:,} of {quota:,} task tokens in {month.label} ({shown}); the "
                        f"{plan} plan warns at {warn_at}%."], facts, ("Usage of " + user, link) if link else None,
                       footer, tone)
        own = MailBody(f"You have used {shown} of your monthly quota ({month.label})",
                       f"You have used {shown} of your monthly quota",
                       [f"You have used {tokens:,} of the {quota:,} task tokens your {plan} plan includes for "
                        f"{month.label} ({shown}).",
                        f"Your quota starts again on {renews}."], facts, ("Your usage", link) if link else None,
                       footer, tone)
    payload = {"event": LEVELS[level], "level": level, "user_id": user,
               "display_name": row.get("display_name") or "", "plan": row["plan"], "plan_name": plan,
               "month": month.key, "tokens": tokens, "quota": quota,
               "percent": round(percent, 3), "warn_at_percent": warn_at,
               "sent_at": now.isoformat(), "url": link or None}
    return Message.of(LEVELS[level], ops, payload, user_email=row.get("email") or "",
                      for_user=Message.of(LEVELS[level], own, payload))


def check_quotas(client, config, sender: Sender, now: datetime, channels: list[Channel] | None = None,
                 say=lambda line: None) -> list[dict[str, Any]]:
    """Sends the alerts due now; returns one dict per delivery made (user, level, channel, status)."""
    chans = [c for c in (channels if channels is not None else list_channels(client, config)) if c.alerts]
    if not chans:
        return []
    month = rc.this_month(now.date())
    rows = [r for r in rc.quota_rows(client, config, month, alerts_only=True) if r["level"] in LEVELS]
    if not rows:
        return []
    done = claims.claimed(client, config, month.start)
    out = []
    for row in rows:
        for ch in chans:
            if not ch.applies_to(row["plan"] or "") or (row["user_id"], row["level"], ch.name) in done:
                continue
            key = claims.Key(row["user_id"], month.start, row["level"], ch.name)
            claim_id = claims.claim(client, config, key, now)
            if claim_id is None:
                continue
            outcome = sender.deliver(ch, alert_message(config, row, month, now), claim_id)
            claims.record(client, config, key, claim_id, kind=ch.kind, target=outcome.target, status=outcome.status,
                          attempts=outcome.attempts, detail=outcome.detail)
            say(f"quota {row['level']} of {row['user_id']} ({month.key}) to {ch.name}: {outcome.status}"
                f" after {outcome.attempts} attempt(s), {outcome.detail}")
            out.append({"user_id": row["user_id"], "level": row["level"], "channel": ch.name,
                        "status": outcome.status})
    return out
