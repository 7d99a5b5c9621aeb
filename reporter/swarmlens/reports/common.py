"""What every report shares: running a query file into dicts, periods, cost and quota arithmetic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable, Mapping

from swarmlens.errors import InvalidInput
from swarmlens.store.client import query_file


# Query files with an all-user twin, used whenever {user} is '': the rollups of schema 0007 (same
# columns, one row per day or per day and agent/model instead of one per user) and the time-sorted
# task_search of schema 0008.
ALL_USERS = {name: name + "_all" for name in ("task_totals", "task_daily", "cost_total", "cost_daily",
                                               "usage_by_agent", "usage_by_model", "search_tasks",
                                               "search_count", "known_agents")}


def q(client, config: Mapping[str, Any], name: str, **params) -> list[dict[str, Any]]:
    """Rows of ``store/queries/NAME.sql`` as dicts, with typed server-side parameters. A report of
    every user (``user=""``) reads the all-user twin of the query file when there is one."""
    if params.get("user") == "" and name in ALL_USERS:
        name = ALL_USERS[name]
        params = {k: v for k, v in params.items() if k != "user"}
    return list(query_file(client, name, params, config=config).named_results())


def q1(client, config, name: str, **params) -> dict[str, Any]:
    rows = q(client, config, name, **params)
    return rows[0] if rows else {}


def today() -> date:
    return datetime.now(timezone.utc).date()


def month_start(d: date) -> date:
    return d.replace(day=1)


def add_months(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


# Dates a query can take: ClickHouse's Date type holds 1970-01-01 to 2149-06-06, and a period's
# end, the previous period and the navigation links need room on both sides.
FIRST_DATE, LAST_DATE = date(1970, 2, 1), date(2148, 12, 31)


class InvalidPeriod(InvalidInput):
    """A date or period a report cannot cover; ``field`` names the parameter it came from."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def check_date(d: date, what: str) -> date:
    """``d`` when a report can cover it; InvalidPeriod (a 400 for the caller) otherwise."""
    if not FIRST_DATE <= d <= LAST_DATE:
        raise InvalidPeriod(f"{what} must be between {FIRST_DATE.isoformat()} and {LAST_DATE.isoformat()}, "
                         f"not {d.isoformat()}", what)
    return d


@dataclass(frozen=True)
class Period:
    """Whole UTC days ``[start, end)``. ``key`` names it in URLs (``7d``, ``2026-03``, ``2026-W10``)."""

    key: str
    label: str
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def start_ts(self) -> datetime:
        return datetime.combine(self.start, time(), tzinfo=timezone.utc)

    @property
    def end_ts(self) -> datetime:
        return datetime.combine(self.end, time(), tzinfo=timezone.utc)

    def day_list(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]

    @property
    def is_month(self) -> bool:
        return self.start.day == 1 and self.end == add_months(self.start, 1)

    @property
    def is_week(self) -> bool:
        return self.days == 7 and self.start.weekday() == 0 and "-W" in self.key

    def elapsed_days(self, now: date | None = None) -> int:
        """Days of the period up to today, today included (a day under way counts as a day)."""
        d = now or today()
        return max(0, min(self.days, (d - self.start).days + 1))

    def previous(self, now: date | None = None) -> "Period":
        """The period this one is compared with: the month or the as many days before it. A period
        still running (its last day is after today) is compared with the same span of the one
        before: a week to date with the same days of last week, a month to date with the same days
        of last month, any other period with as many days before it as it has run.
        Its label says which, in the words every page, PDF and mail print after "compared with".
        Every comparison is taken here (dashboard, agents, reports, mails), so they all agree."""
        d = now or today()
        if self.is_month:
            start = add_months(self.start, -1)
            whole = Period(f"{start:%Y-%m}", f"{start:%B %Y}", start, self.start)
        else:
            start = self.start - timedelta(days=self.days)
            whole = Period("previous", span_label(start, self.start), start, self.start)
        if self.end - timedelta(days=1) <= d:
            return whole  # over (or ending today): the whole period before
        n = self.elapsed_days(d)
        if n == 0:
            return Period(whole.key, "nothing yet: this period has not begun", whole.start, whole.start)
        if self.is_month or self.is_week:
            end = min(whole.start + timedelta(days=n), whole.end)
            unit = "month" if self.is_month else "week"
            if end == whole.end:  # 30 days of March against a February of 28
                return Period(whole.key, f"all of {whole.label} ({day_words(whole.days)}), as this month has run "
                                         f"{day_words(n)} so far", whole.start, whole.end)
            same = "the same day" if n == 1 else f"the same {n} days"
            return Period(whole.key, f"{same} of last {unit} ({span_label(whole.start, end)}), as this {unit} "
                                     f"has run {day_words(n)} so far", whole.start, end)
        # Any other period reaching into the future (date_range() cuts its ranges at today already).
        start = self.start - timedelta(days=n)
        return Period("previous", f"the {day_words(n)} before ({span_label(start, self.start)}), as this period "
                                  f"has run {day_words(n)} so far", start, self.start)

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "start": self.start.isoformat(),
                "end_exclusive": self.end.isoformat(), "days": self.days}


