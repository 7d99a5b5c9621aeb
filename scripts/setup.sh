#!/usr/bin/env bash
# Creates .venv and installs swarmlens with every extra, at the versions in constraints.txt.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
echo "==> installing swarmlens and its dependencies (pinned by constraints.txt)"
.venv/bin/python -m pip install --disable-pip-version-check -q --progress-bar off \
    -c constraints.txt -e '.[all]' 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c "import swarmlens, chdb, clickhouse_connect, swarm" \
    || { echo "setup failed: swarmlens did not import" >&2; exit 1; }
echo "==> ready: .venv/bin/swarmlens"
