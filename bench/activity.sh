#!/usr/bin/env bash
# bench/activity.sh [BUILD_DIR] [EVENTS] -- how fast the activity consumer drains a backlog.
#
# Starts a throwaway Redis and PostgreSQL (fsync on, as in production) on free loopback ports,
# puts EVENTS (default 200000) activity events into one business's stream at once, starts one
# gatekeeper-worker and measures how long until every event is committed to activity_log.
# Prints events/s and appends a line to bench/results/activity.md. Not part of `make test`.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
BUILD=$(cd "${1:-$ROOT/build}" && pwd -P)
EVENTS=${2:-200000}
# shellcheck source=scripts/services.sh
. "$ROOT/scripts/services.sh"
PATH=$(gk_pg_bindir):$PATH

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
gk_bench_services on "$@"
psql -X -q -d "$DB" -c "INSERT INTO businesses (id) VALUES ('bench')"

# The events, as the queue scripts write them, in chunks of 10,000 per script call.
redis-cli -p "$RPORT" XGROUP CREATE 'gk:{bench}:events' gk-activity 0 MKSTREAM >/dev/null
for ((i = 0; i < EVENTS; i += 10000)); do
    redis-cli -p "$RPORT" EVAL "for j = tonumber(ARGV[1]), tonumber(ARGV[2]) do
        redis.call('XADD', KEYS[1], '*', 'type', 'enqueue', 'user', 'user' .. j, 'ts', '1795000000000',
                   'ip', '203.0.113.7', 'details', '{\"position\":' .. j .. '}') end" \
        1 'gk:{bench}:events' "$i" "$((i + 9999 < EVENTS - 1 ? i + 9999 : EVENTS - 1))" >/dev/null
done

start=$(date +%s.%N)
REDIS_URL="redis://127.0.0.1:$RPORT/0" DATABASE_URL="$DB" LOG_LEVEL=warn \
    "$BUILD/gatekeeper-worker" 2>"$TMP/worker.log" &
PIDS+=($!)
while :; do
    n=$(psql -X -At -d "$DB" -c "SELECT count(*) FROM activity_log")
    [ "$n" -ge "$EVENTS" ] && break
    sleep 0.05
done
end=$(date +%s.%N)
rate=$(awk -v n="$EVENTS" -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", n / (b - a) }')
secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
left=$(redis-cli -p "$RPORT" XLEN 'gk:{bench}:events')
line="$(date -u +%Y-%m-%dT%H:%MZ) activity consumer: $EVENTS events committed in ${secs}s = $rate events/s (stream left: $left entries; $(nproc) cores, fsync on)"
echo "$line"
mkdir -p "$ROOT/bench/results"
echo "- $line" >>"$ROOT/bench/results/activity.md"
