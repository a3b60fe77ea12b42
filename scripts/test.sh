#!/usr/bin/env bash
# Set up (virtual env, install with the pinned dev tools) and run every check:
# ruff (lint and format), mypy --strict on src/, pytest with branch coverage.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh dev
echo "== ruff"
.venv/bin/ruff check src tests bench examples
.venv/bin/ruff format --check src tests bench examples
echo "== mypy --strict src/"
.venv/bin/mypy
echo "== pytest (branch coverage of src/)"
rm -f .coverage .coverage.*
.venv/bin/python -m pytest --cov=pqlsdk --cov-branch --cov-report=term-missing:skip-covered "$@"
