"""The durable record that makes every notification go out at most once.

Before a message is sent, a claim keyed by (user, month, level, channel) is inserted into
``notification_claims`` with that key as ``insert_deduplication_token``, then read back with FINAL:
only the process whose claim id it reads sends. A second claim of the same key (the same notifier
after a restart, or a second notifier) is dropped by the server's insert deduplication, and should
two rows of a key ever be stored, the table keeps the earliest (``claim_rank``). The outcome of the
send goes to ``notification_deliveries``; a claim without a delivery row is a send that a crash
interrupted, which is shown and never repeated.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from swarmlens.store.client import query_file, raise_as_store_error

_RANK_BASE = 1 << 62


@dataclass(frozen=True)
class Key:
    user_id: str  # '' for the ops summary
    month: date
    level: str  # warn | over | report | summary
    channel: str

    def token(self) -> str:
        return f"notification-claim:{self.user_id}\x1f{self.month.isoformat()}\x1f{self.level}\x1f{self.channel}"


def claimed(client, config, month: date) -> set[tuple[str, str, str]]:
    """(user_id, level, channel) of every claim of a month, to skip them without a round trip each."""
    rows = query_file(client, "notification_claimed", {"month": month}, config=config).result_rows
    return {(r[0], r[1], r[2]) for r in rows}


def claim(client, config, key: Key, now: datetime) -> str | None:
    """Claims ``key`` durably; returns the new claim id, or None when it was claimed before."""
    claim_id = uuid.uuid4().hex
    ms = int(now.timestamp() * 1000)
    row = [key.user_id, key.month, key.level, key.channel, claim_id, now, _RANK_BASE - ms]
    try:
        client.insert("notification_claims", [row],
                      column_names=["user_id", "month", "level", "channel", "claim_id", "claimed_at", "claim_rank"],
                      database=config["SWARMLENS_DATABASE"],
                      settings={"insert_deduplication_token": key.token(), "insert_deduplicate": 1,
                                "async_insert": 0})
    except Exception as exc:
        raise_as_store_error(exc)
    rows = query_file(client, "notification_claim", {"user": key.user_id, "month": key.month, "level": key.level,
                                                     "channel": key.channel}, config=config).result_rows
    return claim_id if rows and rows[0][0] == claim_id else None


def record(client, config, key: Key, claim_id: str, *, kind: str, target: str, status: str, attempts: int,
           detail: str, now: datetime | None = None) -> None:
    row = [claim_id, key.user_id, key.month, key.level, key.channel, kind, target, status, min(attempts, 255),
           detail[:1000], now or datetime.now(timezone.utc)]
    client.insert("notification_deliveries", [row],
                  column_names=["claim_id", "user_id", "month", "level", "channel", "kind", "target", "status",
                                "attempts", "detail", "delivered_at"], database=config["SWARMLENS_DATABASE"])


def recent(client, config, limit: int = 100) -> list[dict[str, Any]]:
    """The latest claims with their delivery (status '' = claimed, no delivery recorded)."""
    return list(query_file(client, "notification_log", {"limit": limit}, config=config).named_results())