def span_label(start: date, end: date) -> str:
    """``[start, end)`` in words: "30 Nov – 02 Dec 2026", or one day "30 Nov 2026"."""
    last = end - timedelta(days=1)
    return f"{start:%d %b %Y}" if last <= start else f"{start:%d %b} – {last:%d %b %Y}"


def day_words(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


DASHBOARD_PERIODS = {
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "this_month": "This month",
    "last_month": "Last month",
}


def dashboard_period(key: str, now: date | None = None) -> Period:
    """One of DASHBOARD_PERIODS; raises ValueError for anything else."""
    d = now or today()
    if key == "7d":
        return Period(key, DASHBOARD_PERIODS[key], d - timedelta(days=6), d + timedelta(days=1))
    if key == "30d":
        return Period(key, DASHBOARD_PERIODS[key], d - timedelta(days=29), d + timedelta(days=1))
    if key == "this_month":
        return Period(key, f"This month ({d:%B %Y})", month_start(d), add_months(d, 1))
    if key == "last_month":
        start = add_months(d, -1)
        return Period(key, f"Last month ({start:%B %Y})", start, month_start(d))
    raise InvalidPeriod(f"period must be one of {', '.join(DASHBOARD_PERIODS)}, not {key[:20]!r}", "period")


def month_period(value: str | None, now: date | None = None) -> Period:
    """A calendar month from ``YYYY-MM``; the current month when empty."""
    if not value:
        start = month_start(now or today())
    else:
        try:
            start = datetime.strptime(value.strip(), "%Y-%m").date()
        except ValueError:
            raise InvalidPeriod(f"month must look like 2026-03, not {value[:20]!r}", "month") from None
        check_date(start, "month")
    return Period(f"{start:%Y-%m}", f"{start:%B %Y}", start, add_months(start, 1))


def week_period(value: str | None, now: date | None = None) -> Period:
    """An ISO week (Monday to Sunday) from ``YYYY-Www``; the current week when empty."""
    if not value:
        d = now or today()
        start = d - timedelta(days=d.weekday())
    else:
        try:
            year, week = value.strip().upper().split("-W")
            start = date.fromisocalendar(int(year), int(week), 1)
        except ValueError:
            raise InvalidPeriod(f"week must look like 2026-W10, not {value[:20]!r}", "week") from None
        check_date(start, "week")
    iso = start.isocalendar()
    end = start + timedelta(days=7)
    return Period(f"{iso[0]}-W{iso[1]:02d}", f"Week {iso[1]}, {start:%d %b} – {end - timedelta(days=1):%d %b %Y}",
                  start, end)


def date_range(start: str | None, end: str | None, default_days: int = 30, now: date | None = None) -> Period:
    """A period from inclusive ``YYYY-MM-DD`` dates; the last ``default_days`` days by default. A
    range reaching into the future is cut at today, and its label says so: its days to come hold
    nothing yet, and counted, they would halve an average or a comparison."""
    def parse(value: str, what: str) -> date:
        try:
            parsed = date.fromisoformat(value.strip())
        except ValueError:
            raise InvalidPeriod(f"{what} must be a date like 2026-03-01, not {value[:20]!r}", what) from None
        # Beyond what the store can hold nothing is stored: the nearest day it can hold means the same.
        return min(max(parsed, FIRST_DATE), LAST_DATE)

    last = parse(end, "to") if end else today()
    first = parse(start, "from") if start else last - timedelta(days=default_days - 1)
    if first > last:
        raise InvalidPeriod("from must not be after to", "to")
    d = now or today()
    if first <= d < last:
        return Period("range", f"{first:%d %b %Y} – {d:%d %b %Y}, cut at today (the range asked for reaches into "
                               f"the future, to {last:%d %b %Y})", first, d + timedelta(days=1))
    return Period("range", f"{first:%d %b %Y} – {last:%d %b %Y}", first, last + timedelta(days=1))


def change(current: float | int | None, previous: float | int | None) -> float | None:
    """Relative change from previous to current (0.25 = +25%); None when there is no base."""
    if not previous:
        return None
    return (float(current or 0) - float(previous)) / float(previous)


def rate_change(current: float | None, previous: float | None) -> float | None:
    """The change of a rate (an error rate) as a difference of ratios: 0.02 -> 0.025 is +0.005, shown
    as +0.5 percentage points; None when there was nothing to compare with."""
    if previous is None or current is None:
        return None
    return float(current) - float(previous)


def ratio(numerator: float | int | None, denominator: float | int | None) -> float:
    return float(numerator or 0) / float(denominator) if denominator else 0.0


def quota_level(tokens: int, quota: int, warn_at_percent: int = 80) -> str:
    """``none`` (no quota), ``ok``, ``warn`` (at warn_at_percent or more) or ``over`` (100% or more)."""
    if not quota:
        return "none"
    if tokens >= quota:
        return "over"
    if tokens * 100 >= quota * (warn_at_percent or 80):
        return "warn"
    return "ok"


def with_quota(row: dict[str, Any]) -> dict[str, Any]:
    """Adds ``percent``, ``level`` and ``overage_tokens`` to a quota_status row."""
    quota = int(row.get("quota") or 0)
    tokens = int(row.get("tokens") or 0)
    # Cut, not rounded, to one decimal: 99.9993% must not read as the 100% it has not reached.
    row["percent"] = (tokens * 1000 // quota) / 10 if quota else None
    row["level"] = quota_level(tokens, quota, int(row.get("warn_at_percent") or 80))
    row["overage_tokens"] = max(0, tokens - quota) if quota else 0
    return row


def fill_days(period: Period, rows: Iterable[dict[str, Any]], fields: Iterable[str]) -> list[dict[str, Any]]:
    """One row per day of the period up to today, zeros where the query returned none. Days still
    to come are left out: drawn as zeros, they would read as a fall."""
    fields = list(fields)
    by_day = {r["day"]: r for r in rows}
    out = []
    last = today()
    for d in period.day_list():
        if d > last:
            break
        r = by_day.get(d, {})
        out.append({"day": d, **{f: r.get(f, 0) or 0 for f in fields}})
    return out


def quota_rows(client, config, month: Period, user: str = "", alerts_only: bool = False,
               with_cost: bool = True) -> list[dict[str, Any]]:
    """quota_status rows with their level; ``alerts_only`` leaves out the users below their warning
    level in SQL (the dashboard lists only those); ``with_cost=False`` leaves the month's cost out
    (0.0), for lists that do not show it."""
    return [with_quota(r) for r in q(client, config, "quota_status", start=month.start, end=month.end, user=user,
                                     alerts_only=int(alerts_only), with_cost=int(with_cost))]


def this_month(now: date | None = None) -> Period:
    return month_period(None, now)


_POOL = None


def parallel(**calls):
    """Runs independent queries at once and returns their results by name.

    A page's queries do not depend on each other; on a server each takes mostly server time, so
    running them side by side keeps a page near the time of its slowest query. clickhouse-connect
    clients without a session id are safe to share between threads.
    """
    global _POOL
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="swarmlens-query")
    # Each call in a copy of this request's context, so it reads through the request's snapshot.
    futures = {name: _POOL.submit(contextvars.copy_context().run, fn) for name, fn in calls.items()}
    return {name: f.result() for name, f in futures.items()}
