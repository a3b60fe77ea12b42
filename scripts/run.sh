#!/usr/bin/env bash
# Set up (virtual env, install) and run pqlsdk's main job on the embedded defaults:
# a collector on a temporary SQLite file, a simulated cohort, the ranked PQL feed.
# Pass --serve to keep the feed up for a browser.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec .venv/bin/pqlsdk demo "$@"
