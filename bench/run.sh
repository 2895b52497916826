#!/usr/bin/env bash
# bench/run.sh BUILD_DIR -- `make bench`: Gatekeeper's throughput and latency against its own
# ceilings, measured in one run on this machine, with a report in bench/results/<date>.md and a
# plot in bench/results/<date>.png.
#
# Starts its own Redis and PostgreSQL on free loopback ports (bench/lib.sh runs this script inside
# scripts/with-services), one API server, and drives it with wrk (one thread, keep-alive): the
# cheapest route (/health?shallow, answered from memory) is the in-process ceiling every route is
# compared with; redis-benchmark gives Redis's own ceiling for the commands the routes use. Then
# scale and memory: status latency at 1,000 vs 10,000,000 waiting users, Redis bytes per waiting
# user, one 10,000-user admission tick, and the server's RSS over a 5-minute mixed run; status and
# enqueue once more through a Redis Cluster of 3 masters, with each master's CPU per request. QUICK=1
# shortens everything (1M instead of 10M users, 30 s instead of 5 minutes). Not part of
# `make test`.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
BUILD=$(cd "${1:-$ROOT/build}" && pwd -P)
DURATION=${DURATION:-10}
[ "${QUICK:-0}" = 1 ] && DURATION=4 && HUGE_USERS=${HUGE_USERS:-1000000}
USERS=${USERS:-10000}
# shellcheck source=scripts/services.sh
. "$ROOT/scripts/services.sh"
PATH=$(gk_pg_bindir):$PATH
for tool in wrk gnuplot redis-benchmark; do
    command -v "$tool" >/dev/null || "$ROOT/scripts/install-deps" --bench
done

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
GK_BENCH_CLUSTER=1 gk_bench_services off "$@"
gk_bench_server "$BUILD"
curl -fs -X POST "$API/businesses" -H "Authorization: Bearer $ADMIN_TOKEN" -d '{"business_id":"bench"}' >/dev/null
curl -fs -X POST "$API/config" -H 'business_id: bench' -H "Authorization: Bearer $ADMIN_TOKEN" \
    -d '{"ip_enqueue_limit": 1000000, "ip_enqueue_limit_interval": 1, "ip_status_polling_limit": 1000000,
         "ip_status_polling_limit_interval": 1, "ip_verify_limit": 1000000, "ip_verify_limit_interval": 1,
         "admission_limit": 100, "admission_frequency": 1}' >/dev/null

