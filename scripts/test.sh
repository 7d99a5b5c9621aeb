#!/usr/bin/env bash
# Sets up everything the suite needs on a fresh machine, then runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v chromium >/dev/null 2>&1; then
    echo "==> installing Debian's chromium for the browser tests"
    if [ "$(id -u)" = 0 ]; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
            || echo "warning: chromium could not be installed; browser tests will be skipped" >&2
    fi
fi
export TZ=UTC
exec .venv/bin/python -m pytest "$@"
