"""Model calls that reach the store without a user are counted on the dashboard, so that what no
user's page shows is still visible to ops."""

from __future__ import annotations

from datetime import datetime, timezone

from swarmlens_testing.polling import wait_until
from swarmlens_testing.spans import Stretch, insert_spans, task_spans


def test_dashboard_counts_model_calls_without_a_user(ops, seeded):
    before = ops.get("/?format=json").get_json()
    assert before["unattributed_calls"] == 0
    spans = task_spans(user_id="", stretches=[Stretch("Triage Agent", chats=[(120, 30), (80, 20)])],
                       start=datetime.now(timezone.utc))
    insert_spans(seeded.client, spans, database=seeded.config["SWARMLENS_OTEL_DATABASE"])
    d = wait_until(lambda: (lambda d: d if d["unattributed_calls"] else None)(ops.get("/?format=json").get_json()),
                   20, what="the calls without a user to be counted")
    assert d["unattributed_calls"] == 2 and d["unattributed_tokens"] == 250
    html = ops.get("/").get_data(as_text=True)
    assert "Model calls without a user: 2" in html and "250 tokens" in html
