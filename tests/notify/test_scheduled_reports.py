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
    """File name -> (every envelope recipient it went to, comma-joined in order, its bytes)."""
    out: dict[str, tuple[str, bytes]] = {}
    for m in messages:
        for part in m.iter_attachments():
            name = part.get_filename()
            before = out[name][0] + ", " if name in out else ""
            out[name] = (before + m["X-Envelope-To"], part.get_content())
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
    assert to == "ops@example.com, erin@example.com"  # two messages: ops', and erin's own
    own = next(m for m in smtp.messages if m["X-Envelope-To"] == "erin@example.com")
    assert own["To"] == "erin@example.com" and own["Subject"] == "Your usage report for August 2026"
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
    assert len(smtp.messages) == 3

    # Down from 30 September to 3 October: September's reports come at the next start, once.
    clock.now = _utc(2026, 10, 3, 9, 15)
    sent = notifier().tick()
    assert sorted((d["user_id"], d["level"]) for d in sent) == [("", "summary"), ("erin", "report")]
    assert notifier().tick() == []
    files = _attachments(smtp.messages)
    assert "swarmlens-erin-2026-09.pdf" in files and "swarmlens-summary-2026-09.pdf" in files
    assert "September 2026" in _pdf_text(files["swarmlens-erin-2026-09.pdf"][1])
    assert len(smtp.messages) == 6


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


def test_a_month_sent_on_demand_previewed_to_files_and_to_given_addresses(store, smtp, no_channels, tmp_path):
    """`swarmlens notify send-monthly`: a month's reports whenever the operator wants them. A preview
    (--dry-run, --out) sends nothing; --to sends to those addresses only and records nothing; to
    the channels it sends what is not sent yet, under the schedule's claims, once."""
    import os
    import subprocess
    import sys
    from email import policy
    from email.parser import BytesParser

    import pytest

    from swarmlens.notify import channels, claims
    from swarmlens.notify.channels import Sender
    from swarmlens.notify.scheduled import send_monthly
    from swarmlens.reports import common as rc

    cfg = {**store.config, "SWARMLENS_SMTP_PORT": smtp.port}
    now = _utc(2026, 11, 20, 10)
    september = rc.month_period("2026-09")
    # Created long after September ended: the schedule would never send it September's reports.
    channels.set_channel(store.client, cfg, "on-demand", kind="email", target="ops@example.com, user",
                         alerts=False, reports=True, now=now)
    sender = Sender(cfg, sleep=lambda s: None, clock=lambda: now)

    lines: list[str] = []
    done = send_monthly(store.client, cfg, sender, september, now, dry_run=True, say=lines.append)
    assert sorted((d["user_id"], d["level"], d["status"]) for d in done) == [
        ("", "summary", "preview"), ("erin", "report", "preview")]
    assert any("would be sent" in line and "swarmlens-erin-2026-09.pdf" in line for line in lines), lines
    def claimed_here():  # claims of earlier tests stay, under their own channels
        return {k for k in claims.claimed(store.client, cfg, september.start) if k[2] in ("on-demand", "--to")}

    assert smtp.messages == [] and not claimed_here()

    out = tmp_path / "preview"
    send_monthly(store.client, cfg, sender, september, now, out_dir=str(out))
    emls = sorted(p.name for p in out.iterdir())
    assert emls == ["001-report-erin-on-demand-ops.eml", "001-report-erin-on-demand-user.eml",
                    "002-summary-ops-on-demand-ops.eml"], emls
    own = BytesParser(policy=policy.default).parsebytes((out / emls[1]).read_bytes())
    assert own["To"] == "erin@example.com" and "ops@" not in own.as_string()
    assert "September 2026" in own.get_body(("html",)).get_content()
    files = {p.get_filename(): p.get_content() for p in own.iter_attachments()}
    assert "September 2026" in _pdf_text(files["swarmlens-erin-2026-09.pdf"])
    assert smtp.messages == []

    # To given addresses: sent there, nowhere else, recorded nowhere.
    done = send_monthly(store.client, cfg, sender, september, now, to="qa@example.com", users=["erin"])
    assert [(d["user_id"], d["status"], d["target"]) for d in done] == [("erin", "sent", "qa@example.com")]
    assert [m["X-Envelope-To"] for m in smtp.messages] == ["qa@example.com"]
    assert not claimed_here()

    # To the channels: sent once, under the claims; again, nothing.
    done = send_monthly(store.client, cfg, sender, september, now)
    assert sorted((d["user_id"], d["status"]) for d in done) == [("", "sent"), ("erin", "sent")]
    assert sorted(m["X-Envelope-To"] for m in smtp.messages[1:]) == [
        "erin@example.com", "ops@example.com", "ops@example.com"]
    assert send_monthly(store.client, cfg, sender, september, now) == []
    assert len(smtp.messages) == 4

    # A month not over is only previewed; one to come is refused.
    with pytest.raises(ValueError, match="is not over"):
        send_monthly(store.client, cfg, sender, rc.month_period("2026-11"), now)
    with pytest.raises(ValueError, match="has not begun"):
        send_monthly(store.client, cfg, sender, rc.month_period("2026-12"), now, dry_run=True)

    # The command: one line per message and a summary; a bad month is one clear line and exit 1.
    env = {**os.environ, **{k: str(v) for k, v in cfg.items() if k.startswith("SWARMLENS_")}}
    r = subprocess.run([sys.executable, "-m", "swarmlens.cli", "notify", "send-monthly", "--month", "2026-08",
                        "--dry-run"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "swarmlens-erin-2026-08.pdf" in r.stdout and "2 messages previewed" in r.stdout, r.stdout
    r = subprocess.run([sys.executable, "-m", "swarmlens.cli", "notify", "send-monthly", "--month", "2026-13"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0 and "2026-13" in r.stderr, r.stderr
    assert len(smtp.messages) == 4
