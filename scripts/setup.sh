#!/usr/bin/env bash
# Creates .venv and installs both distributions of this repository, editable, at the versions in
# constraints.txt: the instrumentation (instrumentation/) and swarmlens with every extra (demo, test,
# bench, agents: what the tests and `swarmlens up --demo` need).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
echo "==> installing opentelemetry-instrumentation-openai-swarm and swarmlens (pinned by constraints.txt)"
# tests/support: swarmlens_testing, the helpers tests/ and bench/ share (test-only, not in the wheel)
.venv/bin/python -m pip install --disable-pip-version-check -q --progress-bar off \
    -c constraints.txt -e ./instrumentation -e '.[all]' -e ./tests/support 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c "import swarmlens, swarmlens_testing, chdb, clickhouse_connect, swarm" \
    || { echo "setup failed: swarmlens did not import" >&2; exit 1; }
# mcp-clickhouse, the official MCP server, for the test that an analyst uses it (its own venv: it
# needs newer clickhouse-connect and mcp releases than swarmlens pins)
if [ ! -x .venv-mcp/bin/mcp-clickhouse ]; then
    echo "==> installing mcp-clickhouse into .venv-mcp (pinned by scripts/mcp-clickhouse-constraints.txt)"
    "$PY" -m venv .venv-mcp
    .venv-mcp/bin/python -m pip install --disable-pip-version-check -q --progress-bar off \
        -r scripts/mcp-clickhouse-constraints.txt 2>&1 | grep -v '^WARNING: Location' || true
fi
echo "==> ready: .venv/bin/swarmlens"
