# shellcheck shell=bash
# bench/lib.sh -- sourced by the bench scripts after scripts/services.sh.
# gk_bench_services FSYNC (on|off) ARGS...: runs the calling script again, with ARGS, inside
# scripts/with-services (a throwaway Redis and PostgreSQL with fsync FSYNC on free loopback
# ports in a temporary directory, stopped afterwards); there it sets TMP, RPORT and DB (the
# PostgreSQL URL, sql/ applied) and a trap that stops every process whose pid was added to PIDS.
# gk_bench_server BUILD starts the API server on them and sets APORT, API and SERVER.

PIDS=()
# Runs under set -e from the EXIT trap: a pid already gone must not turn into the exit status.
gk_bench_cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        if kill "$p" 2>/dev/null; then wait "$p" 2>/dev/null || true; fi
    done
}

gk_bench_services() {
    local fsync=() cluster=()
    if [ "$1" = on ]; then fsync=(--pg-fsync); fi
    # GK_BENCH_CLUSTER=1: a Redis Cluster too (GK_TEST_REDIS_CLUSTER_NODES), for bench/run.sh.
    if [ "${GK_BENCH_CLUSTER:-0}" = 1 ]; then cluster=(--redis-cluster); fi
    shift
    if [ "${GK_SERVICES_PID:-}" != "$$" ]; then
        exec "$ROOT/scripts/with-services" --redis "${cluster[@]}" --pg "${fsync[@]}" --build "$BUILD" --name bench \
            -- "$ROOT/bench/${0##*/}" "$@"
    fi
    TMP=$GK_TEST_TMP
    RPORT=$GK_TEST_REDIS_PORT
    DB=$GK_TEST_DATABASE_URL
    trap gk_bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

gk_bench_server() {
    APORT=$(gk_free_port)
    export REDIS_URL="redis://127.0.0.1:$RPORT/0" DATABASE_URL="$DB" PORT=$APORT LOG_LEVEL=warn
    export JWT_SECRET=bench-jwt-secret-0123456789abcdefghijklmnop ADMIN_TOKEN=bench-admin-token-0123456789abcdefghijklm
    "$1/gatekeeper" 2>"$TMP/server.log" &
    SERVER=$!
    PIDS+=("$SERVER")
    API="http://127.0.0.1:$APORT"
    for _ in $(seq 100); do curl -fs "$API/health" >/dev/null 2>&1 && break; sleep 0.1; done
}
