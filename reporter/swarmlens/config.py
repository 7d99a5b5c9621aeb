"""Every setting of the swarmlens service side, read in one place.

Each setting is an environment variable (``SWARMLENS_*``) with a default; command-line
flags override the environment where a command offers one. The README's settings table
documents each of them once, and a test fails when one is missing there.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping


def _default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return os.path.join(base, "swarmlens")


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _smtp_security(value: str) -> str:
    v = value.strip().lower()
    if v not in ("starttls", "ssl", "none"):
        raise ValueError(f"must be starttls, ssl or none, not {value!r}")
    return v


def _seconds(value: str) -> float:
    seconds = float(value)
    if not 1 <= seconds <= 86400:
        raise ValueError(f"must be between 1 and 86400 seconds, not {value!r}")
    return seconds


def _layers(value: str) -> str:
    layers = [p.strip().lower() for p in value.split(",") if p.strip()]
    unknown = set(layers) - {"kernel", "engine", "statements"}
    if unknown:
        raise ValueError(f"unknown layers {sorted(unknown)}: choose from kernel, engine, statements")
    return ",".join(sorted(set(layers)))


def layers(value: str) -> frozenset[str]:
    """The confinement layers a SWARMLENS_CLICKHOUSE_CONFINEMENT value names."""
    return frozenset(_layers(value).split(",")) - {""}


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    parse: Callable[[str], Any]
    doc: str


SETTINGS: tuple[Setting, ...] = (
    # Where data lives
    Setting("SWARMLENS_DATA_DIR", _default_data_dir, str,
            "Data directory of the embedded ClickHouse, the OTLP receiver's write-ahead log and the generated admin credentials."),
    # Embedded ClickHouse endpoint (`swarmlens clickhouse`, `swarmlens up`)
    Setting("SWARMLENS_CLICKHOUSE_LISTEN_HOST", "127.0.0.1", str,
            "Address the embedded ClickHouse HTTP interface binds to. A non-loopback address requires SWARMLENS_CLICKHOUSE_PASSWORD."),
    Setting("SWARMLENS_CLICKHOUSE_LISTEN_PORT", 8123, int,
            "Port of the embedded ClickHouse HTTP interface; 0 picks a free port and prints the URL."),
    Setting("SWARMLENS_CLICKHOUSE_MAX_BODY_BYTES", 1 << 30, int,
            "Largest request body (after decompression) the embedded endpoint accepts; larger ones get error 413."),
    Setting("SWARMLENS_CLICKHOUSE_MAX_QUERY_BYTES", 16 << 20, int,
            "Largest SQL text (outside of INSERT data) the embedded endpoint accepts."),
    Setting("SWARMLENS_CLICKHOUSE_POOL_SIZE", 8, int,
            "Engine connections the embedded endpoint keeps for requests without a session_id (the concurrency limit)."),
    # Where ClickHouse is, for every client (migrations, reporter, demo, bench)
    Setting("SWARMLENS_CLICKHOUSE_URL", "http://127.0.0.1:8123", str,
            "ClickHouse HTTP interface the reporter, migrations and tools talk to (embedded or a real server)."),
    Setting("SWARMLENS_CLICKHOUSE_USER", "default", str,
            "ClickHouse user, for clients and, when a password is set, required by the embedded endpoint."),
    Setting("SWARMLENS_CLICKHOUSE_PASSWORD", "", str,
            "ClickHouse password. Unset: `swarmlens clickhouse` and `swarmlens up` generate one on first start and keep it "
            "in SWARMLENS_DATA_DIR/clickhouse-password (mode 0600), which every swarmlens command then reads. Set it to the "
            "empty string (export SWARMLENS_CLICKHOUSE_PASSWORD=) for a server that has none."),
    Setting("SWARMLENS_CLICKHOUSE_USER_FILES_PATH", "", str,
            "Directory the embedded endpoint's file(), INTO OUTFILE and FROM INFILE may use (literal paths inside it only); "
            "empty keeps the engine away from every file outside its data directory."),
    Setting("SWARMLENS_CLICKHOUSE_CONFINEMENT", "kernel,engine,statements", _layers,
            "Layers that confine the embedded endpoint to its data directory: `kernel` (the process restricts itself "
            "with Landlock: no file outside the data directory and SWARMLENS_CLICKHOUSE_USER_FILES_PATH, no TCP connect "
            "or bind), `engine` (input formats read values, not expressions), `statements` (each statement judged from "
            "the engine's parse, answering Code 497). Leave out a layer only to test the others "
            "(docs/embedded-clickhouse.md)."),
    Setting("SWARMLENS_CLICKHOUSE_MAX_QUERIES_PER_USER", 0, int,
            "Queries one ClickHouse user may run at once on the embedded endpoint (sessions included); 0 means the "
            "pool size minus 2, so that one user never holds every engine connection. Others wait their turn."),
    Setting("SWARMLENS_CLICKHOUSE_QUEUE_SECONDS", 10.0, _seconds,
            "How long a query waits for its turn (the user's limit or a free engine connection) before the embedded "
            "endpoint answers 503 with Code 202 (TOO_MANY_SIMULTANEOUS_QUERIES)."),
    Setting("SWARMLENS_CLICKHOUSE_CORS_ORIGIN", "", str,
            "Origin the embedded endpoint allows in Access-Control-Allow-Origin (for a browser client on another "
            "origin); empty sends no CORS headers, as a server does."),
    Setting("SWARMLENS_OTEL_DATABASE", "otel", str,
            "Database of the raw span table otel_traces, as the collector writes it."),
    Setting("SWARMLENS_DATABASE", "swarmlens", str,
            "Database of swarmlens' derived tables, views and configuration tables."),
    Setting("SWARMLENS_CLUSTER", "", str,
            "ClickHouse cluster name: when set, migrations use ON CLUSTER with Replicated and Distributed engines."),
    Setting("SWARMLENS_TRACES_TTL_DAYS", 0, int,
            "Days raw spans are kept in otel_traces (0 keeps them forever); derived tables are kept."),
    # The single-machine stack (`swarmlens up`): rotel's OTLP listeners and the reporter's WSGI server
    Setting("SWARMLENS_OTLP_HOST", "127.0.0.1", str,
            "Address the OTLP receivers bind to under `swarmlens up` (the address apps send spans to)."),
    Setting("SWARMLENS_OTLP_GRPC_PORT", 4317, int,
            "Port of the OTLP/gRPC receiver under `swarmlens up`."),
    Setting("SWARMLENS_OTLP_HTTP_PORT", 4318, int,
            "Port of the OTLP/HTTP receiver under `swarmlens up`."),
    Setting("SWARMLENS_ROTEL_CONFIG", "", str,
            "Rotel settings file `swarmlens up` reads (default: collector_config/rotel.env, shipped in the package)."),
    Setting("SWARMLENS_COLLECTOR", "swarmlens", str,
            "OTLP receiver `swarmlens up` runs: `swarmlens` (crash-safe, see [docs/reliability.md](docs/reliability.md)) or `rotel` (faster, loses the batch in flight when killed)."),
    Setting("SWARMLENS_INGEST_BATCH_MS", 200, int,
            "Milliseconds between inserts of the OTLP receiver under `swarmlens up` (freshness against insert size)."),
    Setting("SWARMLENS_INGEST_MAX_BACKLOG_BYTES", 1 << 30, int,
            "Largest write-ahead log the OTLP receiver keeps while ClickHouse is behind; beyond it senders get 503 and retry."),
    # Reliability of the write-ahead log, health and sign-in (issue 19)
    Setting("SWARMLENS_INGEST_MIN_FREE_BYTES", 128 << 20, int,
            "Free space the OTLP receiver keeps on the write-ahead log's disk: below it, requests get 503 with Retry-After before anything is written (0 turns the check off)."),
    Setting("SWARMLENS_CLICKHOUSE_SLOW_GRACE_SECONDS", 10.0, float,
            "How long ClickHouse may keep missing the health check's timeout (SWARMLENS_CLICKHOUSE_PING_SECONDS) before data pages and /readyz answer 503: a slow engine is not a down one. A refused connection counts at once."),
    Setting("SWARMLENS_REPORTER_HOST", "127.0.0.1", str,
            "Address `swarmlens up` serves the reporter on (gunicorn)."),
    Setting("SWARMLENS_REPORTER_PORT", 8000, int,
            "Port `swarmlens up` serves the reporter on."),
    Setting("SWARMLENS_REPORTER_WORKERS", 1, int,
            "gunicorn worker processes of the reporter under `swarmlens up`. One by default: results are reused within a process, and a second process computes every page again for itself (see docs/reporter.md, \"Workers\"); more pay off where ClickHouse has cores of its own."),
    Setting("SWARMLENS_REPORTER_THREADS", 16, int,
            "Threads per gunicorn worker of the reporter under `swarmlens up` (pages wait on ClickHouse, so threads serve them concurrently)."),
    # The reporter itself (web pages, JSON API, PDFs)
    Setting("SWARMLENS_SECRET_KEY", "", str,
            "Key that signs the reporter's session cookies; empty generates one once and keeps it in SWARMLENS_DATA_DIR/reporter_secret_key."),
    Setting("SWARMLENS_SESSION_HOURS", 12, int,
            "Hours a sign-in to the reporter stays valid in the browser."),
    Setting("SWARMLENS_SECURE_COOKIES", False, _bool,
            "Send the reporter's session cookie over HTTPS only (set it when the reporter is behind TLS)."),
    Setting("SWARMLENS_MAX_REQUEST_BYTES", 64 * 1024, int,
            "Largest request body the reporter accepts (forms, API feedback); larger ones get error 413."),
    Setting("SWARMLENS_PAGE_SIZE", 50, int,
            "Rows per page of task history and search results, and the API's default limit."),
    Setting("SWARMLENS_QUERY_TIMEOUT_SECONDS", 30, int,
            "Longest a reporter query may run (ClickHouse max_execution_time); a page whose query runs longer gets error 503."),
    Setting("SWARMLENS_QUERY_MAX_MEMORY_BYTES", 2 << 30, int,
            "Most memory one reporter query may use on the ClickHouse server (max_memory_usage); 0 means the server's own limit."),
    Setting("SWARMLENS_REPORTER_CACHE_BYTES", 64 << 20, int,
            "Memory each reporter process may use to reuse query results while the data is unchanged (exact: see docs/reporter.md); 0 turns reuse off."),
    Setting("SWARMLENS_REPORTER_CACHE_SECONDS", 60.0, float,
            "Longest a reused query result is kept even when no data changed (bounds queries that read the clock, such as the filter menus' last 90 days)."),
    Setting("SWARMLENS_CLICKHOUSE_PING_SECONDS", 1.0, float,
            "How long the reporter waits for ClickHouse to answer a health check before data pages answer 503."),
    Setting("SWARMLENS_LOGIN_FAILURES_PER_ADDRESS", 20, int,
            "Failed sign-ins one client address may make within SWARMLENS_LOGIN_WINDOW_SECONDS before /login answers 429."),
    Setting("SWARMLENS_LOGIN_FAILURES_PER_ACCOUNT", 10, int,
            "Failed sign-ins to one ops login from one address within SWARMLENS_LOGIN_WINDOW_SECONDS before that address gets 429 for it; past as many from all addresses together, addresses that failed on it wait a delay doubling with each failure (an address with no failure still signs in)."),
    Setting("SWARMLENS_LOGIN_WINDOW_SECONDS", 900, int,
            "Window in which failed sign-ins are counted for the two limits above."),
    # Notifications: quota alerts and monthly reports by webhook and e-mail (`swarmlens notify`)
    Setting("SWARMLENS_SMTP_HOST", "", str,
            "SMTP server that sends alert and report e-mails; empty: e-mail channels record a failed delivery."),
    Setting("SWARMLENS_SMTP_PORT", 587, int,
            "Port of the SMTP server."),
    Setting("SWARMLENS_SMTP_SECURITY", "starttls", _smtp_security,
            "SMTP connection security: starttls, ssl (implicit TLS, usually port 465) or none (loopback relays only)."),
    Setting("SWARMLENS_SMTP_USER", "", str,
            "SMTP login; empty sends without authenticating."),
    Setting("SWARMLENS_SMTP_PASSWORD", "", str,
            "SMTP password for SWARMLENS_SMTP_USER."),
    Setting("SWARMLENS_SMTP_FROM", "swarmlens@localhost", str,
            "Sender address of alert and report e-mails."),
    Setting("SWARMLENS_NOTIFY_INTERVAL", 60.0, _seconds,
            "Seconds between two checks of quotas and of the report schedule by the notifier of `swarmlens up`."),
    Setting("SWARMLENS_NOTIFY_ATTEMPTS", 5, int,
            "Attempts per delivery before it is recorded as failed (webhook: network errors, 429 and 5xx; SMTP: 4xx)."),
    Setting("SWARMLENS_NOTIFY_BACKOFF", 2.0, float,
            "Seconds before the first retry of a delivery; each further retry waits twice as long (at most 5 minutes)."),
    Setting("SWARMLENS_PUBLIC_URL", "", str,
            "Address people open the reporter at (https://swarmlens.example.com); alerts link to the user's page from it."),
)

_BY_NAME = {s.name: s for s in SETTINGS}


class Config(dict):
    """A plain mapping of setting name to parsed value, with attribute-free access by name."""

    def __getattr__(self, item: str) -> Any:  # config.SWARMLENS_DATA_DIR reads naturally in code
        try:
            return self[item]
        except KeyError:
            raise AttributeError(item) from None


def load(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Reads every setting from the environment, then applies explicit overrides."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for s in SETTINGS:
        raw = env.get(s.name)
        if raw is None or raw == "":
            values[s.name] = s.default() if callable(s.default) else s.default
        else:
            try:
                values[s.name] = s.parse(raw)
            except ValueError as exc:
                raise ValueError(f"{s.name}: {exc}") from None
    for key, value in (overrides or {}).items():
        if key not in _BY_NAME:
            raise KeyError(f"unknown setting {key}")
        if value is not None:
            values[key] = value
    password_given = "SWARMLENS_CLICKHOUSE_PASSWORD" in env or \
        (overrides or {}).get("SWARMLENS_CLICKHOUSE_PASSWORD") is not None
    if not password_given:
        values["SWARMLENS_CLICKHOUSE_PASSWORD"] = generated_clickhouse_password(values["SWARMLENS_DATA_DIR"])
    return Config(values)


def clickhouse_password_path(data_dir: str) -> str:
    """Where `swarmlens clickhouse` and `swarmlens up` keep the endpoint's generated password."""
    return os.path.join(os.path.expanduser(data_dir), "clickhouse-password")


def generated_clickhouse_password(data_dir: str) -> str:
    try:
        with open(clickhouse_password_path(data_dir), encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def clickhouse_password(data_dir: str) -> str:
    """The endpoint's generated password, created (and kept, mode 0600) on first use."""
    return generated_clickhouse_password(data_dir) or \
        write_private_file(clickhouse_password_path(data_dir), secrets.token_urlsafe(24) + "\n").strip()


def write_private_file(path: str, text: str) -> str:
    """Writes `text` to `path` readable by its owner only (0600), whole or not at all: a temporary
    file, synced, then renamed over the path. Returns the text."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return text


def setting_names() -> list[str]:
    return [s.name for s in SETTINGS]
