#!/usr/bin/env bash
# run.sh -- the FAULTS suite: `make test-faults` runs tests/faults/run.sh BUILD_DIR.
#
# Crashes and outages during a flash crowd, on loopback, with real servers: API servers and
# workers killed with SIGKILL again and again; Redis (AOF everysec, as `make run` and
# docker-compose configure it) killed, killed with its AOF cut back by a second (a power loss),
# and shut down, under load; PostgreSQL stopped under load. The load and every check are in
# driver.py (Python 3 standard library only); this script provides the services and cleans up.
# docs/FAILURES.md explains what each phase shows and what it measured. About 90 s.
#
# Starts redis-server (AOF everysec) and PostgreSQL on free 127.0.0.1 ports in a temporary
# directory, writes a ctl helper the driver uses to kill, shut down and restart them, runs the
# driver, and in a trap stops every process it or the driver started. Never skips: a missing
# binary or a server that cannot start fails the run. Exit status: the driver's (1 when an
# invariant was violated), 1 if setup failed. On failure the temporary directory is kept and
# the tails of its logs are printed.
# Functions below run from traps, which shellcheck cannot see.
# shellcheck disable=SC2317
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/../.." && pwd -P)
BUILD_DIR=$(cd "$1" && pwd -P)
# shellcheck source=scripts/services.sh
. "$ROOT/scripts/services.sh"

say() {
    echo "faults: $*" >&2
}

# The same script `make run` uses: a missing redis-server or initdb is installed, not skipped.
"$ROOT/scripts/install-deps"
for b in gatekeeper gatekeeper-worker gk-bench-tokens; do
    if [ ! -x "$BUILD_DIR/$b" ]; then
        say "$BUILD_DIR/$b not found; build it with: make BUILD=$1 all $1/gk-bench-tokens"
        exit 1
    fi
done
PATH=$(gk_pg_bindir):$PATH

# World-traversable: PostgreSQL runs as the postgres user when we are root.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gk-faults.XXXXXX")
chmod 755 "$TMP"

# Every process started from here on carries GK_FAULTS_TMP in its environment (the driver, the
# servers it starts and restarts, redis-server), so cleanup finds them all, also after the driver
# itself died. This shell and its subshells do not: their environment was set at exec.
DRIVER=""
cleanup() {
    local rc=$1
    trap - EXIT INT TERM
    set +e
    # The scan's own grep and find must not carry the marker they look for.
    unset GK_FAULTS_TMP
    # Interrupted: the driver stops the servers and workers it started on SIGTERM.
    if [ -n "$DRIVER" ] && gk_alive "$DRIVER"; then
        kill -TERM "$DRIVER" 2>/dev/null
        gk_wait_gone 10 "$DRIVER" || kill -KILL "$DRIVER" 2>/dev/null
    fi
    gk_pg_stop "$TMP/pg"
    gk_redis_stop "$TMP/redis"
    gk_stop_marked "GK_FAULTS_TMP=$TMP" "$TMP" cwd
    if [ "$rc" -eq 0 ]; then
        rm -rf "$TMP"
    else
        gk_show_logs "$TMP" 20
        say "FAILED (exit $rc); logs are kept in $TMP"
    fi
    exit "$rc"
}
trap 'cleanup $?' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export GK_FAULTS_TMP=$TMP

# Ports below the ephemeral range (gk_free_port's fallback, used when BUILD is unset): a port
# that is restarted again and again must not be picked meanwhile as the source port of one of
# the many outgoing connections, nor let a reconnecting client connect to itself (Linux's TCP
# self-connect, possible when the port it dials is ephemeral and nothing listens there).
free_port() {
    BUILD="" gk_free_port
}

