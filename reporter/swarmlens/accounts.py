"""Users, plans and model prices: the configuration rows the reporter writes.

Shared by the admin pages and the ``swarmlens users|plans|prices`` commands. Each edit inserts the
whole new row; the tables are ReplacingMergeTree with a version column, so the newest row wins
(see docs/schema.md). Values go through clickhouse-connect's typed inserts, never into SQL text.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from swarmlens.errors import InvalidInput  # noqa: F401  (raised here; callers catch accounts.InvalidInput)
from swarmlens.store.client import query_file

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}$")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _rows(client, name: str, config: Mapping[str, Any], **params) -> list[dict[str, Any]]:
    return list(query_file(client, name, params, config=config).named_results())


def check_name(value: str, what: str) -> str:
    value = (value or "").strip()
    if not _NAME.match(value):
        raise InvalidInput(f"{what} must be 1 to 128 letters, digits or _ . : @ + - (got {value[:40]!r})")
    return value


# ---------------------------------------------------------------------------------------------
# Users


def get_user(client, config, user_id: str) -> dict[str, Any] | None:
    rows = _rows(client, "user_row", config, user=user_id)
    return rows[0] if rows else None


def known_user(client, config, user_id: str) -> bool:
    """Whether the user is configured or has had tasks (on any day)."""
    return bool(_rows(client, "user_known", config, user=user_id)[0]["known"])


def upsert_user(client, config, user_id: str, *, plan: str | None = None, display_name: str | None = None,
                email: str | None = None) -> dict[str, Any]:
    """Creates the user or changes the given fields; an unknown plan is refused."""
    user_id = check_name(user_id, "a user id")
    existing = get_user(client, config, user_id) or {}
    if plan:
        plan = check_name(plan, "a plan name")
        if not get_plan(client, config, plan):
            raise InvalidInput(f"no plan {plan!r}: create it first (`swarmlens plans set {plan} --quota N`)")
    now = _now()
    row = {
        "user_id": user_id,
        "display_name": display_name if display_name is not None else existing.get("display_name", ""),
        "email": email if email is not None else existing.get("email", ""),
        "plan": plan if plan is not None else existing.get("plan", ""),
        "created_at": existing.get("created_at") or now,
        "updated_at": now,
    }
    client.insert("users", [list(row.values())], column_names=list(row), database=config["SWARMLENS_DATABASE"])
    return row


# ---------------------------------------------------------------------------------------------
# Plans


def get_plan(client, config, plan: str) -> dict[str, Any] | None:
    rows = _rows(client, "plan_row", config, plan=plan)
    return rows[0] if rows else None


def list_plans(client, config) -> list[dict[str, Any]]:
    return _rows(client, "plans_list", config)


def parse_int(value: Any, what: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    try:
        number = int(str(value).replace("_", "").replace(",", "").strip())
    except (TypeError, ValueError):
        raise InvalidInput(f"{what} must be a whole number, not {str(value)[:40]!r}") from None
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise InvalidInput(f"{what} must be {bound}")
    return number


def set_plan(client, config, plan: str, *, quota: Any, warn_at_percent: Any = 80,
             display_name: str = "") -> dict[str, Any]:
    """Creates or updates a plan: ``quota`` task tokens per calendar month (0 = unlimited)."""
    plan = check_name(plan, "a plan name")
    row = {
        "plan": plan,
        "display_name": (display_name or "").strip() or plan,
        "monthly_token_quota": parse_int(quota, "the monthly token quota"),
        "warn_at_percent": parse_int(warn_at_percent, "the warning threshold (percent)", minimum=1, maximum=100),
        "updated_at": _now(),
    }
    client.insert("plans", [list(row.values())], column_names=list(row), database=config["SWARMLENS_DATABASE"])
    return row


def delete_plan(client, config, plan: str) -> dict[str, Any]:
    """Deletes a plan nobody is on; refused while a user or an alert channel still uses it."""
    plan = check_name(plan, "a plan name")
    row = get_plan(client, config, plan)
    if row is None:
        raise InvalidInput(f"no plan {plan!r} (see `swarmlens plans list`)")
    users = next((p["users"] for p in list_plans(client, config) if p["plan"] == plan), 0)
    if users:
        raise InvalidInput(f"{users} user{'' if users == 1 else 's'} on plan {plan!r}: move them to another plan "
                           f"first (`swarmlens users assign USER PLAN`)")
    channels = [r["name"] for r in _rows(client, "alert_channels", config, deleted=0) if r["plan"] == plan]
    if channels:
        raise InvalidInput(f"alert channels {', '.join(channels)} are for plan {plan!r}: delete them first "
                           f"(`swarmlens notify delete NAME`)")
    query_file(client, "plan_delete", {"plan": plan}, config=config)
    return row


# ---------------------------------------------------------------------------------------------
# Model prices


def parse_price(value: Any, what: str) -> Decimal:
    try:
        price = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"{what} must be a number of USD per 1M tokens, not {str(value)[:40]!r}") from None
    if not price.is_finite() or price < 0 or price >= Decimal("1e9"):
        raise InvalidInput(f"{what} must be between 0 and 1e9 USD per 1M tokens")
    return price.quantize(Decimal("0.000001"))


def list_prices(client, config) -> list[dict[str, Any]]:
    return _rows(client, "prices_list", config)


def set_price(client, config, model: str, *, usd_per_1m_input: Any, usd_per_1m_output: Any) -> dict[str, Any]:
    """Sets a model's price; every report applies it at once, to past usage too."""
    model = (model or "").strip()
    if not model or len(model) > 200 or any(c.isspace() for c in model):
        raise InvalidInput("a model name is 1 to 200 characters without spaces, as the app requests it")
    row = {
        "model": model,
        "usd_per_1m_input": parse_price(usd_per_1m_input, "the input price"),
        "usd_per_1m_output": parse_price(usd_per_1m_output, "the output price"),
        "updated_at": _now(),
    }
    client.insert("model_prices", [list(row.values())], column_names=list(row),
                  database=config["SWARMLENS_DATABASE"])
    return row
