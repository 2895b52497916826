# shellcheck shell=bash
# bench/lib.sh -- sourced by the bench scripts after scripts/services.sh: a throwaway Redis and
# PostgreSQL on free loopback ports in a temporary directory, and a trap that stops them and
# every process whose pid was added to PIDS.
# gk_bench_services FSYNC (on|off) sets TMP, RPORT, PPORT and DB (the PostgreSQL URL, sql/ applied).
# gk_bench_server BUILD starts the API server on them and sets APORT, API and SERVER.

PIDS=()
gk_bench_cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    gk_redis_stop "$TMP/redis" >/dev/null 2>&1 || true
    gk_pg_stop "$TMP/pg" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}

gk_bench_services() {
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/gk-bench.XXXXXX")
    chmod 755 "$TMP"
    trap gk_bench_cleanup EXIT INT TERM
    RPORT=$(gk_free_port)
    PPORT=$(gk_free_port)
    gk_redis_start "$TMP/redis" "$RPORT" --save '' --appendonly no >/dev/null
    gk_pg_start "$TMP/pg" "$PPORT" "$1" >/dev/null
    DB="postgresql://gatekeeper@127.0.0.1:$PPORT/gatekeeper"
    gk_apply_sql "$DB"
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