# Redis as `make run` and docker-compose configure it: AOF, fsync every second; no RDB
# snapshots, so a restart loads exactly what the AOF holds.
REDIS_ARGS=(--appendonly yes --appendfsync everysec --save '')
REDIS_PORT="" PG_PORT=""
for i in 1 2 3 4 5; do
    port=$(free_port)
    if gk_redis_start "$TMP/redis" "$port" "${REDIS_ARGS[@]}"; then
        REDIS_PORT=$port
        disown -a # the driver kills it on purpose: no "Killed" job notice from this shell
        break
    fi
    say "redis-server did not start on port $port (attempt $i of 5)"
done
for i in 1 2 3 4 5; do
    port=$(free_port)
    # fsync off: PostgreSQL's own durability is not what these tests measure.
    if gk_pg_start "$TMP/pg" "$port" off; then
        PG_PORT=$port
        break
    fi
    say "PostgreSQL did not start on port $port (attempt $i of 5)"
done
if [ -z "$REDIS_PORT" ] || [ -z "$PG_PORT" ]; then
    say "could not start redis-server and PostgreSQL; see $TMP/redis/redis.log, $TMP/pg/postgres.log"
    exit 1
fi
DB_URL="postgresql://gatekeeper@127.0.0.1:$PG_PORT/gatekeeper"
gk_apply_sql "$DB_URL"

# The driver's handle on the services: $TMP/ctl VERB, exit 0 once done.
#   redis-kill      SIGKILL redis-server (a crash: no AOF fsync, no goodbye)
#   redis-shutdown  SHUTDOWN, as an operator restarts it (the AOF is fsynced first)
#   redis-start     start it again on the same port and directory, with the same arguments
#   pg-stop, pg-start
{
    cat <<'EOF'
#!/usr/bin/env bash
# Generated by tests/faults/run.sh for one run. Usage: $0 VERB (see run.sh)
set -euo pipefail
# Close descriptors inherited from the driver, so a restarted server holds none of its pipes.
for fd in /proc/$$/fd/*; do
    n=${fd##*/}
    if [ "$n" -gt 2 ] && [ "$n" -lt 255 ]; then eval "exec $n>&-"; fi
done
EOF
    printf '. %q\n' "$ROOT/scripts/services.sh"
    printf 'R=%q P=%q RP=%q PP=%q\n' "$TMP/redis" "$TMP/pg" "$REDIS_PORT" "$PG_PORT"
    printf 'ARGS=(%s)\n' "$(printf '%q ' "${REDIS_ARGS[@]}")"
    cat <<'EOF'
case "${1:-}" in
redis-kill)
    pid=$(cat "$R/redis.pid")
    kill -KILL "$pid"
    gk_wait_gone 10 "$pid"
    ;;
redis-shutdown)
    pid=$(cat "$R/redis.pid")
    redis-cli -h 127.0.0.1 -p "$RP" shutdown >/dev/null 2>&1 || true
    gk_wait_gone 30 "$pid"
    ;;
redis-start) gk_redis_start "$R" "$RP" "${ARGS[@]}" ;;
pg-stop) gk_pg_stop "$P" ;;
pg-start) gk_pg_start "$P" "$PP" off ;;
*)
    echo "usage: $0 redis-kill|redis-shutdown|redis-start|pg-stop|pg-start" >&2
    exit 2
    ;;
esac
EOF
} >"$TMP/ctl"
chmod 755 "$TMP/ctl"

say "redis 127.0.0.1:$REDIS_PORT (AOF everysec), postgres 127.0.0.1:$PG_PORT, logs in $TMP"
start=$(date +%s)
rc=0
# In the background, so that a signal to this script runs the trap at once (bash runs traps
# only between commands, and `wait` is cut short by a signal).
GKF_BUILD=$BUILD_DIR GKF_TMP=$TMP GKF_CTL=$TMP/ctl GKF_REDIS_PORT=$REDIS_PORT GKF_DB=$DB_URL \
    python3 "$ROOT/tests/faults/driver.py" &
DRIVER=$!
wait "$DRIVER" || rc=$?
DRIVER=""
say "wall time $(($(date +%s) - start)) s (driver), exit $rc"
exit "$rc"