# USERS waiting users u0..u(USERS-1) and their tokens.
fill() { # business count prefix (FILL_PORT: another Redis; -c follows a cluster's redirection)
    redis-cli -c -p "${FILL_PORT:-$RPORT}" EVAL "local n = tonumber(ARGV[1]) for i = 0, n - 1, 1000 do local a = {}
        for j = i, math.min(i + 999, n - 1) do a[#a + 1] = j + 1 a[#a + 1] = ARGV[2] .. j end
        redis.call('ZADD', KEYS[1], unpack(a)) end redis.call('SET', KEYS[2], n) return n" \
        2 "gk:{$1}:wait" "gk:{$1}:seq" "$2" "$3" >/dev/null
}
fill bench "$USERS" u
"$BUILD/gk-bench-tokens" bench "$USERS" tickets >"$TMP/tokens"

# A /metrics gauge of the server (its first sample).
metric() { curl -fs "$API/metrics" | awk -v m="$1" '$1 == m { print $2 + 0; exit }'; }
# warm BUSINESS TOKENS: polls (each keeps the business's view from being released as idle) until
# the node answers one from its memory, so that the runs measure polls from memory. Up to 120 s.
warm() {
    local redis0
    for _ in $(seq 1200); do
        redis0=$(metric 'gatekeeper_status_polls_total{answered="redis"}')
        curl -fs "$API/queue/status" -H "business_id: $1" -H "jwt: $(head -1 "$2")" >/dev/null || true
        [ "$(metric 'gatekeeper_status_polls_total{answered="redis"}')" = "$redis0" ] && return 0
        sleep 0.1
    done
    echo "bench: the node did not finish reading $1's line" >&2
}
# Redis commands processed so far (INFO commandstats counts those a script runs, too).
redis_cmds() { redis-cli -p "$RPORT" INFO commandstats | awk -F'[=,:]' '/^cmdstat_/ { n += $3 } END { print n + 0 }'; }
warm bench "$TMP/tokens"

# run NAME SCRIPT CONNECTIONS [env...] -> "NAME c rps p50 p99 p999 errors requests"
run() {
    local name=$1 script=$2 conns=$3
    shift 3
    cat "$ROOT/bench/wrk/report.lua" "$ROOT/bench/wrk/$script.lua" >"$TMP/$script.lua"
    env TOKENS="$TMP/tokens" BUSINESS=bench "$@" \
        wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 5s -s "$TMP/$script.lua" "$API" 2>&1 |
        awk -v n="$name" -v c="$conns" '/^RESULT/ { print n, c, $2, $3, $4, $5, $6, $7 }'
}
echo "# wrk -t1 -d${DURATION}s, $USERS users waiting, $(nproc) cores shared by wrk, server and Redis" >&2
RESULTS=$TMP/results
: >"$RESULTS"
for c in 16 64 128 256; do
    run ceiling ceiling "$c" | tee -a "$RESULTS"
    cmds0=$(redis_cmds)
    run status status "$c" | tee -a "$RESULTS" >"$TMP/status.$c"
    cmds1=$(redis_cmds)
    # Redis commands per status poll: everything Redis ran during the run (the node's background
    # reads and heartbeat batches included), over the polls answered.
    awk -v c="$c" -v d=$((cmds1 - cmds0)) '{ printf "%s %.4f\n", c, ($8 > 0 ? d / $8 : 0) }' "$TMP/status.$c" \
        >>"$TMP/cmds_per_poll"
done
run verify status 64 PATH_=/queue/verify | tee -a "$RESULTS"
run enqueue enqueue 64 | tee -a "$RESULTS"
# The same joins with proof of work on: what checking a proof (two hashes) and spending it (SET NX
# in the join's script) cost the server. gk-bench-pow makes payloads that need no solving (a
# browser's solving time is tests/e2e's).
curl -fs -X POST "$API/businesses" -H "Authorization: Bearer $ADMIN_TOKEN" -d '{"business_id":"powbench"}' >/dev/null
curl -fs -X POST "$API/config" -H 'business_id: powbench' -H "Authorization: Bearer $ADMIN_TOKEN" \
    -d '{"pow_mode": "on", "ip_enqueue_limit": 1000000, "ip_enqueue_limit_interval": 1}' >/dev/null
"$BUILD/gk-bench-pow" powbench $((25000 * DURATION)) >"$TMP/pow"
run enqueue_pow enqueue_pow 64 PAYLOADS="$TMP/pow" BUSINESS=powbench | tee -a "$RESULTS"

# The flash crowd: an enqueue burst, then mostly status polls while a worker admits.
cat "$ROOT/bench/wrk/report.lua" "$ROOT/bench/wrk/mix.lua" >"$TMP/mix.lua"
LOG_LEVEL=info "$BUILD/gatekeeper-worker" 2>"$TMP/worker.log" &
WORKER=$!
PIDS+=("$WORKER")
run burst enqueue 64 PREFIX=burst | tee -a "$RESULTS"
run flash_mix mix 64 | tee -a "$RESULTS"

# Scale: the same status poll with 1,000 and with 10,000,000 users waiting (O(log n) rank). The
# worker stops first, so that neither line moves while it is measured: it would otherwise admit
# the polled visitors from the front of both lines, and a ready visitor's poll is a Redis call.
kill "$WORKER" 2>/dev/null && wait "$WORKER" 2>/dev/null
fill small 1000 u
"$BUILD/gk-bench-tokens" small 1000 tickets >"$TMP/tokens.small"
fill huge "${HUGE_USERS:-10000000}" u
"$BUILD/gk-bench-tokens" huge 1000 tickets >"$TMP/tokens.huge"
for b in small huge; do
    curl -fs -X POST "$API/businesses" -H "Authorization: Bearer $ADMIN_TOKEN" -d "{\"business_id\":\"$b\"}" >/dev/null
    curl -fs -X POST "$API/config" -H "business_id: $b" -H "Authorization: Bearer $ADMIN_TOKEN" \
        -d '{"ip_status_polling_limit": 1000000, "ip_status_polling_limit_interval": 1}' >/dev/null
done
# The huge line first: reading it takes seconds, and the small one must still be followed then.
warm huge "$TMP/tokens.huge"
warm small "$TMP/tokens.small"
VIEW_BYTES=$(metric gatekeeper_status_view_bytes)
VIEW_TICKETS=$(metric gatekeeper_status_view_tickets)
run status_1k status 64 TOKENS="$TMP/tokens.small" BUSINESS=small | tee -a "$RESULTS"
run status_10M status 64 TOKENS="$TMP/tokens.huge" BUSINESS=huge | tee -a "$RESULTS"

# Memory: bytes per waiting user at 1,000,000 users, beside a bare sorted-set entry of the same
# member in the same Redis.
used() { redis-cli -p "$RPORT" INFO memory | awk -F: '/^used_memory:/ { print $2 + 0 }'; }
m0=$(used)
curl -fs -X POST "$API/businesses" -H "Authorization: Bearer $ADMIN_TOKEN" -d '{"business_id":"mem"}' >/dev/null
redis-cli -p "$RPORT" EVAL "for i = 0, 999999, 1000 do local a = {} for j = i, i + 999 do a[#a + 1] = 'u' .. j end
    for _, u in ipairs(a) do redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[2]), u) end end" \
    2 'gk:{mem}:wait' 'gk:{mem}:seq' >/dev/null
