"""Fixtures of the notification tests: a migrated store with users near and over quota, a real
SMTP server (aiosmtpd) and a real HTTP receiver for webhooks, both on loopback."""

from __future__ import annotations

import json
import math
import random
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from swarmlens_testing.polling import wait_until
from swarmlens_testing.spans import Stretch, insert_spans, task_spans


@dataclass
class Mailbox:
    messages: list = field(default_factory=list)  # email.message.EmailMessage, as received

    async def handle_DATA(self, server, session, envelope):
        from email import policy
        from email.parser import BytesParser

        msg = BytesParser(policy=policy.default).parsebytes(envelope.content)
        msg["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(msg)
        return "250 OK"


@pytest.fixture()
def smtp():
    from aiosmtpd.controller import Controller

    from swarmlens_testing.ports import free_port

    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port
    yield box
    controller.stop()


class Receiver(ThreadingHTTPServer):
    """Records every POST; answers `fail_next` of them with 503 first."""

    def __init__(self):
        self.requests: list[dict] = []
        self.fail_next = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/swarmlens?key=abc"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            failing = self.server.fail_next > 0
            if failing:
                self.server.fail_next -= 1
            else:
                self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                             "json": json.loads(body)})
        self.send_response(503 if failing else 204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@dataclass
class Store:
    config: dict
    client: object
    month_start: datetime


def _add_tasks(spans, rng, user, start, n, scale=1):
    for i in range(n):
        spans.extend(task_spans(user_id=user, rng=rng, start=start + timedelta(minutes=i),
                                stretches=[Stretch("Triage Agent", chats=[(300 * scale, 100 * scale)]),
                                           Stretch("Sales Agent", model="gpt-4o", chats=[(500 * scale, 100 * scale)])]))


@pytest.fixture(scope="module")
def store(fresh_databases, tmp_path_factory):
    """alice at about 85% of plan team (warning at 80%), bob at 125% of plan free, carol far below
    plan pro, all this month; erin with tasks in August and September 2026 only."""
    from swarmlens import accounts, config
    from swarmlens.reports import common as rc
    from swarmlens.store.client import connect
    from swarmlens.store.migrate import migrate_from_config

    cfg = config.load({**fresh_databases, "SWARMLENS_DATA_DIR": str(tmp_path_factory.mktemp("data")),
                       "SWARMLENS_SECRET_KEY": "test-secret", "SWARMLENS_SMTP_HOST": "127.0.0.1",
                       "SWARMLENS_SMTP_SECURITY": "none", "SWARMLENS_NOTIFY_ATTEMPTS": 4,
                       "SWARMLENS_NOTIFY_BACKOFF": 0.5, "SWARMLENS_PUBLIC_URL": "https://swarmlens.example.com"})
    migrate_from_config(cfg)
    client = connect(cfg)
    rng = random.Random(13)
    month_start = datetime.now(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    spans: list = []
    _add_tasks(spans, rng, "alice", month_start, 4)
    _add_tasks(spans, rng, "bob", month_start, 5)
    _add_tasks(spans, rng, "carol", month_start, 1)
    _add_tasks(spans, rng, "erin", datetime(2026, 8, 10, 9, tzinfo=timezone.utc), 3)
    _add_tasks(spans, rng, "erin", datetime(2026, 9, 12, 9, tzinfo=timezone.utc), 2, scale=2)
    insert_spans(client, spans, database=cfg["SWARMLENS_OTEL_DATABASE"])
    month = rc.this_month(month_start.date())

    def used():
        rows = {r["user_id"]: int(r["tokens"] or 0) for r in rc.quota_rows(client, cfg, month)}
        return rows if len(rows) == 3 and all(rows.values()) else None

    tokens = wait_until(used, 30, 0.1, "this month's tasks in tasks_daily")
    accounts.set_plan(client, cfg, "team", quota=math.ceil(tokens["alice"] / 0.85), display_name="Team")
    accounts.set_plan(client, cfg, "free", quota=int(tokens["bob"] / 1.25), display_name="Free")
    accounts.set_plan(client, cfg, "pro", quota=100_000_000, display_name="Pro")
    accounts.upsert_user(client, cfg, "alice", plan="team", email="alice@example.com")
    accounts.upsert_user(client, cfg, "bob", plan="free")
    accounts.upsert_user(client, cfg, "carol", plan="pro", email="carol@example.com")
    accounts.upsert_user(client, cfg, "erin", plan="pro", email="erin@example.com")
    yield Store(cfg, client, month_start)
    client.close()


@pytest.fixture()
def no_channels(store):
    """Every test starts without channels (claims of earlier tests stay, under other channel names)."""
    from swarmlens.notify import channels

    for ch in channels.list_channels(store.client, store.config):
        channels.delete_channel(store.client, store.config, ch.name)
    yield
    for ch in channels.list_channels(store.client, store.config):
        channels.delete_channel(store.client, store.config, ch.name)
