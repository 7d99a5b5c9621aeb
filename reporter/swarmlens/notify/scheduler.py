"""The notifier loop: every SWARMLENS_NOTIFY_INTERVAL seconds, quota alerts and due reports.

`swarmlens up` runs it as a child process (``swarmlens notify run``). The clock is injected, so
a test moves time instead of waiting; every decision is taken from the clock and from the claims
in ClickHouse, nothing from memory, so a restarted notifier carries on where the last one stopped.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from swarmlens.notify import alerts, scheduled
from swarmlens.notify.channels import Sender, list_channels


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Scheduler:
    def __init__(self, config: Mapping[str, Any], client=None, *, clock: Callable[[], datetime] = utc_now,
                 sender: Sender | None = None, say: Callable[[str], None] = lambda line: None):
        self.config = config
        self._client = client
        self.clock = clock
        self.sender = sender or Sender(config, clock=clock)
        self.say = say

    @property
    def client(self):
        if self._client is None:
            from swarmlens.store.client import connect

            self._client = connect(self.config)
        return self._client

    def tick(self) -> list[dict[str, Any]]:
        """One check at the clock's time: the quota alerts, then the reports that are due."""
        now = self.clock()
        channels = list_channels(self.client, self.config)
        if not channels:
            return []
        out = alerts.check_quotas(self.client, self.config, self.sender, now, channels, say=self.say)
        out += scheduled.send_due_reports(self.client, self.config, self.sender, now, channels, say=self.say)
        return out

    def run(self, stop: threading.Event, interval: float | None = None) -> None:
        """Ticks until ``stop`` is set; a failing check (ClickHouse away, say) is logged and retried."""
        from swarmlens.store.client import StoreError

        every = float(interval if interval is not None else self.config["SWARMLENS_NOTIFY_INTERVAL"])
        while not stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # a background loop: log, and try again at the next check
                if not isinstance(exc, StoreError):
                    import traceback

                    self.say("check failed:\n" + traceback.format_exc().rstrip())
                self.say(f"check failed, retrying in {every:g} s: {exc}")
                if self._client is not None:
                    try:
                        self._client.close()
                    except Exception:
                        pass
                    self._client = None
            stop.wait(every)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
