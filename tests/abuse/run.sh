#!/usr/bin/env bash
# tests/abuse/run.sh BUILD_DIR [COMMAND [ARGS...]] -- `make test-abuse`: every attack of
# docs/SECURITY.md against one real server, each checked for its documented answer while a
# well-behaved client polls beside it and its latency is measured (tests/abuse/abuse.py and the
# modules it imports, helpers.py and attacks.py).
#
# Runs itself again inside scripts/with-services, which starts a throwaway redis-server and
# PostgreSQL on free loopback ports in a temporary directory; there it starts two API servers
# (the second with MAX_CONNECTIONS_PER_IP set, for one attack) and one worker, and runs the
# driver (or COMMAND, for debugging, with the same environment: ABUSE_PORT, ABUSE_PERIP_PORT,
# ABUSE_REDIS_PORT, ADMIN_TOKEN, JWT_SECRET, ...). The table goes to stdout and
# tests/artifacts/abuse.md. Never skips: anything missing is installed or fails the run. Exit
# status: the driver's (1 if setup failed). The servers and the worker are stopped by the trap
# here, everything else by scripts/with-services; on failure the logs' tails are printed and the
# directory kept.
# shellcheck source-path=SCRIPTDIR/../..
# Functions below run from traps or through gk_start_retry, which shellcheck cannot see.
# shellcheck disable=SC2317
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 BUILD_DIR [COMMAND [ARGS...]]" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/../.." && pwd -P)
BUILD=$(cd "$1" && pwd -P)
shift
# shellcheck source=scripts/services.sh
. "$ROOT/scripts/services.sh"

say() {
    echo "abuse: $*" >&2
}

if [ "${GK_SERVICES_PID:-}" != "$$" ]; then
    # BUILD/freeport is optional: gk_free_port picks ports without it.
    for bin in gatekeeper gatekeeper-worker gk-bench-tokens; do
        if [ ! -x "$BUILD/$bin" ]; then
            say "$BUILD/$bin not found; build it with: make BUILD=$BUILD all $BUILD/gk-bench-tokens"
            exit 1
        fi
    done
    # Redis, PostgreSQL and curl come with the base set; wrk (the measuring client) with --abuse.
    "$ROOT/scripts/install-deps" --abuse

    # 10,000 idle connections need 10,000 descriptors in the server and as many in the attacker.
    # Raise the soft limit to 21,000 (or the hard limit, if lower); fail now, clearly, if too small.
    NOFILE=$(ulimit -Hn)
    if [ "$NOFILE" != unlimited ] && [ "$NOFILE" -lt 21000 ]; then
        ulimit -Sn "$NOFILE"
    else
        ulimit -Sn 21000
    fi
    if [ "$(ulimit -Sn)" -lt 10500 ]; then
        say "the open-file limit is $(ulimit -Sn) (hard $(ulimit -Hn)); 10,000 idle connections need about 10,500"
        exit 1
    fi
    cd "$ROOT"
    exec "$ROOT/scripts/with-services" --redis --pg --build "$BUILD" --name abuse --keep-on-failure \
        -- "$ROOT/tests/abuse/run.sh" "$BUILD" "$@"
fi

TMP=$GK_TEST_TMP
REDIS_PORT=$GK_TEST_REDIS_PORT
DB_URL=$GK_TEST_DATABASE_URL
PIDS=()
declare -A NAMES # pid -> server | worker

# The server and worker get SIGTERM and must exit 0 within SHUTDOWN_TIMEOUT: a sanitizer build
# reports leaks and errors that way (its report is in their log). Anything still alive after that
# is killed; scripts/with-services then stops what the driver left behind, Redis and PostgreSQL.
cleanup() {
    local rc=$1 p st
    trap - EXIT INT TERM
    set +e
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        if ! gk_wait_gone 5 "$p"; then kill -KILL "$p" 2>/dev/null; fi
        wait "$p" 2>/dev/null
        st=$?
        if [ "$st" -ne 0 ] && [ "$rc" -eq 0 ]; then
            say "the ${NAMES[$p]} (pid $p) exited with status $st after SIGTERM; see its log"
            rc=1
        fi
    done
    exit "$rc"
}
trap 'cleanup $?' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

