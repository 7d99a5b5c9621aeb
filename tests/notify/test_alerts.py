"""Quota alerts end to end: a real SMTP server and a real webhook receiver get each alert exactly
once, across a restart of the notifier (a new process), with a valid signature; retries back off;
a claim is durable before anything is sent."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
import threading
from datetime import datetime, timezone

import pytest

SECRET = "whsec-test-0123456789"


def _env(cfg, smtp_port: int) -> dict:
    env = dict(os.environ)
    env.update({k: str(v) for k, v in cfg.items() if k.startswith("SWARMLENS_")})
    env["SWARMLENS_SMTP_PORT"] = str(smtp_port)
    return env


def _notify_check(cfg, smtp_port: int) -> str:
    r = subprocess.run([sys.executable, "-m", "swarmlens.cli", "notify", "check"], env=_env(cfg, smtp_port),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_quota_alerts_reach_a_mailbox_and_a_webhook_once_across_restarts(store, smtp, receiver, no_channels):
    from swarmlens.notify import channels

    cfg, client = store.config, store.client
    channels.set_channel(client, cfg, "ops-hook", kind="webhook", target=receiver.url, secret=SECRET)
    channels.set_channel(client, cfg, "ops-mail", kind="email", target="ops@example.com, user")
    # Only for plan pro, where nobody is near quota: it must stay silent.
    channels.set_channel(client, cfg, "pro-hook", kind="webhook", target=receiver.url, plan="pro")

    out = _notify_check(cfg, smtp.port)
    assert "4 notifications sent or attempted" in out, out

    hooks = sorted(receiver.requests, key=lambda r: r["json"]["user_id"])
    assert [(h["json"]["user_id"], h["json"]["event"], h["json"]["level"]) for h in hooks] == [
        ("alice", "quota.warning", "warn"), ("bob", "quota.exceeded", "over")]
    month = store.month_start.strftime("%Y-%m")
    for h in hooks:
        headers = {k.lower(): v for k, v in h["headers"].items()}
        expected = hmac.new(SECRET.encode(), headers["x-swarmlens-timestamp"].encode() + b"." + h["body"],
                            hashlib.sha256).hexdigest()
        assert headers["x-swarmlens-signature"] == f"sha256={expected}"
        assert headers["content-type"] == "application/json"
        assert h["path"] == "/hooks/swarmlens?key=abc"
        assert h["json"]["month"] == month
    alice = hooks[0]["json"]
    assert alice["plan"] == "team" and 84 <= alice["percent"] < 86 and alice["tokens"] < alice["quota"]
    assert alice["url"] == "https://swarmlens.example.com/users/alice"
    assert hooks[1]["json"]["percent"] >= 100

    # One message per audience: ops get theirs; alice, who has an address, gets her own, addressed
    # to her alone, in her own words; bob has none, so ops alone hear of him.
    mails = smtp.messages
    assert len(mails) == 3
    by_to = {m["X-Envelope-To"]: [] for m in mails}
    for m in mails:
        by_to[m["X-Envelope-To"]].append(m)
    assert sorted((to, len(ms)) for to, ms in by_to.items()) == [("alice@example.com", 1), ("ops@example.com", 2)]
    ops = {("alice" if "alice" in m["Subject"] else "bob"): m for m in by_to["ops@example.com"]}
    assert "reached 8" in ops["alice"]["Subject"] and "Team" in ops["alice"]["Subject"]
    assert "over the Free plan" in ops["bob"]["Subject"]
    own = by_to["alice@example.com"][0]
    assert own["To"] == "alice@example.com" and "ops@example.com" not in own.as_string()
    assert own["Subject"].startswith("You have used 8") and "of your monthly quota" in own["Subject"]
    from email.utils import parsedate_to_datetime

    ids = set()
    for m in mails:  # a Date header mail clients sort and trust by; one Message-ID each; text and HTML
        assert parsedate_to_datetime(m["Date"]).tzinfo is not None, m["Date"]
        ids.add(m["Message-ID"])
        text, html = m.get_body(("plain",)).get_content(), m.get_body(("html",)).get_content()
        assert m.get_content_type() == "multipart/alternative"
        for figure in ("Task tokens used", "Monthly quota"):
            assert figure in text and figure in html
    assert len(ids) == 3
    assert "https://swarmlens.example.com/users/bob" in ops["bob"].get_body(("plain",)).get_content()
    assert 'href="https://swarmlens.example.com/users/bob"' in ops["bob"].get_body(("html",)).get_content()
    assert "Your quota starts again on 1 " in own.get_body(("plain",)).get_content()

    # A new notifier process finds the claims: nothing is sent again.
    out = _notify_check(cfg, smtp.port)
    assert "0 notifications sent or attempted" in out, out
    assert len(receiver.requests) == 2 and len(smtp.messages) == 3

    # The deliveries are recorded, as /admin/quotas and `swarmlens notify log` show them.
    from swarmlens.notify import claims

    log = {(r["user_id"], r["level"], r["channel"]): r for r in claims.recent(client, cfg)}
    assert {k: (v["status"], v["attempts"]) for k, v in log.items() if k[2] in ("ops-hook", "ops-mail")} == {
        ("alice", "warn", "ops-hook"): ("sent", 1), ("alice", "warn", "ops-mail"): ("sent", 1),
        ("bob", "over", "ops-hook"): ("sent", 1), ("bob", "over", "ops-mail"): ("sent", 1)}
    assert log[("alice", "warn", "ops-mail")]["target"] == "ops@example.com, alice@example.com"


def test_a_failing_webhook_is_retried_with_backoff_then_recorded(store, receiver, no_channels):
    from swarmlens.notify import channels, claims
    from swarmlens.notify.channels import Sender
    from swarmlens.notify.scheduler import Scheduler

    cfg, client = store.config, store.client
    channels.set_channel(client, cfg, "flaky-hook", kind="webhook", target=receiver.url, plan="free")
    waits: list[float] = []
    receiver.fail_next = 2
    now = datetime.now(timezone.utc)
    sender = Sender(cfg, sleep=waits.append, clock=lambda: now)
    done = Scheduler(cfg, client, clock=lambda: now, sender=sender).tick()
    assert done == [{"user_id": "bob", "level": "over", "channel": "flaky-hook", "status": "sent"}]
    assert waits == [0.5, 1.0]  # SWARMLENS_NOTIFY_BACKOFF, doubled
    assert [r["json"]["user_id"] for r in receiver.requests] == ["bob"]
    row = next(r for r in claims.recent(client, cfg) if r["channel"] == "flaky-hook")
    assert (row["status"], row["attempts"], row["detail"]) == ("sent", 3, "HTTP 204")

    # A receiver that keeps failing: the attempts run out and the failure is recorded, once.
    channels.set_channel(client, cfg, "down-hook", kind="webhook", target=receiver.url, plan="free")
    receiver.fail_next = 100
    waits.clear()
    Scheduler(cfg, client, clock=lambda: now, sender=sender).tick()
    assert waits == [0.5, 1.0, 2.0]
    row = next(r for r in claims.recent(client, cfg) if r["channel"] == "down-hook")
    assert row["status"] == "failed" and row["attempts"] == 4 and "HTTP 503" in row["detail"]
    receiver.fail_next = 0
    assert Scheduler(cfg, client, clock=lambda: now, sender=sender).tick() == []


def test_the_claim_is_durable_before_the_send(store, receiver, no_channels):
    """A notifier that dies between claim and send never sends that message later."""
    from swarmlens.notify import channels, claims
    from swarmlens.notify.channels import Sender
    from swarmlens.notify.scheduler import Scheduler

    cfg, client = store.config, store.client
    channels.set_channel(client, cfg, "crash-hook", kind="webhook", target=receiver.url, plan="team")

    class Crash(Exception):
        pass

    class CrashingSender(Sender):
        def deliver(self, channel, message, delivery_id):
            raise Crash()

    with pytest.raises(Crash):
        Scheduler(cfg, client, sender=CrashingSender(cfg)).tick()
    assert Scheduler(cfg, client, sender=Sender(cfg)).tick() == []
    assert receiver.requests == []
    row = next(r for r in claims.recent(client, cfg) if r["channel"] == "crash-hook")
    assert row["user_id"] == "alice" and row["status"] == ""  # shown as "no delivery recorded"


def test_concurrent_claims_of_one_key_have_one_winner(store):
    from swarmlens.notify import claims
    from swarmlens.store.client import connect

    key = claims.Key("alice", datetime(2026, 5, 1).date(), "warn", "race-channel")
    results: list = []
    barrier = threading.Barrier(4)

    def contend():
        c = connect(store.config)
        try:
            barrier.wait()
            results.append(claims.claim(c, store.config, key, datetime.now(timezone.utc)))
        finally:
            c.close()

    threads = [threading.Thread(target=contend) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([r for r in results if r]) == 1, results
    assert claims.claim(store.client, store.config, key, datetime.now(timezone.utc)) is None
    # The server dropped the later claims (insert deduplication): one row is stored, not five.
    stored = store.client.query(
        "SELECT count() FROM {db:Identifier}.notification_claims WHERE channel = 'race-channel'",
        parameters={"db": store.config["SWARMLENS_DATABASE"]}).result_rows[0][0]
    assert stored == 1


def test_a_temporary_smtp_refusal_is_retried(store, smtp, no_channels):
    from swarmlens.notify import channels, claims
    from swarmlens.notify.channels import Sender
    from swarmlens.notify.scheduler import Scheduler

    cfg = {**store.config, "SWARMLENS_SMTP_PORT": smtp.port}
    refusals = {"left": 1}
    accept = smtp.handle_DATA

    async def busy_once(server, session, envelope):
        if refusals["left"]:
            refusals["left"] -= 1
            return "451 4.3.0 Mailbox busy, try again later"
        return await accept(server, session, envelope)

    smtp.handle_DATA = busy_once
    channels.set_channel(store.client, cfg, "busy-mail", kind="email", target="ops@example.com", plan="free")
    waits: list[float] = []
    done = Scheduler(cfg, store.client, sender=Sender(cfg, sleep=waits.append)).tick()
    assert done == [{"user_id": "bob", "level": "over", "channel": "busy-mail", "status": "sent"}]
    assert waits == [0.5] and len(smtp.messages) == 1
    row = next(r for r in claims.recent(store.client, store.config) if r["channel"] == "busy-mail")
    assert (row["status"], row["attempts"]) == ("sent", 2)


def test_a_bad_smtp_security_setting_is_named():
    from swarmlens import config

    with pytest.raises(ValueError, match="SWARMLENS_SMTP_SECURITY: must be starttls, ssl or none, not 'tls'"):
        config.load(environ={"SWARMLENS_SMTP_SECURITY": "tls"})
    with pytest.raises(ValueError, match="SWARMLENS_NOTIFY_INTERVAL: must be between 1 and 86400 seconds"):
        config.load(environ={"SWARMLENS_NOTIFY_INTERVAL": "0"})


def test_admin_quotas_page_configures_channels_and_shows_deliveries(store, receiver, no_channels):
    import re

    from swarmlens import auth
    from swarmlens.app import create_app
    from swarmlens.notify.scheduler import Scheduler

    cfg = store.config
    auth.set_ops_password(store.client, cfg, "ops-admin", "a long enough password", create=True)
    app = create_app({**{k: v for k, v in cfg.items() if k.startswith("SWARMLENS_")}, "TESTING": True})
    try:
        c = app.test_client()
        csrf = lambda path: re.search(r'name="csrf_token" value="([^"]+)"', c.get(path).get_data(as_text=True)).group(1)
        r = c.post("/login", data={"csrf_token": csrf("/login"), "mode": "ops", "login": "ops-admin",
                                   "password": "a long enough password"})
        assert r.status_code == 302
        page = c.get("/admin/quotas").get_data(as_text=True)
        assert "No channels: quota warnings show on these pages only." in page

        r = c.post("/admin/quotas", data={"csrf_token": csrf("/admin/quotas"), "action": "set_channel",
                                          "name": "web-hook", "kind": "webhook", "target": "ftp://nope",
                                          "plan": "", "alerts": "1"})
        assert r.status_code == 422
        body = r.get_data(as_text=True)
        assert "a webhook is an http:// or https:// URL" in body and 'value="ftp://nope"' in body

        r = c.post("/admin/quotas", data={"csrf_token": csrf("/admin/quotas"), "action": "set_channel",
                                          "name": "web-hook", "kind": "webhook", "target": receiver.url,
                                          "plan": "team", "alerts": "1"})
        assert r.status_code == 201
        secret = re.search(r"Signing secret of web-hook</strong> \(shown only now\): <code>([^<]+)</code>",
                           r.get_data(as_text=True)).group(1)
        assert len(secret) >= 32

        Scheduler(cfg, store.client).tick()
        assert [q["json"]["user_id"] for q in receiver.requests] == ["alice"]
        page = c.get("/admin/quotas").get_data(as_text=True)
        row = re.search(r"<tr><td>[0-9: -]+</td><td>alice</td>.*?</tr>", page, re.S).group(0)
        assert "quota warning" in row and "web-hook" in row and ">sent<" in row
        assert "key=abc" not in page  # the receiver's query string may hold a key: never shown
        data = c.get("/admin/quotas?format=json").get_json()
        assert [ch["name"] for ch in data["channels"]] == ["web-hook"] and secret not in str(data)
        assert any(d["user_id"] == "alice" and d["status"] == "sent" for d in data["deliveries"])

        r = c.post("/admin/quotas", data={"csrf_token": csrf("/admin/quotas"), "action": "delete_channel",
                                          "name": "web-hook"})
        assert r.status_code == 303
        assert "No channels" in c.get("/admin/quotas").get_data(as_text=True)
    finally:
        app.extensions["swarmlens_pool"].close()


def test_the_notifier_keeps_running_while_clickhouse_is_away(store, tmp_path):
    from swarmlens_testing.polling import wait_until
    from swarmlens import config
    from swarmlens.notify.scheduler import Scheduler
    from swarmlens_testing.ports import free_port

    cfg = config.load({"SWARMLENS_CLICKHOUSE_URL": f"http://127.0.0.1:{free_port()}",
                       "SWARMLENS_DATA_DIR": str(tmp_path)}, environ={})
    said: list[str] = []
    stop = threading.Event()
    loop = threading.Thread(target=Scheduler(cfg, say=said.append).run, args=(stop, 0.05))
    loop.start()
    try:
        wait_until(lambda: sum("check failed, retrying in 0.05 s: cannot reach ClickHouse" in s for s in said) >= 2,
                   30, what="two failed checks")
        assert loop.is_alive()
    finally:
        stop.set()
        loop.join(10)
    assert not loop.is_alive()