m1=$(used)
redis-cli -p "$RPORT" EVAL "for i = 0, 999999 do redis.call('ZADD', KEYS[1], i, 'u' .. i) end" 1 bare >/dev/null
m2=$(used)
PER_USER=$(( (m1 - m0) / 1000000 ))
PER_BARE=$(( (m2 - m1) / 1000000 ))

# One admission tick of 10,000 users (the worker's own measurement, script round trip included).
redis-cli -p "$RPORT" DEL 'gk:{tick}:wait' >/dev/null
fill tick 20000 t
curl -fs -X POST "$API/businesses" -H "Authorization: Bearer $ADMIN_TOKEN" -d '{"business_id":"tick"}' >/dev/null
curl -fs -X POST "$API/config" -H 'business_id: tick' -H "Authorization: Bearer $ADMIN_TOKEN" \
    -d '{"admission_limit": 10000, "admission_frequency": 3600}' >/dev/null
LOG_LEVEL=info "$BUILD/gatekeeper-worker" 2>"$TMP/worker-tick.log" &
WORKER=$!
PIDS+=("$WORKER")
TICK_MS=
for _ in $(seq 100); do
    TICK_MS=$(awk '/msg=tick business=tick / { for (i = 1; i <= NF; i++) if ($i ~ /^dur_ms=/) { sub("dur_ms=", "", $i); print $i } }' "$TMP/worker-tick.log" | head -1)
    [ -n "$TICK_MS" ] && break
    sleep 0.1
done
kill "$WORKER" 2>/dev/null && wait "$WORKER" 2>/dev/null

# API server memory over a long mixed run (SOAK_SECONDS, default 300; 30 with QUICK=1).
SOAK=${SOAK_SECONDS:-300}
[ "${QUICK:-0}" = 1 ] && SOAK=30
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER/status"; }
RSS_START=$(rss)
(DURATION=$SOAK run soak mix 64 >"$TMP/soak.result") &
SOAKER=$!
RSS_MAX=$RSS_START
while kill -0 "$SOAKER" 2>/dev/null; do
    r=$(rss)
    [ "$r" -gt "$RSS_MAX" ] && RSS_MAX=$r
    sleep 5
