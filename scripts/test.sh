#!/usr/bin/env bash
# Set up (virtual env, install with the pinned dev tools) and run every check:
# ruff (lint and format), mypy --strict on src/, tests/ and bench/, pytest with
# branch coverage.
# The full suite also uses Redis (127.0.0.1:6379; a throwaway redis-server is
# started when none answers) and PostgreSQL (127.0.0.1:5432); see README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh dev
# The feed's browser test drives Debian's Chromium; install it where we can.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing chromium for the browser test"
    apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null
fi
# Redis on 127.0.0.1:6379 for the Redis store's tests, or a throwaway server.
source scripts/test-redis.sh
echo "== ruff"
.venv/bin/ruff check src tests bench examples docs/snippets
.venv/bin/ruff format --check src tests bench examples docs/snippets
echo "== mypy --strict src/ tests/ bench/ (the files pyproject.toml names)"
.venv/bin/mypy
echo "== pytest -m \"not spark\" (branch coverage of src/), on two workers"
rm -f .coverage .coverage.*
# Two steps: the suite without Spark on two workers (pytest-xdist: most tests wait
# on child processes, servers and sockets, so one worker leaves the second core
# idle; worksteal keeps the long tests from ending last), then the Spark tests
# (one JVM, one SparkSession: tests/test_warehouse_spark.py), added to the same
# coverage data. Only the second checks coverage's fail_under (100, pyproject.toml),
# on both steps' lines together.
.venv/bin/python -m pytest -m "not spark" -n 2 --dist worksteal \
    --cov=pqlsdk --cov-branch --cov-report= --cov-fail-under=0 "$@"
echo "== pytest -m spark (Apache Spark in local mode; coverage of both steps)"
.venv/bin/python -m pytest -m spark --cov=pqlsdk --cov-branch --cov-append \
    --cov-report=term-missing:skip-covered "$@"
