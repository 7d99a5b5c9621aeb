"""The errors swarmlens raises on purpose, under one base.

Every class here (and every class derived from them in the rooms: ``store.client.StoreError``,
``auth.AuthError``, ``ingest.wal.WalFull``, ...) carries a message written for the person who
will read it: ``str(exc)`` is a whole sentence, without a traceback, naming what to do when
something can be done. The command line prints it as ``swarmlens COMMAND: MESSAGE`` and exits 1
(``commands``); the reporter answers ``status`` with it (``web``). Anything else that escapes is a
defect, and is logged with its traceback.

    SwarmlensError
    ├── InvalidInput         a value a person gave that cannot be used (400; CLI exit 1)
    │   ├── reports.feedback.InvalidFeedback
    │   └── reports.common.InvalidPeriod   a date or period a report cannot cover, with its field
    ├── store.client.StoreError
    │   ├── StoreUnavailable (503)   ├── QueryError   └── MigrationError
    ├── auth.AuthError       a credential a person can fix
    ├── ingest.otlp.BadRequest, ingest.wal.WalFull, ingest.wal.WalUnavailable
    ├── embedded.errors.ClickHouseError   an answer of the endpoint, with its ClickHouse code
    └── the collector's and the stack's errors (CollectorError, StackError)

The scripted LLM (standard library only, runnable without swarmlens) and the demo's simulated tool
failures are not swarmlens errors and stay outside.
"""

from __future__ import annotations


class SwarmlensError(Exception):
    """Base of every error swarmlens raises on purpose; ``str(exc)`` is the message for a person."""

    status = 500  # the HTTP status the reporter answers with, where it applies


class InvalidInput(SwarmlensError, ValueError):
    """A value a person typed that cannot be stored or used: the message says what is expected."""

    status = 400