done
RSS_END=$(rss)
tee -a "$RESULTS" <"$TMP/soak.result"

# Redis CPU seconds (user + sys) of the Redis on port $1 so far.
cpu() { redis-cli -p "$1" INFO cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.6f", s }'; }
# runcpu NAME SCRIPT CONNS PORTS... [VAR=value...]: run (with the VAR=value settings), plus each
# Redis's CPU microseconds per request, into CPU.
CPU=$TMP/cpu
: >"$CPU"
runcpu() {
    local name=$1 script=$2 conns=$3 a line ports=() envs=() before=() i=0 per=""
    shift 3
    for a in "$@"; do
        case "$a" in
        *=*) envs+=("$a") ;;
        *) ports+=("$a") ;;
        esac
    done
    for a in "${ports[@]}"; do before+=("$(cpu "$a")"); done
    line=$(run "$name" "$script" "$conns" "${envs[@]}")
    echo "$line" | tee -a "$RESULTS"
    for a in "${ports[@]}"; do
        per="$per $(awk -v a="${before[$i]}" -v b="$(cpu "$a")" -v n="$(echo "$line" | awk '{ print $8 }')" \
            'BEGIN { printf "%.1f", (n > 0 ? (b - a) * 1e6 / n : 0) }')"
        i=$((i + 1))
    done
    echo "$name$per" >>"$CPU"
}

