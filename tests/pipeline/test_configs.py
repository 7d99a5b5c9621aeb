"""The collector configs, the compose file and the Dockerfile, checked by parsing (no Docker here).

- otel-collector.yaml: every pipeline names defined components, the outage-proof exporter settings
  are there, and every ${env:...} placeholder is documented and given by compose;
- rotel.env: every variable is a flag of the installed rotel-agent and every placeholder is a
  swarmlens setting, so `swarmlens up` can expand it;
- docker-compose.yml: pinned images, declared volumes, healthchecks, mounted files that exist,
  documented variables, nothing published publicly by default, a required ClickHouse password.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from swarmlens import config as config_mod
from swarmlens.ingest import collectors

REPO = Path(__file__).resolve().parents[2]
COLLECTOR = REPO / "collector_config" / "otel-collector.yaml"
ROTEL_ENV = REPO / "collector_config" / "rotel.env"
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DEPLOYMENT_DOC = REPO / "docs" / "deployment.md"

ENV_PLACEHOLDER = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")
COMPOSE_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])[^}]*)?\}")


def _documented(name: str) -> bool:
    return f"`{name}`" in DEPLOYMENT_DOC.read_text()


# -- otel-collector.yaml ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def otelcol() -> dict:
    return yaml.safe_load(COLLECTOR.read_text())


def test_every_pipeline_references_defined_components(otelcol):
    service = otelcol["service"]
    assert service["pipelines"], "no pipelines"
    for name, pipeline in service["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in (otelcol.get(kind) or {}), f"pipeline {name}: {kind[:-1]} {component} is not defined"
        assert pipeline.get("receivers") and pipeline.get("exporters"), f"pipeline {name} is incomplete"
    for ext in service.get("extensions", []):
        assert ext in otelcol["extensions"], f"extension {ext} is not defined"
    for ext in otelcol.get("extensions", {}):
        assert ext in service.get("extensions", []), f"extension {ext} is defined but never enabled"
    # Every defined component is used somewhere (a typo in a pipeline would leave one orphaned).
    used = {(k, c) for p in service["pipelines"].values() for k in ("receivers", "processors", "exporters")
            for c in p.get(k, [])}
    for kind in ("receivers", "processors", "exporters"):
        for component in otelcol.get(kind, {}):
            assert (kind, component) in used, f"{kind[:-1]} {component} is defined but in no pipeline"


def test_traces_pipeline_is_outage_proof_and_leaves_the_schema_to_migrations(otelcol):
    traces = otelcol["service"]["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp"]
    assert set(otelcol["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    assert traces["processors"][0] == "memory_limiter", "memory_limiter must come first"
    # An in-memory batch processor acknowledges spans a collector crash then loses: batching is the
    # persistent queue's, after the spans are on disk.
    assert "batch" not in traces["processors"]
    exporter = otelcol["exporters"]["clickhouse"]
    assert traces["exporters"] == ["clickhouse"]
    assert exporter["create_schema"] is False
    assert "ttl" in exporter
    assert exporter["async_insert"] is False, "sync inserts keep retried batches deduplicated"
    assert exporter["retry_on_failure"]["enabled"] is True
    queue = exporter["sending_queue"]
    assert queue["enabled"] is True and queue["storage"] in otelcol["extensions"]
    assert queue["storage"].split("/")[0] == "file_storage"
    assert queue["batch"]["flush_timeout"] and queue["sizer"] == "items"
    assert otelcol["extensions"][queue["storage"]]["fsync"] is True
    assert "health_check" in otelcol["service"]["extensions"]
    for key in ("endpoint", "username", "password", "database"):
        assert ENV_PLACEHOLDER.search(str(exporter[key])), f"exporter {key} must come from the environment"


def test_every_collector_env_placeholder_is_documented_and_given_by_compose():
    compose = yaml.safe_load(COMPOSE.read_text())
    given = compose["services"]["otel-collector"]["environment"]
    names = {m.group(1): m.group(2) for m in ENV_PLACEHOLDER.finditer(COLLECTOR.read_text())}
    assert names, "no placeholders found: the parser is wrong"
    for name, default in names.items():
        assert _documented(name), f"{name} is not documented in docs/deployment.md"
        assert default or name in given, f"{name} has no default and compose does not set it for the collector"


# -- rotel.env -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rotel_flags() -> set[str]:
    help_text = subprocess.run([collectors.rotel_binary(), "start", "--help"], capture_output=True, text=True,
                               timeout=30).stdout
    return set(re.findall(r"\[env: ([A-Z0-9_]+)=", help_text))


def test_rotel_settings_are_rotel_flags_and_swarmlens_settings(rotel_flags):
    pairs = collectors.read_settings(ROTEL_ENV)
    assert len(rotel_flags) > 50, "could not read rotel-agent's flags"
    for name, _ in pairs:
        assert name in rotel_flags, f"{name} is not a rotel-agent setting"
    settings = set(config_mod.setting_names())
    for name in collectors.placeholders(ROTEL_ENV):
        assert name in settings, f"${{{name}}} is not a swarmlens setting (README table)"
    names = dict(pairs)
    assert names["ROTEL_EXPORTER"] == "clickhouse"
    assert names["ROTEL_CLICKHOUSE_EXPORTER_ASYNC_INSERT"] == "false"


def test_up_expands_rotel_env_from_the_config(tmp_path):
    cfg = config_mod.load({"SWARMLENS_CLICKHOUSE_URL": "http://127.0.0.1:9", "SWARMLENS_DATA_DIR": str(tmp_path)},
                          environ={})
    rotel = collectors.Rotel.from_config(cfg, SWARMLENS_OTLP_HTTP_PORT=14318)
    env = rotel.env
    assert env["ROTEL_OTLP_HTTP_ENDPOINT"] == "127.0.0.1:14318"
    assert env["ROTEL_OTLP_GRPC_ENDPOINT"] == "127.0.0.1:4317"
    assert env["ROTEL_CLICKHOUSE_EXPORTER_ENDPOINT"] == "http://127.0.0.1:9"
    assert env["ROTEL_CLICKHOUSE_EXPORTER_DATABASE"] == "otel"
    assert "ROTEL_CLICKHOUSE_EXPORTER_PASSWORD" not in env, "an empty password is left to rotel's default"
    assert env["ROTEL_PID_FILE"].startswith(str(tmp_path))
    assert rotel.otlp_http_url == "http://127.0.0.1:14318"
    with_password = collectors.Rotel.from_config(dict(cfg, SWARMLENS_CLICKHOUSE_PASSWORD="s3cret")).env
    assert with_password["ROTEL_CLICKHOUSE_EXPORTER_PASSWORD"] == "s3cret"


def test_rotel_env_errors_are_clear(tmp_path):
    bad = tmp_path / "rotel.env"
    bad.write_text("ROTEL_EXPORTER=clickhouse\nnot a setting\n")
    with pytest.raises(collectors.CollectorError, match=r"rotel.env:2: expected NAME=value"):
        collectors.read_settings(bad)
    bad.write_text("ROTEL_CLICKHOUSE_EXPORTER_ENDPOINT=${SWARMLENS_NO_SUCH}\n")
    with pytest.raises(collectors.CollectorError, match="SWARMLENS_NO_SUCH"):
        collectors.Rotel.from_config(config_mod.load(environ={}), settings=bad)


# -- docker-compose.yml and Dockerfile -------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_images_are_pinned(compose):
    for name, svc in compose["services"].items():
        image = svc.get("image")
        assert image or svc.get("build"), f"{name} has neither image nor build"
        if image:
            repo, sep, tag = image.rpartition(":")
            assert sep and "/" not in tag and tag not in ("latest", ""), f"{name}: image {image} is not pinned"
            assert re.match(r"^\d+(\.\d+)+", tag), f"{name}: image {image} is not pinned to a version"
    images = {svc.get("image", "").split(":")[0] for svc in compose["services"].values()}
    assert {"clickhouse/clickhouse-server", "otel/opentelemetry-collector-contrib"} <= images


def test_compose_services_have_healthchecks(compose):
    for name, svc in compose["services"].items():
        if svc.get("restart") == "no":
            continue  # one-shot
        assert svc.get("healthcheck") or svc.get("x-healthcheck"), f"{name} has no healthcheck"
        if svc.get("healthcheck"):
            assert svc["healthcheck"]["test"], name
    # The collector's note must name the extension that really is configured.
    assert "13133" in compose["services"]["otel-collector"]["x-healthcheck"]
    assert "13133" in yaml.safe_load(COLLECTOR.read_text())["extensions"]["health_check"]["endpoint"]


def test_compose_volumes_are_declared_and_mounted_files_exist(compose):
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, svc in compose["services"].items():
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if source.startswith((".", "/")):
                assert (REPO / source).resolve().exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in declared, f"{name} uses volume {source}, which is not declared"
                used.add(source)
    assert declared == used, f"declared but unused volumes: {declared - used}"
    assert any(v.startswith("clickhouse-data:") for v in compose["services"]["clickhouse"]["volumes"])
    collector_vols = compose["services"]["otel-collector"]["volumes"]
    assert any(v.startswith("./collector_config:") for v in collector_vols)
    storage = next(v for v in collector_vols if v.startswith("otelcol-storage:"))
    assert storage.split(":")[1] == compose["services"]["otel-collector"]["environment"]["OTELCOL_STORAGE_DIR"]
    config_arg = next(a for a in compose["services"]["otel-collector"]["command"] if a.startswith("--config="))
    assert Path(config_arg.split("=", 1)[1]).name == COLLECTOR.name


def test_compose_variables_are_documented(compose):
    text = COMPOSE.read_text()
    names = {m.group(1) for m in COMPOSE_VAR.finditer(text)}
    assert "CLICKHOUSE_PASSWORD" in names
    for name in names:
        assert _documented(name), f"{name} is used in docker-compose.yml but not documented in docs/deployment.md"


def test_nothing_listens_publicly_without_a_password(compose):
    text = COMPOSE.read_text()
    # The ClickHouse password is required, never defaulted.
    for m in re.finditer(r"\$\{CLICKHOUSE_PASSWORD([^}]*)\}", text):
        assert m.group(1).startswith(":?"), "CLICKHOUSE_PASSWORD must be required (${CLICKHOUSE_PASSWORD:?...})"
    assert "ports" not in compose["services"]["clickhouse"], "ClickHouse must not be published"
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("${SWARMLENS_BIND:-127.0.0.1}:"), f"{name} publishes {port} beyond loopback"
    ch_env = compose["services"]["clickhouse"]["environment"]
    assert ch_env["CLICKHOUSE_USER"] and ch_env["CLICKHOUSE_PASSWORD"]


def test_reporter_migrates_then_serves_with_gunicorn(compose):
    reporter = compose["services"]["reporter"]
    assert reporter["build"] == "."
    docker = DOCKERFILE.read_text()
    base = re.search(r"^FROM\s+(\S+)", docker, re.M).group(1)
    assert re.search(r":\d+\.\d+", base), f"Dockerfile base image {base} is not pinned"
    cmd = re.search(r"^CMD\s+(.+)$", docker, re.M).group(1)
    assert cmd.index("swarmlens db migrate") < cmd.index("gunicorn"), "migrations must run before serving"
    assert "swarmlens.app:create_app()" in cmd
    assert "HEALTHCHECK" in docker
    assert reporter["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    assert compose["services"]["otel-collector"]["depends_on"]["reporter"]["condition"] == "service_healthy"
    demo = compose["services"]["demo"]
    assert demo["profiles"] == ["demo"] and "demo" in demo["command"]
