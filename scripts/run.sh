#!/usr/bin/env bash
# Set up (virtual env, install) and run pqlsdk's main job on the embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec .venv/bin/pqlsdk demo "$@"
