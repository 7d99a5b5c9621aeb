"""The feedback page as a page people use (vote, agent and period filters as a form, paging, votes
from the task page with CSRF), and invalid filters shown in place: the page's form again with the
message beside the field and the values kept, status 400, while the JSON keeps its JSON error."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta

import pytest


def _rows(ops, query: str) -> list[dict]:
    r = ops.get(f"/feedback?{query}&format=json")
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def test_feedback_page_filters_by_vote_agent_and_period_from_its_form(ops, seeded):
    page = ops.get("/feedback").get_data(as_text=True)
    # The controls are a form, not only a URL to know.
    start = page.index('aria-label="Filters"')
    form = page[start:page.index("</form>", start)]
    for control in ('<select name="vote"', '<option value="up"', '<option value="down"', '<option value="all"',
                    '<select name="agent"', '<option >Billing Agent</option>', 'name="from"', 'name="to"'):
        assert control in form, control

    everything = _rows(ops, "")
    assert everything["summary"] == {"up": 2, "down": 1, "votes": 3, "share_up": pytest.approx(2 / 3)}
    down = _rows(ops, "vote=down")
    assert [(f["voter"], f["vote"], f["comment"]) for f in down["feedback"]] == [("bob", -1, "took too long")]
    billing = _rows(ops, "agent=Billing+Agent")
    assert sorted(f["voter"] for f in billing["feedback"]) == ["bob", "carol"]
    assert billing["summary"]["up"] == 2 and billing["summary"]["down"] == 0
    # The handoff task went through the Refunds Agent: its vote is found by that agent, not by Sales.
    assert [f["voter"] for f in _rows(ops, "agent=Refunds+Agent")["feedback"]] == ["bob"]
    assert _rows(ops, "agent=Refunds+Agent&vote=up")["feedback"] == []
    # Every vote was cast today: a range of days long past holds none of them.
    old = f"from={seeded.today - timedelta(days=50)}&to={seeded.today - timedelta(days=40)}"
    assert _rows(ops, old)["summary"]["votes"] == 0

    chosen = ops.get("/feedback?vote=down&agent=Refunds+Agent").get_data(as_text=True)
    assert '<option value="down" selected>' in chosen and "<option selected>Refunds Agent</option>" in chosen
    assert "took too long" in chosen and "quick and right" not in chosen
    # The period pills keep the agent and the vote.
    assert re.search(r'href="/feedback\?period=7d&amp;agent=Refunds\+Agent&amp;vote=down"', chosen)
    assert "No feedback matches these filters" in ops.get("/feedback?vote=up&agent=Refunds+Agent").get_data(as_text=True)


def test_votes_from_the_task_page_need_csrf_and_the_feedback_page_pages_through_them(ops, seeded, h):
    tasks = seeded.tasks_by_user["alice"][-7:]
    # Without the form's CSRF token a vote is refused and nothing is stored.
    assert ops.post(f"/tasks/{tasks[0]}/feedback", data={"vote": "up"}).status_code == 400
    assert _rows(ops, "")["summary"]["votes"] == 3
    for i, task in enumerate(tasks):
        page = ops.get(f"/tasks/{task}").get_data(as_text=True)
        assert 'name="vote" value="up"' in page and 'name="vote" value="down"' in page
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        r = ops.post(f"/tasks/{task}/feedback", data={"vote": "up", "comment": f"vote {i}", "csrf_token": token})
        assert r.status_code == 303
    assert _rows(ops, "vote=up")["summary"]["up"] == 9  # 2 seeded + 7

    # Three a page: the pages hold every vote once, newest first, and the links keep the filters.
    seen, query = [], "vote=up&limit=3"
    for number in (1, 2, 3):
        d = _rows(ops, query)
        assert (d["page"], d["pages"], d["per_page"]) == (number, 3, 3)
        assert len(d["feedback"]) == 3 and all(f["vote"] == 1 for f in d["feedback"])
        seen += [(f["task_id"], f["voter"]) for f in d["feedback"]]
        body = ops.get(f"/feedback?{query}").get_data(as_text=True)
        assert f"Page {number} of 3, 3 votes a page" in body
        older = re.search(r'<a href="([^"]+)" rel="next">', body)
        newer = re.search(r'<a href="([^"]+)" rel="prev">', body)
        assert bool(newer) == (number > 1) and bool(older) == (number < 3)
        if older:
            link = html.unescape(older.group(1))
            assert "vote=up" in link and "limit=3" in link and f"page={number + 1}" in link
            query = link.split("?", 1)[1]
    assert len(set(seen)) == 9
    times = [datetime.fromisoformat(f["created_at"].replace("Z", "+00:00"))
             for q in ("vote=up&limit=3", "vote=up&limit=3&page=2") for f in _rows(ops, q)["feedback"]]
    assert times == sorted(times, reverse=True)
    # Past the last page: an empty page, not an error; a page number of 0 is an error in place.
    assert _rows(ops, "vote=up&limit=3&page=9")["feedback"] == []
    assert ops.get("/feedback?page=0").status_code == 400


# (path, field, message, what the form must still hold)
INVALID = [
    ("/reports/custom?from=2026-03-10&to=2026-03-01", "to", "from must not be after to",
     ['value="2026-03-10"', 'value="2026-03-01"']),
    ("/reports/custom?from=2026-02-30&to=2026-03-01", "from", "from must be a date like 2026-03-01",
     ['value="2026-02-30"', 'value="2026-03-01"']),
    ("/reports/weekly?week=2026-W99", "week", "week must look like 2026-W10", ['value="2026-W99"']),
    ("/reports/monthly?month=0001-01", "month", "month must be between 1970-02-01 and 2148-12-31",
     ['value="0001-01"']),
    ("/search?q=kettle&from=2026-03-10&to=2026-03-01&status=ok", "to", "from must not be after to",
     ['name="q" value="kettle"', 'value="2026-03-10"', '<option value="ok" selected>']),
    ("/search?q=kettle&status=maybe", "status", "status must be one of ok, error, not &#39;maybe&#39;",
     ['name="q" value="kettle"', "<option selected>maybe</option>"]),
    ("/users?sort=height&dir=asc", "sort", "sort must be one of", ['<option value="asc" selected>',
                                                                  "<option selected>height</option>"]),
    ("/users?limit=5000", "limit", "limit must be between 1 and 1000", ['value="5000"']),
    ("/feedback?vote=sideways&agent=Billing+Agent", "vote", "vote must be one of all, up, down",
     ["<option selected>Billing Agent</option>", "<option selected>sideways</option>"]),
    ("/feedback?from=2026-03-10&to=2026-03-01&vote=down", "to", "from must not be after to",
     ['value="2026-03-10"', '<option value="down" selected>']),
    ("/agents?from=2026-03-10&to=2026-03-01&agent=Sales+Agent&sort=cost_usd", "to", "from must not be after to",
     ['value="2026-03-10"', "<option selected>Sales Agent</option>", 'name="sort" value="cost_usd"']),
    ("/agents?from=2024-01-01&to=2026-01-01", "to", "a date range covers at most 366 days",
     ['value="2024-01-01"', 'value="2026-01-01"']),
    ("/?from=2026-03-10&to=2026-03-01&user=carol", "to", "from must not be after to",
     ['name="user" value="carol"']),
]


@pytest.mark.parametrize("path, field, message, kept", INVALID, ids=[p for p, *_ in INVALID])
def test_an_invalid_filter_shows_the_form_again_with_the_message_beside_the_field(ops, path, field, message, kept):
    r = ops.get(path)
    body = r.get_data(as_text=True)
    assert r.status_code == 400
    assert "400 · Bad request" not in body
    assert f'aria-invalid="true" aria-describedby="error-{field}"' in body
    error = re.search(rf'<span class="field-error" id="error-{field}">([^<]*)</span>', body)
    assert error and message in error.group(1), body[:3000]
    # The message sits inside the field's own label.
    label = body[:error.start()].rsplit("<label", 1)[1]
    assert f'name="{field}"' in label
    for value in kept:
        assert value in body, value
    # Only the form: no results or figures computed from a filter that does not hold.
    assert "<tbody>" not in body.rsplit("</form>", 1)[1]
    # The JSON keeps its JSON error.
    j = ops.get(path + "&format=json" if "?" in path else path + "?format=json")
    assert j.status_code == 400 and j.get_json()["error"]["status"] == 400
    assert html.unescape(message) in j.get_json()["error"]["message"]


def test_a_choice_without_a_field_of_its_own_is_shown_above_the_form_and_values_stay_text(ops):
    r = ops.get("/?period=fortnight&agent=Billing+Agent")
    body = r.get_data(as_text=True)
    assert r.status_code == 400
    assert re.search(r'<p class="field-error form-error" role="alert">period must be one of [^<]*fortnight', body)
    assert "<option selected>Billing Agent</option>" in body
    hostile = ops.get("/search?q=%3Cscript%3Ealert(1)%3C/script%3E&status=nope").get_data(as_text=True)
    assert "<script>alert(1)" not in hostile and 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in hostile
