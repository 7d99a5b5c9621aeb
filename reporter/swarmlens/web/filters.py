"""The filters of the dashboard, agents, reports and search pages, read from the query string and
written back into every link of the page, so that a filtered view is a URL that can be shared.

A period is either a named one (``period=7d``) or a custom range (``from=2026-03-01&to=2026-03-14``,
both days included); the scope narrows to a user, an agent and/or a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from swarmlens.reports import common as rc
from flask import request

from swarmlens.web.common import arg_choice, arg_text, bad, period_or_400

# A custom range longer than this is refused: the pages draw a bar per day.
MAX_RANGE_DAYS = 366


@dataclass(frozen=True)
class Filters:
    period: rc.Period
    user: str = ""
    agent: str = ""
    model: str = ""

    @property
    def custom(self) -> bool:
        return self.period.key == "range"

    @property
    def scoped(self) -> bool:
        return bool(self.user or self.agent or self.model)

    def args(self, **overrides: Any) -> dict[str, str]:
        """The query string of this view (only what differs from the defaults), for url_for()."""
        out: dict[str, Any] = {}
        if self.custom:
            out["from"] = self.period.start.isoformat()
            out["to"] = (self.period.end - timedelta(days=1)).isoformat()
        else:
            out["period"] = self.period.key
        out.update({k: v for k, v in (("user", self.user), ("agent", self.agent), ("model", self.model)) if v})
        out.update(overrides)
        return {k: v for k, v in out.items() if v not in (None, "")}

    def scope_args(self) -> dict[str, str]:
        return {k: v for k, v in (("user", self.user), ("agent", self.agent), ("model", self.model)) if v}

    def as_dict(self) -> dict[str, Any]:
        """The filters as the page's dict carries them; ``view`` and ``scope`` are the query-string
        arguments of this view and of its scope alone, for the page's links."""
        return {"period": self.period.key, "from": self.period.start.isoformat(),
                "to": (self.period.end - timedelta(days=1)).isoformat(), "user": self.user, "agent": self.agent,
                "model": self.model, "custom": self.custom, "scoped": self.scoped,
                "view": self.args(), "scope": self.scope_args()}


def custom_range(default_days: int = 30) -> rc.Period | None:
    """The ``from``/``to`` range of the query string, or None when neither is given."""
    start, end = arg_text("from", 10), arg_text("to", 10)
    if not start and not end:
        return None
    period = period_or_400(rc.date_range, start, end, default_days)
    if period.days > MAX_RANGE_DAYS:
        bad(f"a date range covers at most {MAX_RANGE_DAYS} days; this one covers {period.days}", "to")
    return period


def read(default_period: str = "30d", scope: bool = True) -> Filters:
    """The page's filters; a bad value is a 400 that says what is expected."""
    period = custom_range()
    if period is None:
        key = arg_choice("period", rc.DASHBOARD_PERIODS, default_period)
        period = period_or_400(rc.dashboard_period, key)
    if not scope:
        return Filters(period)
    return Filters(period, user=arg_text("user", 128), agent=arg_text("agent", 128), model=arg_text("model", 128))


def typed(default_period: str = "30d") -> dict[str, Any]:
    """The filters as the user typed them, in the shape of ``Filters.as_dict``, for the filter form
    shown again beside an error (nothing in it has been checked; the template escapes it)."""
    a = {k: (request.args.get(k) or "")[:200] for k in ("period", "from", "to", "user", "agent", "model")}
    custom = bool(a["from"] or a["to"])
    scope = {k: a[k] for k in ("user", "agent", "model") if a[k]}
    return {**a, "period": "" if custom else (a["period"] or default_period), "custom": custom,
            "scoped": bool(scope), "view": {}, "scope": scope}
