#!/usr/bin/env bash
# run.sh -- integration test harness: `make test-integration` runs tests/integration/run.sh BUILD_DIR.
# Usage: run.sh BUILD_DIR [COMMAND [ARGS...]]   (default command: BUILD_DIR/it-tests; the browser
# tests, tests/e2e/run.sh, run theirs in the same setting)
#
# Starts a throwaway redis-server and PostgreSQL on free 127.0.0.1 ports in a temporary
# directory, applies sql/, runs the command with these variables and tears it all down:
#   GK_TEST_BUILD         absolute build directory (gatekeeper, gatekeeper-worker live there)
#   GK_TEST_REDIS_URL     redis://127.0.0.1:P/0            (also GK_TEST_REDIS_PORT=P)
#   GK_TEST_DATABASE_URL  postgresql://gatekeeper@127.0.0.1:Q/gatekeeper  (also GK_TEST_PG_CONNINFO)
#   GK_TEST_TMP           the temporary directory; tests put server logs (*.log) there
#   GK_TEST_PGCTL         executable: `stop` / `start` that PostgreSQL (same port, same data)
#   GK_TEST_REDISCTL      executable: `stop` / `start` that Redis (same port; data kept via dump.rdb)
# The ctl helpers exit 0 once the service is down / answering (also when it already was),
# 1 on failure, 2 on bad usage.
# Never skips: a server that cannot start fails the run. Exit status is the command's status
# (1 if setup failed). On failure the temporary directory is kept and its logs' tails printed.
# shellcheck source-path=SCRIPTDIR/../..
# Functions below run from traps, which shellcheck cannot see.
# shellcheck disable=SC2317
set -eu

if [ $# -lt 1 ]; then
    echo "usage: $0 BUILD_DIR [COMMAND [ARGS...]]" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/../.." && pwd -P)
BUILD=$(cd "$1" && pwd -P)
shift
if [ $# -eq 0 ]; then set -- "$BUILD/it-tests"; fi
# shellcheck source=scripts/services.sh
. "$ROOT/scripts/services.sh"

say() {
    echo "run.sh: $*" >&2
}

# The same script `make run` uses: a missing redis-server or initdb is installed, not skipped.
"$ROOT/scripts/install-deps"
if [ "$1" = "$BUILD/it-tests" ] && [ ! -x "$1" ]; then
    say "$1 not found; build it with: make $1"
    exit 1
fi
PGBIN=$(gk_pg_bindir)
PATH=$PGBIN:$PATH

# World-traversable: PostgreSQL runs as the postgres user when we are root.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gk-it.XXXXXX")
chmod 755 "$TMP"

# Processes left behind by the tests: those that inherited GK_TEST_TMP=$TMP (it-tests, a
# Redis or PostgreSQL restarted through the ctl helpers), and those with a file or working
# directory inside $TMP (a server started with its own environment still logs there).
leftover_pids() {
    local f pid
    {
        for f in /proc/[0-9]*/environ; do
            pid=${f#/proc/}
            pid=${pid%/environ}
            if grep -qzxF "GK_TEST_TMP=$TMP" "$f" 2>/dev/null; then echo "$pid"; fi
        done
        find /proc/[0-9]*/fd /proc/[0-9]*/cwd -maxdepth 1 \( -lname "$TMP" -o -lname "$TMP/*" \) \
            2>/dev/null | cut -d/ -f3
    } | sort -un | while read -r pid; do
        if [ "$pid" != "$$" ] && gk_alive "$pid"; then echo "$pid"; fi
    done
}

kill_leftovers() {
    local pid pids
    pids=$(leftover_pids | tr '\n' ' ')
    [ -n "$pids" ] || return 0
    say "stopping leftover processes: $pids"
    for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in $pids; do
        if ! gk_wait_gone 5 "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
}

cleanup() {
    local rc=$1 f
    trap - EXIT INT TERM
    set +e
    # Our own children must not carry the marker kill_leftovers looks for.
    unset GK_TEST_TMP
    gk_pg_stop "$TMP/pg"
    gk_redis_stop "$TMP/redis"
    kill_leftovers
    if [ "$rc" -eq 0 ]; then
        rm -rf "$TMP"
    else
        find "$TMP" -name '*.log' -type f | sort | while IFS= read -r f; do
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

# A free port can be taken between gk_free_port and the bind, so retry with a new one.
start_redis() {
    local i port
    for i in 1 2 3 4 5; do
        port=$(gk_free_port) || continue
        if gk_redis_start "$TMP/redis" "$port" --save '' --appendonly no; then
            REDIS_PORT=$port
            return 0
        fi
        say "redis-server did not start on port $port (attempt $i of 5)"
    done
    return 1
}

start_pg() {
    local i port
    for i in 1 2 3 4 5; do
        port=$(gk_free_port) || continue
        if gk_pg_start "$TMP/pg" "$port" off; then
            PG_PORT=$port
            return 0
        fi
        say "PostgreSQL did not start on port $port (attempt $i of 5)"
    done
    return 1
}

REDIS_PORT="" PG_PORT=""
if ! start_redis; then
    say "could not start redis-server; see $TMP/redis/redis.log"
    exit 1
fi
if ! start_pg; then
    say "could not start PostgreSQL; see $TMP/pg/postgres.log"
    exit 1
fi
DB_URL="postgresql://gatekeeper@127.0.0.1:$PG_PORT/gatekeeper"
gk_apply_sql "$DB_URL"

# write_ctl FILE START_COMMAND STOP_COMMAND: a helper the tests run to simulate an outage.
write_ctl() {
    {
        cat <<'EOF'
#!/usr/bin/env bash
# Generated by tests/integration/run.sh for one test run. Usage: $0 stop|start
set -eu
# Close descriptors inherited from the test process, so a restarted server holds none.
for fd in /proc/$$/fd/*; do
    n=${fd##*/}
    if [ "$n" -gt 2 ] && [ "$n" -lt 255 ]; then eval "exec $n>&-"; fi
done
EOF
        printf '. %q\n' "$ROOT/scripts/services.sh"
        echo "case \"\${1:-}\" in"
        echo "start) $2 ;;"
        echo "stop) $3 ;;"
        cat <<'EOF'
*)
    echo "usage: $0 stop|start" >&2
    exit 2
    ;;
esac
EOF
    } >"$1"
    chmod 755 "$1"
}
# start and stop are idempotent, so a test can make sure of either state.
write_ctl "$TMP/pgctl" \
    "$(printf 'gk_pg_running %q || gk_pg_start %q %q off' "$TMP/pg" "$TMP/pg" "$PG_PORT")" \
    "$(printf 'gk_pg_stop %q' "$TMP/pg")"
write_ctl "$TMP/redisctl" \
    "$(printf "gk_redis_running %q || gk_redis_start %q %q --save '' --appendonly no" \
        "$TMP/redis" "$TMP/redis" "$REDIS_PORT")" \
    "$(printf 'gk_redis_stop %q' "$TMP/redis")"

export PATH
export GK_TEST_BUILD="$BUILD"
export GK_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export GK_TEST_REDIS_PORT="$REDIS_PORT"
export GK_TEST_DATABASE_URL="$DB_URL"
export GK_TEST_PG_CONNINFO="$DB_URL"
export GK_TEST_TMP="$TMP"
export GK_TEST_PGCTL="$TMP/pgctl"
export GK_TEST_REDISCTL="$TMP/redisctl"

say "redis 127.0.0.1:$REDIS_PORT, postgres 127.0.0.1:$PG_PORT, logs in $TMP"
cd "$ROOT"
rc=0
"$@" || rc=$?
exit "$rc"
