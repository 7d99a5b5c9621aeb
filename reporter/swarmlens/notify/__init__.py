"""Notifications that reach people: quota alerts and the monthly reports, by webhook and e-mail.

- ``channels``: where messages go (a webhook or e-mail addresses, for every plan or one plan),
  stored in ``alert_channels``, and how one message is delivered (signed JSON over HTTP, or SMTP),
  retried with backoff.
- ``claims``: the durable "this was sent" record. Every message is claimed in ClickHouse, keyed by
  (user, month, level, channel), before it is sent, so a restart never sends it twice.
- ``alerts``: users at their plan's warning threshold or over 100% this month.
- ``scheduled``: on the first of the month, each active user's monthly PDF and the ops summary.
- ``scheduler``: the loop `swarmlens up` runs (as ``swarmlens notify run``), with an injectable clock.
"""
