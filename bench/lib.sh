# bench/lib.sh -- sourced by the bench scripts after scripts/services.sh: a throwaway Redis and
# PostgreSQL on free loopback ports in a temporary directory, and a trap that stops them and
# every process whose pid was added to PIDS.
# gk_bench_services FSYNC (on|off) sets TMP, RPORT, PPORT and DB (the PostgreSQL URL, sql/ applied).

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
