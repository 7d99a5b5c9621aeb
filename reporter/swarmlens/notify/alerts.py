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
from swarmlens.reports import common as rc

LEVELS = {"warn": "quota.warning", "over": "quota.exceeded"}


def public_link(config: Mapping[str, Any], path: str) -> str:
    base = (config.get("SWARMLENS_PUBLIC_URL") or "").rstrip("/")
    return f"{base}{path}" if base else ""


def alert_message(config: Mapping[str, Any], row: dict[str, Any], month: rc.Period, now: datetime) -> Message:
    level = row["level"]
    plan = row.get("plan_name") or row["plan"]
    percent = 100.0 * int(row["tokens"] or 0) / int(row["quota"])
    shown = fmt.percent(percent)  # cut, not rounded: 99.99% must not read as 100.0% (it is not over)
    link = public_link(config, f"/users/{quote(row['user_id'], safe='')}")
    if level == "over":
        subject = f"[swarmlens] {row['user_id']} is over the {plan} plan's monthly quota ({shown}, {month.label})"
        head = (f"{row['user_id']} has used {int(row['tokens']):,} task tokens in {month.label}, over the {plan} "
                f"plan's quota of {int(row['quota']):,} ({shown}).")
    else:
        subject = f"[swarmlens] {row['user_id']} reached {shown} of the {plan} plan's monthly quota ({month.label})"
        head = (f"{row['user_id']} has used {int(row['tokens']):,} of {int(row['quota']):,} task tokens in "
                f"{month.label} ({shown}); the {plan} plan warns at {int(row['warn_at_percent'] or 80)}%.")
    text = head + "\n\nQuotas count task tokens (input + output) per calendar month, UTC.\n" + (
        f"\nUsage: {link}\n" if link else "")
    payload = {"event": LEVELS[level], "level": level, "user_id": row["user_id"],
               "display_name": row.get("display_name") or "", "plan": row["plan"], "plan_name": plan,
               "month": month.key, "tokens": int(row["tokens"] or 0), "quota": int(row["quota"]),
               "percent": round(percent, 3), "warn_at_percent": int(row["warn_at_percent"] or 80),
               "sent_at": now.isoformat(), "url": link or None}
    return Message(LEVELS[level], subject, text, payload, user_email=row.get("email") or "")


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