secret() {
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
}
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" DATABASE_URL="$DB_URL"
export JWT_SECRET ADMIN_TOKEN
JWT_SECRET=$(secret)
ADMIN_TOKEN=$(secret)
# 127.0.0.9 plays a reverse proxy (the XFF attack's control); the attackers use other addresses
# of 127.0.0.0/8, so the well-behaved client on 127.0.0.1 has rate-limit budgets of its own.
# MAX_CONNECTIONS is the default; CONNECTION_TIMEOUT is shortened from 30 s so that waiting for
# it fits the time budget (the attacks scale with it).
export BIND=127.0.0.1 TRUSTED_PROXIES=127.0.0.9/32 MAX_CONNECTIONS=10000 CONNECTION_TIMEOUT=5 \
    HTTP_THREADS=2 SHUTDOWN_TIMEOUT=2 LOG_LEVEL=warn

# The server reports a port it cannot bind by exiting; wait for either that or an answer.
server_on() { # port log name [VAR=value...]: the server, with extra environment; sets SERVER
    local port=$1 log=$2 name=$3 n=100
    shift 3
    env PORT="$port" "$@" "$BUILD/gatekeeper" 2>>"$log" &
    SERVER=$!
    while [ "$n" -gt 0 ]; do
        if ! gk_alive "$SERVER"; then
            wait "$SERVER" 2>/dev/null || true
            say "end of $log:"
            tail -n 3 "$log" >&2 || true
            return 1
        fi
        if curl -fs -o /dev/null "http://127.0.0.1:$port/health?shallow"; then
            PIDS+=("$SERVER")
            NAMES[$SERVER]=$name
            return 0
        fi
        n=$((n - 1))
        sleep 0.1
    done
    kill -KILL "$SERVER" 2>/dev/null || true
    return 1
}
gk_start_retry server server_on "$TMP/server.log" server
API_PORT=$GK_PORT
MAIN_SERVER=$SERVER
# A second server, identical but for MAX_CONNECTIONS_PER_IP (off by default, since behind a proxy
# every visitor shares one address): the idle-connections attack runs against it once more.
PERIP_LIMIT=200
gk_start_retry "server (MAX_CONNECTIONS_PER_IP=$PERIP_LIMIT)" server_on "$TMP/server-perip.log" \
    "server (MAX_CONNECTIONS_PER_IP=$PERIP_LIMIT)" MAX_CONNECTIONS_PER_IP=$PERIP_LIMIT
PERIP_PORT=$GK_PORT
PERIP_SERVER=$SERVER
SERVER=$MAIN_SERVER
"$BUILD/gatekeeper-worker" 2>>"$TMP/worker.log" &
PIDS+=("$!")
NAMES[$!]=worker

# The well-behaved client's users: 1,000 waiting users u0..u999 of business "good" and their
# tokens (valid for an hour), put straight into Redis as bench/run.sh does.
redis-cli -p "$REDIS_PORT" EVAL "for i = 0, 999 do redis.call('ZADD', KEYS[1], i + 1, 'u' .. i) end
    redis.call('SET', KEYS[2], 1000)" 2 'gk:{good}:wait' 'gk:{good}:seq' >/dev/null
"$BUILD/gk-bench-tokens" good 1000 >"$TMP/good.tokens"
# wrk's end-of-run report line (bench's) plus the poll script with a pause between polls.
cat "$ROOT/bench/wrk/report.lua" "$ROOT/tests/abuse/good.lua" >"$TMP/good.lua"

export ABUSE_PORT=$API_PORT ABUSE_REDIS_PORT=$REDIS_PORT ABUSE_SERVER_PID=$SERVER
export ABUSE_PERIP_PORT=$PERIP_PORT ABUSE_PERIP_PID=$PERIP_SERVER ABUSE_PERIP_LIMIT=$PERIP_LIMIT
export ABUSE_GOOD_TOKENS=$TMP/good.tokens ABUSE_GOOD_LUA=$TMP/good.lua
export ABUSE_REPORT=$ROOT/tests/artifacts/abuse.md
say "server 127.0.0.1:$API_PORT (pid $SERVER), with MAX_CONNECTIONS_PER_IP=$PERIP_LIMIT 127.0.0.1:$PERIP_PORT" \
    "(pid $PERIP_SERVER), logs in $TMP"
if [ $# -eq 0 ]; then set -- python3 "$ROOT/tests/abuse/abuse.py"; fi
rc=0
"$@" || rc=$?
# A server that died under attack fails the run whatever the driver concluded.
for p in "$SERVER" "$PERIP_SERVER"; do
    if ! gk_alive "$p"; then
        say "the ${NAMES[$p]} (pid $p) is gone"
        rc=1
    fi
done
exit "$rc"
