"""Monthly reports on schedule, with the clock moved instead of waited for: each active user's PDF
and the ops summary arrive on the first of the month, named by user and period, once; after a
downtime over the first they arrive at the next start, still once."""

from __future__ import annotations

import io
from datetime import datetime, timezone

from pypdf import PdfReader


def _utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def _attachments(messages) -> dict[str, tuple[str, bytes]]:
    out = {}
    for m in messages:
        for part in m.iter_attachments():
            out[part.get_filename()] = (m["X-Envelope-To"], part.get_content())
    return out


def test_monthly_pdfs_arrive_on_the_first_of_the_month_once(store, smtp, no_channels):
    from swarmlens.notify import channels
    from swarmlens.notify.channels import Sender
    from swarmlens.notify.scheduler import Scheduler

    cfg = {**store.config, "SWARMLENS_SMTP_PORT": smtp.port}
    clock = Clock(_utc(2026, 8, 5, 12))
    channels.set_channel(store.client, cfg, "monthly-mail", kind="email", target="ops@example.com, user",
                         alerts=False, reports=True, now=clock())

    def notifier():  # a new one each time: nothing carries over in memory
        return Scheduler(cfg, store.client, clock=clock, sender=Sender(cfg, sleep=lambda s: None, clock=clock))

    # July ended before the channel existed; August is not over.
    for moment in (_utc(2026, 8, 5, 12), _utc(2026, 8, 20), _utc(2026, 8, 31, 23, 59, 59)):
        clock.now = moment
        assert notifier().tick() == []
    assert smtp.messages == []

    clock.now = _utc(2026, 9, 1, 0, 0, 30)
    sent = notifier().tick()
    assert sorted((d["user_id"], d["level"], d["status"]) for d in sent) == [
        ("", "summary", "sent"), ("erin", "report", "sent")]
    files = _attachments(smtp.messages)
    assert sorted(files) == ["swarmlens-erin-2026-08.pdf", "swarmlens-summary-2026-08.pdf"]
    to, pdf = files["swarmlens-erin-2026-08.pdf"]
    assert to == "ops@example.com, erin@example.com"
    text = _pdf_text(pdf)
    assert "Monthly usage: erin" in text and "August 2026" in text
    assert "3" in text  # three tasks in August
    to, pdf = files["swarmlens-summary-2026-08.pdf"]
    assert to == "ops@example.com"  # the summary goes to ops addresses only
    assert "erin" in _pdf_text(pdf) and "2026-08" in _pdf_text(pdf)

    # Later checks that month, and a restarted notifier, send nothing more.
    for moment in (_utc(2026, 9, 1, 0, 1, 30), _utc(2026, 9, 2, 8), _utc(2026, 9, 30, 23)):
        clock.now = moment
        assert notifier().tick() == []
    assert len(smtp.messages) == 2

    # Down from 30 September to 3 October: September's reports come at the next start, once.
    clock.now = _utc(2026, 10, 3, 9, 15)
    sent = notifier().tick()
    assert sorted((d["user_id"], d["level"]) for d in sent) == [("", "summary"), ("erin", "report")]
    assert notifier().tick() == []
    files = _attachments(smtp.messages)
    assert "swarmlens-erin-2026-09.pdf" in files and "swarmlens-summary-2026-09.pdf" in files
    assert "September 2026" in _pdf_text(files["swarmlens-erin-2026-09.pdf"][1])
    assert len(smtp.messages) == 4


def test_report_webhook_carries_the_pdf(store, receiver, no_channels):
    import base64

    from swarmlens.notify import channels
    from swarmlens.notify.channels import Sender
    from swarmlens.notify.scheduler import Scheduler

    clock = Clock(_utc(2026, 8, 1, 8))
    channels.set_channel(store.client, store.config, "report-hook", kind="webhook", target=receiver.url,
                         alerts=False, reports=True, plan="pro", now=clock())
    clock.now = _utc(2026, 9, 1, 6)
    Scheduler(store.config, store.client, clock=clock, sender=Sender(store.config, clock=clock)).tick()
    # A channel for one plan gets its users' reports, not the ops summary.
    assert [r["json"]["event"] for r in receiver.requests] == ["report.user_monthly"]
    body = receiver.requests[0]["json"]
    assert body["user_id"] == "erin" and body["period"] == "2026-08" and body["tasks"] == 3
    assert body["attachment"]["filename"] == "swarmlens-erin-2026-08.pdf"
    assert base64.b64decode(body["attachment"]["content_base64"]).startswith(b"%PDF")
