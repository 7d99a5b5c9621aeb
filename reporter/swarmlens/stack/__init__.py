"""The single-machine stack of `swarmlens up`, one process tree (the command is swarmlens.commands.up).

Started in this order, each waited for before the next:

1. the embedded ClickHouse (``swarmlens clickhouse``) as a child process: chDB holds one data
   directory per process, so the engine gets a process of its own; ready when ``/ping`` answers;
2. the migrations (``swarmlens db migrate``), run here;
3. the OTLP receiver, ``swarmlens ingest`` (crash-safe: it acknowledges only what its write-ahead
   log holds on disk; see ``swarmlens.ingest``), or rotel with ``collector_config/rotel.env`` when
   SWARMLENS_COLLECTOR=rotel;
4. the reporter under gunicorn (``swarmlens.app:create_app()``), configured through the
   environment;
5. with ``--demo``, ``swarmlens demo --forever`` sending demo traffic to the receiver like any app.

Every child runs in a process group of its own (so a terminal's Ctrl-C reaches only this
process, which then stops the children in order) and gets SIGTERM if this process dies
(``PR_SET_PDEATHSIG``). Ctrl-C or SIGTERM stops them in reverse order: demo, reporter, the receiver
(which inserts what its log holds), ClickHouse last (which finishes the inserts in flight). Whatever
is left of a child's process group after that is killed, so nothing survives.

A child that dies on its own is restarted after a pause that doubles with each crash (0.5 s up
to 30 s); after 5 crashes of one child within 60 s the stack gives up, stops everything and exits 1.
After an unclean end (a crash of ClickHouse, or of `up` itself), the rollups are compared with
their details and repaired (``swarmlens db check --repair``) while the receiver holds its inserts
back. What runs and what is behind is in ``DATA_DIR/up-state.json`` (`swarmlens status`).

Every port is checked before anything starts; a taken one is named in the error. Children log
to ``DATA_DIR/logs/*.log``.

Modules: ``supervisor`` (the Stack: start in order, watch, restart, stop), ``children`` (one child
process in its own process group; port and readiness checks), ``state`` (``up-state.json``, read by
`swarmlens status` and by every command looking for the running endpoint), ``admin`` (the ops admin
account created on the first start).
"""

from swarmlens.errors import SwarmlensError


class StackError(SwarmlensError):
    """The stack cannot start: a taken port, a child that failed, a locked data directory."""
