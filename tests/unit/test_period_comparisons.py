"""What a period is compared with, on a fixed clock: a period still running against the same
elapsed span of the one before, a range reaching into the future cut at today, finished periods
against the whole period before; and the words the pages, PDFs and mails print for it."""

from __future__ import annotations

from datetime import date

import pytest

from swarmlens.reports import common as rc

WEDNESDAY = date(2026, 12, 9)  # the third day of ISO week 50 (Monday 7 December)


def test_a_week_to_date_is_compared_with_the_same_days_of_last_week():
    week = rc.week_period(None, WEDNESDAY)
    prev = week.previous(WEDNESDAY)
    assert (prev.start, prev.end) == (date(2026, 11, 30), date(2026, 12, 3))  # Monday to Wednesday
    assert prev.label.startswith("the same 3 days of last week (30 Nov – 02 Dec 2026)")
    # On its first day: the Monday before, in the singular.
    monday = rc.week_period(None, date(2026, 12, 7)).previous(date(2026, 12, 7))
    assert (monday.start, monday.days) == (date(2026, 11, 30), 1)
    assert monday.label.startswith("the same day of last week (30 Nov 2026)")
    # On its last day, and once it is over: the whole week before.
    for now in (date(2026, 12, 13), date(2027, 1, 5)):
        whole = week.previous(now)
        assert (whole.start, whole.end) == (date(2026, 11, 30), date(2026, 12, 7))
        assert whole.label == "30 Nov – 06 Dec 2026"


def test_a_month_to_date_is_compared_with_the_same_days_of_last_month():
    for period in (rc.this_month(WEDNESDAY), rc.dashboard_period("this_month", WEDNESDAY)):
        prev = period.previous(WEDNESDAY)
        assert (prev.start, prev.end, prev.key) == (date(2026, 11, 1), date(2026, 11, 10), "2026-11")
        assert prev.label.startswith("the same 9 days of last month (01 Nov – 09 Nov 2026)")
    # Thirty days of March against a February of 28: all of February, and it says so.
    march = rc.month_period("2026-03")
    feb = march.previous(date(2026, 3, 30))
    assert (feb.start, feb.end) == (date(2026, 2, 1), date(2026, 3, 1))
    assert feb.label.startswith("all of February 2026 (28 days)")
    # A month that is over: the whole month before, by its name.
    assert rc.month_period("2026-11").previous(WEDNESDAY).label == "October 2026"
    assert rc.month_period("2026-11").previous(WEDNESDAY).days == 31
    assert rc.dashboard_period("last_month", WEDNESDAY).previous(WEDNESDAY).label == "October 2026"


def test_a_range_reaching_into_the_future_is_cut_at_today():
    # The case: two months asked for, nine days of them happened.
    period = rc.date_range("2026-12-01", "2027-01-31", now=WEDNESDAY)
    assert (period.start, period.end, period.days) == (date(2026, 12, 1), date(2026, 12, 10), 9)
    assert period.label == ("01 Dec 2026 – 09 Dec 2026, cut at today (the range asked for reaches into the future, "
                            "to 31 Jan 2027)")
    prev = period.previous(WEDNESDAY)
    assert (prev.start, prev.end) == (date(2026, 11, 22), date(2026, 12, 1))
    assert prev.label == "22 Nov – 30 Nov 2026"
    # Ranges that end today or before, and the rolling periods, are kept and compared whole.
    for period in (rc.date_range("2026-11-01", "2026-12-09", now=WEDNESDAY), rc.dashboard_period("7d", WEDNESDAY),
                   rc.dashboard_period("30d", WEDNESDAY)):
        assert "cut" not in period.label
        assert period.previous(WEDNESDAY).days == period.days
        assert period.previous(WEDNESDAY).end == period.start
    # A range wholly in the future stays as asked: it has not begun, there is nothing to compare.
    later = rc.date_range("2027-01-01", "2027-01-31", now=WEDNESDAY)
    assert later.days == 31 and later.previous(WEDNESDAY).days == 0
    # A period of another shape reaching into the future: as many days before as it has run.
    other = rc.Period("x", "ten days", date(2026, 12, 5), date(2026, 12, 15)).previous(WEDNESDAY)
    assert (other.start, other.end) == (date(2026, 11, 30), date(2026, 12, 5))
    assert other.label == "the 5 days before (30 Nov – 04 Dec 2026), as this period has run 5 days so far"


def test_a_period_that_has_not_begun_has_nothing_to_compare_with():
    prev = rc.week_period("2026-W51").previous(WEDNESDAY)
    assert prev.days == 0 and "not begun" in prev.label
    assert rc.change(5, 0) is None  # so no change is shown


@pytest.mark.parametrize("now", [date(2026, 12, 1), date(2026, 12, 15), date(2026, 12, 31)])
def test_the_clock_is_read_when_none_is_given(monkeypatch, now):
    monkeypatch.setattr(rc, "today", lambda: now)
    month = rc.month_period("2026-12")
    assert month.previous() == month.previous(now)
    assert month.previous().days == min(now.day, 30)