# Status polls and new joins on the one Redis, then the same through a second API server on a
# Redis Cluster of 3 masters (+ 3 replicas) on this same machine, back to back: this shows what
# routing costs, not the scale-out (the masters share the cores with everything else, and the one
# business lives on one master); the Redis CPU each master spends per request gives the scale-out.
SEED=${GK_TEST_REDIS_CLUSTER_NODES%%,*}
SEED=${SEED##*:}
mapfile -t MASTERS < <(redis-cli -p "$SEED" CLUSTER NODES | awk '$3 ~ /master/ && $3 !~ /fail/ { split($2, a, "[:@]"); print a[2] }')
runcpu status_one status 64 "$RPORT"
runcpu enqueue_one enqueue 64 "$RPORT" PREFIX=one
FILL_PORT=$SEED fill bench "$USERS" u
CPORT=$(gk_free_port)
env -u REDIS_URL REDIS_CLUSTER_NODES="$GK_TEST_REDIS_CLUSTER_NODES" PORT="$CPORT" "$BUILD/gatekeeper" \
    2>"$TMP/server-cluster.log" &
PIDS+=("$!")
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$CPORT/health" >/dev/null 2>&1 && break; sleep 0.1; done
API=http://127.0.0.1:$CPORT runcpu status_cluster status 64 "${MASTERS[@]}"
API=http://127.0.0.1:$CPORT runcpu enqueue_cluster enqueue 64 "${MASTERS[@]}" PREFIX=cluster

# Redis's own ceiling for what the routes do, from a client on this machine.
RB=$(redis-benchmark -p "$RPORT" -c 50 -n 200000 -q zrank "gk:{bench}:wait" u5000 2>/dev/null |
    awk '{ for (i = 1; i <= NF; i++) if ($i ~ /requests/) print $(i - 1) }' | head -1)
RBP=$(redis-benchmark -p "$RPORT" -c 50 -n 200000 -P 16 -q zrank "gk:{bench}:wait" u5000 2>/dev/null |
    awk '{ for (i = 1; i <= NF; i++) if ($i ~ /requests/) print $(i - 1) }' | head -1)

DATE=$(date -u +%Y-%m-%dT%H%MZ)
OUT=$ROOT/bench/results/$DATE.md
mkdir -p "$ROOT/bench/results"
{
    echo "# make bench, $DATE"
    echo
    echo "$(nproc) cores shared by wrk (1 thread), the API server and Redis; loopback; keep-alive;"
    echo "$USERS users waiting; each figure ${DURATION}s. Ratios are against the in-process ceiling"
    echo "(/health?shallow, answered from memory) at the same connection count, in this same run."
    echo
    echo "| route | conns | req/s | x ceiling | p50 ms | p99 ms | p99.9 ms | errors |"
    echo "|---|---|---|---|---|---|---|---|"
    awk 'NR == FNR { if ($1 == "ceiling") ceil[$2] = $3; next }
         { printf "| %s | %s | %.0f | %.2f | %s | %s | %s | %s |\n",
             $1, $2, $3, (ceil[$2] > 0 ? $3 / ceil[$2] : 0), $4, $5, $6, $7 }' "$RESULTS" "$RESULTS"
    echo
    echo "Redis alone (redis-benchmark, 50 clients, ZRANK): ${RB:-?} ops/s unpipelined, ${RBP:-?} ops/s pipelined 16."
    echo
    echo "Redis CPU per request (user + sys, microseconds): the one Redis for status_one and enqueue_one, then"
    echo "each of the cluster's 3 masters for status_cluster and enqueue_cluster (the business lives on one of"
    echo "them; on this machine the cluster rows show the routing's overhead, not the scale-out):"
    echo
    awk '{ printf "- %s:", $1; for (i = 2; i <= NF; i++) printf " %s", $i; printf "\n" }' "$CPU"
    echo
    echo "| scale and memory | value |"
    echo "|---|---|"
    echo "| Redis bytes per waiting user at 1,000,000 users | $PER_USER |"
    echo "| bytes of a bare sorted-set entry, same members | $PER_BARE ($(awk -v a="$PER_USER" -v b="$PER_BARE" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }')) |"
    awk '$1 == "status_1k" { a = $5 } $1 == "status_10M" { b = $5 }
         END { printf "| status p99 with 1,000 vs %s waiting | %s ms vs %s ms (%.2fx) |\n", "'"${HUGE_USERS:-10000000}"'", a, b, (a > 0 ? b / a : 0) }' "$RESULTS"
    echo "| one admission tick of 10,000 users | ${TICK_MS:-?} ms |"
    echo "| API node memory of its views with ${HUGE_USERS:-10000000} waiting in one line (status from memory) | ${VIEW_BYTES:-?} bytes for ${VIEW_TICKETS:-?} waiting in all its views ($(awk -v b="${VIEW_BYTES:-0}" -v n="${VIEW_TICKETS:-1}" 'BEGIN { printf "%.2f bits per waiting user", b * 8 / n }')) |"
    awk '{ printf "| Redis commands per status poll, %s connections, %s waiting | %s |\n", $1, "'"$USERS"'", $2 }' "$TMP/cmds_per_poll"
    echo "| API server RSS over a ${SOAK}s mixed run: start / max / end | $RSS_START / $RSS_MAX / $RSS_END kB ($(awk -v a="$RSS_START" -v b="$RSS_END" 'BEGIN { printf "%+.1f%%", (b - a) * 100 / a }')) |"
} >"$OUT"
cat "$OUT"
awk '$1 == "ceiling" { print $2, $3, $5 > "'"$TMP"'/ceiling.dat" } $1 == "status" { print $2, $3, $5 > "'"$TMP"'/status.dat" }' "$RESULTS"
gnuplot <<GP
set terminal png size 900,500
set output "$ROOT/bench/results/$DATE.png"
set multiplot layout 1,2 title "Gatekeeper, $DATE"
set xlabel "connections"; set ylabel "requests/s"; set key bottom right
plot "$TMP/ceiling.dat" using 1:2 with linespoints title "ceiling (/health?shallow)", \
     "$TMP/status.dat" using 1:2 with linespoints title "/queue/status"
set ylabel "p99 ms"; set key top left
plot "$TMP/ceiling.dat" using 1:3 with linespoints title "ceiling", \
     "$TMP/status.dat" using 1:3 with linespoints title "/queue/status"
unset multiplot
GP
echo "report: $OUT" >&2
