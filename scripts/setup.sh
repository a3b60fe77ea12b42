#!/usr/bin/env bash
# Shared by run.sh and test.sh: make .venv with pqlsdk installed (editable).
# Usage: source scripts/setup.sh [dev]   -- "dev" adds the pinned check tools.
# Both install the collector extra: the main job runs a collector.
set -euo pipefail
python="${PYTHON:-python3}"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "pqlsdk needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
    exit 1
}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
# pip >= 25.1 reads [dependency-groups] (PEP 735).
.venv/bin/python -m pip install --quiet --upgrade "pip>=25.1" 2>&1 | grep -v '^WARNING: Location' || true
if [ "${1:-}" = "dev" ]; then
    .venv/bin/python -m pip install --quiet --editable '.[collector]' --group dev 2>&1 | grep -v '^WARNING: Location' || true
else
    .venv/bin/python -m pip install --quiet --editable '.[collector]' 2>&1 | grep -v '^WARNING: Location' || true
fi
.venv/bin/python -c 'import pqlsdk, uvicorn, starlette' || { echo "installing pqlsdk failed" >&2; exit 1; }
