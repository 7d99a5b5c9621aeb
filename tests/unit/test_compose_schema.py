"""docker-compose.yml is a valid Compose file: it is checked against the compose specification's own
JSON schema (vendored in data/compose-spec, with its source and licence), as `docker compose config`
would check it, without a container engine."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).resolve().parent / "data" / "compose-spec" / "compose-spec.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def test_docker_compose_follows_the_compose_specification(validator, compose):
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)
    # the services the deployment docs describe
    assert {"clickhouse", "reporter", "otel-collector", "demo"} <= set(compose["services"])


def test_the_schema_catches_what_compose_would_refuse(validator, compose):
    broken = copy.deepcopy(compose)
    broken["services"]["reporter"]["restart_policy"] = "always"  # not a service key
    broken["services"]["clickhouse"]["ports"] = {"8123": "8123"}  # a list, not a mapping
    paths = {"/".join(map(str, e.absolute_path)) for e in validator.iter_errors(broken)}
    assert "services/reporter" in paths and "services/clickhouse/ports" in paths
