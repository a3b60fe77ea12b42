#!/usr/bin/env bash
# Sourced by test.sh: make sure the Redis store's tests have a server to talk to.
#
# The tests use $PQLSDK_TEST_REDIS_URL (default redis://127.0.0.1:6379/15) and
# skip without a server (fail under CI=true). When nothing answers there and
# redis-server is installed, start a throwaway one on a free port of 127.0.0.1
# (no persistence, its own temporary folder), point the tests and the bench's
# stores case at it, and stop it when the sourcing shell exits.
# $REDIS_SERVER picks the binary; $VENV_PYTHON the Python with redis-py.

venv_python="${VENV_PYTHON:-.venv/bin/python}"
redis_server="${REDIS_SERVER:-redis-server}"

redis_answers() {  # redis_answers URL: does a server answer PING there?
    "$venv_python" - "$1" <<'PY' 2>/dev/null
import sys

import redis

try:
    redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1, socket_timeout=1).ping()
except redis.RedisError:
    sys.exit(1)
PY
}

stop_throwaway_redis() {
    if [ -n "${throwaway_redis_pid:-}" ]; then
        kill "$throwaway_redis_pid" 2>/dev/null || true
        wait "$throwaway_redis_pid" 2>/dev/null || true
        throwaway_redis_pid=""
    fi
    if [ -n "${throwaway_redis_dir:-}" ]; then
        rm -rf "$throwaway_redis_dir"
    fi
}

test_redis_url="${PQLSDK_TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"
if redis_answers "$test_redis_url"; then
    echo "== Redis at $test_redis_url"
elif ! command -v "$redis_server" >/dev/null 2>&1; then
    echo "== no Redis at $test_redis_url and no $redis_server to start one:" \
        "the Redis store's tests skip (under CI=true they fail)"
else
    throwaway_redis_port="$("$venv_python" -c '
import socket
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    print(probe.getsockname()[1])')"
    throwaway_redis_dir="$(mktemp -d)"
    "$redis_server" --port "$throwaway_redis_port" --bind 127.0.0.1 --save '' \
        --appendonly no --dir "$throwaway_redis_dir" >"$throwaway_redis_dir/log" 2>&1 &
    throwaway_redis_pid=$!
    trap stop_throwaway_redis EXIT
    throwaway_redis_url="redis://127.0.0.1:$throwaway_redis_port/15"
    for _ in $(seq 100); do
        redis_answers "$throwaway_redis_url" && break
        sleep 0.1
    done
    if redis_answers "$throwaway_redis_url"; then
        export PQLSDK_TEST_REDIS_URL="$throwaway_redis_url"
        export PQLSDK_BENCH_REDIS_URL="${PQLSDK_BENCH_REDIS_URL:-$throwaway_redis_url}"
        echo "== no Redis at $test_redis_url: started a throwaway redis-server" \
            "at $throwaway_redis_url (pid $throwaway_redis_pid), stopped on exit"
    else
        echo "== the throwaway redis-server did not answer; the Redis tests skip:" >&2
        cat "$throwaway_redis_dir/log" >&2
        stop_throwaway_redis
    fi
fi
