"""The formatting rules every page, PDF and CSV shares (swarmlens.render.fmt) and the chart axes."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from swarmlens.reports import common as rc
from swarmlens.render import charts, fmt


@pytest.mark.parametrize("value, text", [
    (0, "$0.00"), (0.02, "$0.02"), (1234.5, "$1,234.50"), (0.0077, "$0.0077"), (0.00004213, "$0.000042"),
    (0.009999, "$0.01"), (9.99999e-05, "$0.00010"), (3e-9, "<$0.000001"), (-0.5, "-$0.50"), (None, "–"),
])
def test_money_has_significant_digits_and_never_reads_zero_when_not_zero(value, text):
    assert fmt.usd(value) == text


def test_money_follows_one_rule_whatever_its_neighbours():
    """Cents from a cent up, more digits only below a cent: a table never shows "$0.02895" or
    "$0.00000" because another amount in it is small."""
    assert [fmt.usd(v) for v in (0.02895, 0.0045, 0.01, 0, 12.5)] == ["$0.03", "$0.0045", "$0.01", "$0.00", "$12.50"]
    assert not hasattr(fmt, "money_column") and "money_column" not in fmt.FILTERS


def test_counts_are_whole_and_averages_always_have_one_decimal():
    assert fmt.num(1016.0) == "1,016" and fmt.num(914) == "914" and fmt.num(2.5) == "2" and fmt.num(3.5) == "4"
    assert fmt.avg(914) == "914.0" and fmt.avg(1016.04) == "1,016.0" and fmt.avg(None) == "–"


@pytest.mark.parametrize("percent, text", [
    (99.9993, "99.9%"), (100, "100.0%"), (79.99, "79.9%"), (80, "80.0%"), (0.04, "<0.1%"), (0, "0.0%"),
    (250.06, "250.0%"),
])
def test_percentages_never_reach_a_threshold_they_have_not_reached(percent, text):
    assert fmt.percent(percent) == text
    assert fmt.pct(percent / 100) == text


def test_quota_percent_is_cut_not_rounded():
    row = rc.with_quota({"quota": 1_000_000, "tokens": 999_993, "warn_at_percent": 80})
    assert row["percent"] == 99.9 and row["level"] == "warn"
    assert fmt.percent(row["percent"]) == "99.9%"
    assert rc.with_quota({"quota": 1000, "tokens": 1000})["level"] == "over"


def test_changes_are_coloured_by_what_is_good_for_the_measure():
    assert fmt.tone(0.995, "cost_usd") == "bad"
    assert fmt.tone(-0.2, "cost_usd") == "good"
    assert fmt.tone(-0.1, "avg_tokens_per_task") == "good"
    assert fmt.tone(0.3, "tasks") == "good"
    assert fmt.tone(0.005, "error_rate") == "bad"
    assert fmt.tone(0.5, "tokens") == "neutral"
    assert fmt.tone(0.0001, "cost_usd") == "neutral"  # rounds to +0.0%
    assert fmt.tone(None, "cost_usd") == "neutral"


def test_rates_change_in_percentage_points():
    # 2.0% -> 8.7% is +6.7 points, not "+333.7%".
    assert rc.rate_change(0.087, 0.02) == pytest.approx(0.067)
    assert fmt.delta(0.067, "error_rate") == "+6.7 pp"
    assert fmt.delta(-0.001, "error_rate") == "-0.1 pp"
    assert fmt.delta(0.861, "cost_usd") == "+86.1%"
    assert fmt.delta(None, "tokens") == "–"


def test_csv_cells_keep_numbers_with_the_decimals_of_their_kind():
    assert fmt.plain(0.00771234567, "money") == 0.007712
    assert fmt.plain(1016.04, "average") == 1016.0
    assert fmt.plain(12.0, "count") == 12
    assert fmt.plain(0.123456, "ratio") == 0.1235
    assert fmt.plain(None, "money") == ""
    assert fmt.plain(date(2026, 3, 1), "count") == "2026-03-01"
    assert fmt.kind_of("cost_usd") == "money" and fmt.kind_of("change") == "ratio"


@pytest.mark.parametrize("top, integer, ticks", [
    (25, True, [0, 10, 20, 30]), (3, True, [0, 1, 2, 3]), (1, True, [0, 1]), (0, True, [0, 1]),
    (12.5, False, [0, 5, 10, 15]), (1234, True, [0, 500, 1000, 1500]),
])
def test_axes_are_round_and_counts_have_whole_ticks(top, integer, ticks):
    axis_max, values = charts.axis(top, integer)
    assert values == ticks and axis_max == ticks[-1]
    if integer:
        assert all(float(v).is_integer() for v in values)


def test_trend_chart_of_counts_has_no_fractional_tick_and_says_when_empty():
    rows = [{"day": date(2026, 3, d), "tokens": 25, "tasks": d % 3} for d in range(1, 6)]
    c = charts.trend(rows, "tokens", "tasks")
    assert not c["empty"]
    labels = [t["label"] for t in c["ticks"]] + [t["label"] for t in c["line"]["ticks"]]
    assert all("." not in label for label in labels), labels
    assert charts.trend([{"day": date(2026, 3, 1), "tokens": 0, "tasks": 0}], "tokens", "tasks")["empty"]


def test_waterfall_ticks_are_evenly_round():
    assert [t["label"] for t in charts.waterfall([], 7)["ticks"]] == ["0 ms", "2 ms", "4 ms", "6 ms", "8 ms"]
    labels = [t["label"] for t in charts.waterfall([], 2450)["ticks"]]
    assert labels == ["0 ms", "500 ms", "1.0 s", "1.5 s", "2.0 s", "2.5 s"]


def test_days_still_to_come_are_not_filled_with_zeros():
    today = rc.today()
    period = rc.Period("this_month", "", today - timedelta(days=2), today + timedelta(days=5))
    rows = rc.fill_days(period, [{"day": today, "tasks": 4}], ["tasks"])
    assert [r["day"] for r in rows] == [today - timedelta(days=2), today - timedelta(days=1), today]
    assert rows[-1]["tasks"] == 4


def test_search_words_are_marked_whole_and_the_text_escaped():
    from swarmlens.reports.search import highlight_terms, match_params

    terms = highlight_terms("Refun my <b>")
    assert terms == {"start": ["refun"], "whole": ["my", "b"]}
    params = match_params("Refun my")
    assert params["q"] == "my" and params["p1"] == "%refun%" and params["p2"] == params["r2"] == ""
    import re

    # RE2 and Python read this class alike once \x{..} is written as Python's \U escape.
    rx = re.compile(params["r1"].replace("\\x{80}", "\x80").replace("\\x{10FFFF}", "\U0010ffff"))
    assert rx.search("please refund") and rx.search("refunded") and not rx.search("nonrefundable")
    html = str(fmt.highlight("Please REFUND my <b>kettle</b>, mystery", terms))
    assert html == ("Please <mark>REFUND</mark> <mark>my</mark> &lt;<mark>b</mark>&gt;kettle&lt;/<mark>b</mark>&gt;, "
                    "mystery")
    assert "non<mark>" not in str(fmt.highlight("nonrefundable", terms))
    # A match far into a long text is brought into the snippet.
    assert "<mark>refunded</mark>" in str(fmt.highlight("x " * 100 + "refunded", terms, 40))


def test_pdf_changes_carry_the_pages_colours():
    from swarmlens.render import pdf

    assert pdf.Change(0.5, "cost_usd").color == pdf.BAD and pdf.Change(0.5, "cost_usd").text == "+50.0%"
    assert pdf.Change(-0.1, "avg_tokens_per_task").color == pdf.GOOD
    assert pdf.Change(0.004, "error_rate").text == "+0.4 pp" and pdf.Change(0.2, "tokens").color == pdf.MUTED


def test_every_file_swarmlens_hands_out_is_named_by_one_scheme():
    from swarmlens.render.files import download_name

    assert download_name("alice@acme.example", "2026-03", ext="pdf") == "swarmlens-alice@acme.example-2026-03.pdf"
    assert download_name("task", "0af7651916cd43dd8448eb211c80319c", ext="pdf") == \
        "swarmlens-task-0af7651916cd43dd8448eb211c80319c.pdf"
    assert download_name("weekly", "2026-W10", "users", ext=".csv") == "swarmlens-weekly-2026-W10-users.csv"
    # nothing of a hostile id survives that a file system or a header would read as structure
    assert download_name('../e"vil/\r\nx', "2026-03", ext="pdf") == "swarmlens-e_vil_x-2026-03.pdf"
