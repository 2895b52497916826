#!/usr/bin/env bash
# tests/abuse/run.sh BUILD_DIR [COMMAND [ARGS...]] -- `make test-abuse`: every attack of
# docs/SECURITY.md's abuse list against one real server, each checked for its documented answer while a
# well-behaved client polls beside it and its latency is measured (tests/abuse/abuse.py).
#
# Starts a throwaway redis-server and PostgreSQL on free loopback ports in a temporary directory,
# two API servers (the second with MAX_CONNECTIONS_PER_IP set, for one attack) and one worker,
# and runs the driver (or COMMAND, for debugging, with the same environment: ABUSE_PORT,
# ABUSE_PERIP_PORT, ABUSE_REDIS_PORT, ADMIN_TOKEN, JWT_SECRET, ...). The table goes to
# stdout and tests/artifacts/abuse.md. Never skips: anything missing is installed or fails the
# run. Exit status: the driver's (1 if setup failed). Everything started here is stopped by the
# trap; on failure the server's and worker's logs are printed and the directory kept.
# shellcheck source-path=SCRIPTDIR/../..
# Functions below run from traps or through start_with_retry, which shellcheck cannot see.
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

# BUILD/freeport is optional: gk_free_port picks ports without it.
for bin in gatekeeper gatekeeper-worker gk-bench-tokens; do
    if [ ! -x "$BUILD/$bin" ]; then
        say "$BUILD/$bin not found; build it with: make BUILD=$BUILD all $BUILD/gk-bench-tokens"
        exit 1
    fi
done
# Redis, PostgreSQL and curl come with the base set; wrk (the measuring client) with --abuse.
"$ROOT/scripts/install-deps" --abuse
PATH=$(gk_pg_bindir):$PATH

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

# World-traversable: PostgreSQL runs as the postgres user when we are root.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gk-abuse.XXXXXX")
chmod 755 "$TMP"
PIDS=()
declare -A NAMES # pid -> server | worker

cleanup() {
    local rc=$1 p f st
    trap - EXIT INT TERM
    set +e
    # The server and worker get SIGTERM and must exit 0 within SHUTDOWN_TIMEOUT: a sanitizer build
    # reports leaks and errors that way (its report is in their log). Anything still alive after
    # that is killed, so no run leaves a process behind.
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
    # The driver and its wrk, should they outlive us (a killed driver leaves its wrk behind):
    # everything started after the export below carries ABUSE_TMP=$TMP in its environment.
    for f in /proc/[0-9]*/environ; do
        p=${f#/proc/}
        p=${p%/environ}
        if [ "$p" != "$$" ] && grep -qzxF "ABUSE_TMP=$TMP" "$f" 2>/dev/null; then
            kill -KILL "$p" 2>/dev/null
        fi
    done
    gk_pg_stop "$TMP/pg" >/dev/null 2>&1
    gk_redis_stop "$TMP/redis" >/dev/null 2>&1
    if [ "$rc" -eq 0 ]; then
        rm -rf "$TMP"
    else
        for f in "$TMP/server.log" "$TMP/server-perip.log" "$TMP/worker.log"; do
            [ -f "$f" ] || continue
            echo "==> $f (last 30 lines) <==" >&2
            tail -n 30 "$f" >&2
        done
        say "FAILED (exit $rc); logs are kept in $TMP"
    fi
    exit "$rc"
}
trap 'cleanup $?' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free port can be taken between gk_free_port and the bind: retry with a new one.
start_with_retry() { # what command... (the command gets the port as its last argument)
    local what=$1 i port
    shift
    for i in 1 2 3 4 5; do
        port=$(gk_free_port) || continue
        if "$@" "$port"; then
            echo "$port"
            return 0
        fi
        say "$what did not start on port $port (attempt $i of 5)"
    done
    return 1
}
redis_on() { gk_redis_start "$TMP/redis" "$1" --save '' --appendonly no >/dev/null; }
pg_on() { gk_pg_start "$TMP/pg" "$1" off >/dev/null; }

REDIS_PORT=$(start_with_retry redis-server redis_on)
PG_PORT=$(start_with_retry PostgreSQL pg_on)
DB_URL="postgresql://gatekeeper@127.0.0.1:$PG_PORT/gatekeeper"
gk_apply_sql "$DB_URL"

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
# Not through start_with_retry: its $(...) subshell would lose SERVER and PIDS.
start_server() { # log name [VAR=value...]: sets SERVER and SERVER_PORT, or exits
    local i port
    SERVER_PORT=""
    for i in 1 2 3 4 5; do
        port=$(gk_free_port)
        if server_on "$port" "$@"; then
            SERVER_PORT=$port
            return 0
        fi
        say "$2 did not start on port $port (attempt $i of 5); end of its log:"
        tail -n 3 "$1" >&2 || true
    done
    exit 1
}
start_server "$TMP/server.log" server
API_PORT=$SERVER_PORT
MAIN_SERVER=$SERVER
# A second server, identical but for MAX_CONNECTIONS_PER_IP (off by default, since behind a proxy
# every visitor shares one address): the idle-connections attack runs against it once more.
PERIP_LIMIT=200
start_server "$TMP/server-perip.log" "server (MAX_CONNECTIONS_PER_IP=$PERIP_LIMIT)" \
    MAX_CONNECTIONS_PER_IP=$PERIP_LIMIT
PERIP_PORT=$SERVER_PORT
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

export ABUSE_PORT=$API_PORT ABUSE_REDIS_PORT=$REDIS_PORT ABUSE_TMP=$TMP ABUSE_SERVER_PID=$SERVER
export ABUSE_PERIP_PORT=$PERIP_PORT ABUSE_PERIP_PID=$PERIP_SERVER ABUSE_PERIP_LIMIT=$PERIP_LIMIT
export ABUSE_GOOD_TOKENS=$TMP/good.tokens ABUSE_GOOD_LUA=$TMP/good.lua
export ABUSE_REPORT=$ROOT/tests/artifacts/abuse.md
say "server 127.0.0.1:$API_PORT (pid $SERVER), with MAX_CONNECTIONS_PER_IP=$PERIP_LIMIT 127.0.0.1:$PERIP_PORT" \
    "(pid $PERIP_SERVER), redis $REDIS_PORT, postgres $PG_PORT, logs in $TMP"
if [ $# -eq 0 ]; then set -- python3 "$ROOT/tests/abuse/abuse.py"; fi
cd "$ROOT"
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
