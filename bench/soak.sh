#!/usr/bin/env bash
# bench/soak.sh BUILD_DIR -- the soak: the flash-crowd mix at 70% of its measured peak for
# SOAK_SECONDS (default 1800), with a report in bench/results/<date>-soak.md. Not part of CI.
#
# Starts its own Redis (AOF everysec and the default RDB snapshots, as scripts/run and
# docker-compose.yml run it) and PostgreSQL (fsync on) on free loopback ports (inside
# scripts/with-services, through bench/lib.sh), one API server and one worker, and drives the
# server with wrk (one thread, CONNECTIONS keep-alive connections, default 256: the paced run
# needs connections to spare) running bench/wrk/soak.lua, a closed loop of visitors who join,
# poll, get admitted, are verified and finished, leave, abandon the page or let their ready time
# run out, so that arrivals equal admissions + leaves + evictions and the queue holds a constant
# number of users however long it runs (see soak.lua).
#
# 1. Peak: the mix as fast as wrk can send it, twice (PEAK_SECONDS each; the first run sizes the
#    second), on a business of its own; the peak is the rate after the enqueue burst.
# 2. Soak: the same mix at SOAK_SHARE % (70) of that peak, paced by wrk's delay(), on business
#    "soak". Admission runs at CHURN (5%) of the request rate and WAIT_SECONDS (60) of
#    admissions are kept waiting, so each visitor waits a minute and polls every few seconds.
# 3. Every 10 s: server and worker RSS, Redis used_memory, waiting/ready, the activity backlog,
#    the business's counters and the answers by status (counted in the Lua response()).
# 4. Passes only with zero non-2xx answers (so zero 5xx and zero 429), zero socket errors, the
#    achieved rate at least 90% of the target (else the soak did not test that load),
#    server and worker RSS at the end within 10% of their value after the warm-up (the first
#    WARMUP_SECONDS, 60), and bounded Redis memory and activity backlog. Redis holds, by design,
#    a constant number of users (waiting, their heartbeats, ready) and a backlog the consumer
#    keeps short, so used_memory is flat once ready users start to expire (ready_ttl, 60 s):
#    it must end within 10% of its value after the warm-up and never pass 1.5 times that (the
#    margin absorbs a backlog burst during a snapshot). The backlog (stream entries) must stay below
#    10 seconds of entries after the warm-up, and at the end every event of the soak must be in
#    PostgreSQL once: its rows of each type equal the counters the queue scripts keep.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
BUILD=$(cd "${1:-$ROOT/build}" && pwd -P)
SOAK=${SOAK_SECONDS:-1800}
WARMUP=${WARMUP_SECONDS:-60}
PEAK_SECONDS=${PEAK_SECONDS:-15}
SHARE=${SOAK_SHARE:-70}
CONNS=${CONNECTIONS:-256}
CHURN=0.05
WAIT_SECONDS=60
EVERY=10
# shellcheck source=scripts/services.sh
. "$ROOT/scripts/services.sh"
PATH=$(gk_pg_bindir):$PATH
command -v wrk >/dev/null || "$ROOT/scripts/install-deps" --bench
if [ "$SOAK" -lt $((WARMUP + 2 * EVERY)) ]; then
    echo "soak.sh: SOAK_SECONDS must be at least WARMUP_SECONDS + $((2 * EVERY))" >&2
    exit 2
fi

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
gk_bench_services on "$@"
rcli() { redis-cli -p "$RPORT" "$@"; }
# Persistence as in production: what the soak measures includes the AOF's rewrites and the
# snapshots' forks.
rcli CONFIG SET appendonly yes appendfsync everysec save "3600 1 300 100 60 10000" >/dev/null
for _ in $(seq 100); do
    rcli INFO persistence | tr -d '\r' | grep -qx 'aof_rewrite_in_progress:0' && break
    sleep 0.1
done
gk_bench_server "$BUILD"
LOG_LEVEL=info "$BUILD/gatekeeper-worker" 2>"$TMP/worker.log" &
WORKER=$!
PIDS+=("$WORKER")

# config BUSINESS ADMISSION_LIMIT: rate limits far above the load (no 429), one tick a second,
# the shortest ready time and abandon time allowed, so expiry and eviction happen in the run.
config() {
    curl -fsS -X POST "$API/config" -H "business_id: $1" -H "Authorization: Bearer $ADMIN_TOKEN" \
        -d '{"ip_enqueue_limit": 1000000, "ip_enqueue_limit_interval": 1, "ip_status_polling_limit": 1000000,
             "ip_status_polling_limit_interval": 1, "ip_verify_limit": 1000000, "ip_verify_limit_interval": 1,
             "ip_finish_limit": 1000000, "ip_finish_limit_interval": 1, "admission_frequency": 1, "ready_ttl_seconds": 60,
             "abandon_after_seconds": 30, "admission_limit": '"$2"'}' >/dev/null
}
for b in peak soak; do
    curl -fsS -X POST "$API/businesses" -H "Authorization: Bearer $ADMIN_TOKEN" -d "{\"business_id\":\"$b\"}" >/dev/null
done
cat "$ROOT/bench/wrk/report.lua" "$ROOT/bench/wrk/soak.lua" >"$TMP/soak.lua"
# peak_run SECONDS TARGET: the mix unpaced on business "peak"; prints wrk's RESULT and SOAK lines.
peak_run() {
    env BUSINESS=peak TARGET="$2" PREFIX=peak \
        wrk -t1 -c"$CONNS" -d"$1s" --timeout 5s -s "$TMP/soak.lua" "$API" 2>&1 | grep -E '^(RESULT|SOAK) ' || true
}
field() { # field NAME < SOAK line
    tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'
}
# The visitors of a finished run, no longer polling, would be admitted and evicted during the
# next one; the peak business is emptied so that its leftovers weigh on nothing afterwards.
forget() {
    rcli DEL "gk:{$1}:wait" "gk:{$1}:ready" "gk:{$1}:hb" >/dev/null
}

# 1. Peak. The first run (100 admissions/s) sizes the second; both on business "peak".
# PEAK=<req/s> skips the measurement (to repeat a soak at the same load on a busy machine).
peak=${PEAK:-}
PEAK_OUT="SOAK steady_rps=$peak"
if [ -z "$peak" ]; then
    echo "# peak: wrk -t1 -c$CONNS, the soak mix unpaced, ${PEAK_SECONDS}s twice ($(nproc) cores shared)" >&2
    admit=100
    for pass in 1 2; do
        config peak "$admit"
        sleep 1
        PEAK_OUT=$(peak_run "$PEAK_SECONDS" $((WAIT_SECONDS * admit)))
        forget peak
        peak=$(echo "$PEAK_OUT" | grep '^SOAK ' | field steady_rps)
        if awk -v p="$peak" 'BEGIN { exit !(p + 0 <= 0) }'; then
            echo "soak.sh: the peak run never reached its waiting target; wrk said: $PEAK_OUT" >&2
            exit 1
        fi
        echo "# peak pass $pass: admission $admit/s, $((WAIT_SECONDS * admit)) waiting:" \
            "$peak req/s after the burst ($(echo "$PEAK_OUT" | awk '/^RESULT/ { print $2 }') overall)" >&2
        admit=$(awk -v p="$peak" -v c="$CHURN" 'BEGIN { a = int(p * c + 0.5); print (a < 1 ? 1 : a) }')
    done
fi

# 2. The soak at SHARE % of the peak, on business "soak".
RATE=$(awk -v p="$peak" -v s="$SHARE" 'BEGIN { printf "%.0f", p * s / 100 }')
ADMIT=$(awk -v r="$RATE" -v c="$CHURN" 'BEGIN { a = int(r * c + 0.5); print (a < 1 ? 1 : a) }')
TARGET=$((WAIT_SECONDS * ADMIT))
config soak "$ADMIT"
sleep 1
echo "# soak: ${SOAK}s at $RATE req/s ($SHARE% of $peak), admission $ADMIT/s, $TARGET waiting" >&2

rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# One line: t server_rss worker_rss redis_used waiting ready hb backlog events_added enqueued
# admitted expired evicted finished responses non2xx n5xx left
SAMPLE_LUA="local a = 0
if redis.call('EXISTS', KEYS[4]) == 1 then
  local x = redis.call('XINFO', 'STREAM', KEYS[4])
  for i = 1, #x, 2 do if x[i] == 'entries-added' then a = x[i + 1] end end
end
local s = redis.call('HMGET', KEYS[5], 'enqueued_total', 'admitted_total', 'expired_total', 'evicted_total', 'finished_total')
local out = {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]),
             redis.call('XLEN', KEYS[4]), a}
for i = 1, 5 do out[#out + 1] = tonumber(s[i]) or 0 end
return out"
sample() {
    local mem q w
    mem=$(rcli INFO memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }')
    q=$(rcli EVAL "$SAMPLE_LUA" 5 'gk:{soak}:wait' 'gk:{soak}:ready' 'gk:{soak}:hb' 'gk:{soak}:events' \
        'gk:{soak}:stats' | tr '\n' ' ')
    w=$(cat "$TMP/stats.soak" 2>/dev/null || true)
    echo "$w" | tr ' ' '\n' | awk -F= -v t="$1" -v s="$(rss "$SERVER")" -v k="$(rss "$WORKER")" -v m="$mem" -v q="$q" '
        $1 == "responses" { r = $2 } $1 == "leave_left" { l = $2 }
        $1 ~ /^code_/ { c = substr($1, 6) + 0; if (c < 200 || c > 299) bad += $2; if (c >= 500) five += $2 }
        END { printf "%d %d %d %d %s %d %d %d %d\n", t, s, k, m, q, r, bad, five, l }'
}
SAMPLES=$TMP/samples
: >"$SAMPLES"
# $! must be wrk itself, so that the cleanup on Ctrl-C stops it.
env BUSINESS=soak TARGET="$TARGET" RATE="$RATE" STATS="$TMP/stats.soak" PREFIX=soak \
    wrk -t1 -c"$CONNS" -d"${SOAK}s" --timeout 5s -s "$TMP/soak.lua" "$API" >"$TMP/soak.out" 2>&1 &
WRK=$!
PIDS+=("$WRK")
start=${EPOCHREALTIME/./}
k=0
while :; do
    sample $((k * EVERY)) >>"$SAMPLES"
    k=$((k + 1))
    while kill -0 "$WRK" 2>/dev/null; do
        left=$((start + k * EVERY * 1000000 - ${EPOCHREALTIME/./}))
        [ "$left" -le 0 ] && break
        [ "$left" -gt 1000000 ] && left=1000000
        sleep "$((left / 1000000)).$(printf '%06d' $((left % 1000000)))"
    done
    kill -0 "$WRK" 2>/dev/null || break
done
wait "$WRK" || true
# The end: a last sample, unless the loop took one just now.
now=$(((${EPOCHREALTIME/./} - start) / 1000000))
[ "$now" -ge $(((k - 1) * EVERY + 2)) ] && sample "$now" >>"$SAMPLES"
RESULT=$(grep '^RESULT' "$TMP/soak.out" || true)
SOAKLINE=$(grep '^SOAK' "$TMP/soak.out" || true)
if [ -z "$RESULT" ] || [ -z "$SOAKLINE" ]; then
    echo "soak.sh: wrk gave no result:" >&2
    cat "$TMP/soak.out" >&2
    exit 1
fi
SERVER_UP=yes WORKER_UP=yes
gk_alive "$SERVER" || SERVER_UP=no
gk_alive "$WORKER" || WORKER_UP=no

# Every event of the soak must reach PostgreSQL once the consumer has caught up. The worker
# would go on admitting and evicting the visitors wrk left behind: no more ticks first.
curl -fsS -X POST "$API/config" -H "business_id: soak" -H "Authorization: Bearer $ADMIN_TOKEN" \
    -d '{"admission_frequency": 3600}' >/dev/null
sleep 2
for _ in $(seq 300); do [ "$(rcli XLEN 'gk:{soak}:events')" = 0 ] && break; sleep 0.1; done
# Rows per event type beside the counters the same scripts keep (a stream entry may hold the
# events of up to 100 users, so entries are not events): "enqueue=N/M admit=N/M ..." rows/counter.
ROWS=$(psql -X -At -F' ' -d "$DB" -c "SELECT event, count(*) FROM activity_log WHERE business_id = 'soak'
       AND event IN ('enqueue', 'admit', 'expire', 'evict') GROUP BY event")
COUNTERS=$(rcli HMGET 'gk:{soak}:stats' enqueued_total admitted_total expired_total evicted_total events_dropped |
    tr '\n' ' ')
EVENTS_CHECK=$(echo "$ROWS" | awk -v c="$COUNTERS" '
    { rows[$1] = $2 }
    END {
        split(c, n, " "); split("enqueue admit expire evict", ev, " ")
        ok = (n[5] + 0 == 0)
        for (i = 1; i <= 4; i++) { printf "%s=%d/%d ", ev[i], rows[ev[i]], n[i]; if (rows[ev[i]] + 0 != n[i] + 0) ok = 0 }
        printf "dropped=%d %s", n[5], ok ? "ok" : "MISMATCH"
    }')
HEALTH=$(curl -s "$API/health" || true)
PERSIST=$(rcli INFO persistence | tr -d '\r' | awk -F: '$1 ~ /^(aof_rewrites|rdb_saves|aof_current_size)$/ { printf "%s=%s ", $1, $2 }')
ERRLOG=$(cat "$TMP/server.log" "$TMP/worker.log" | grep -cE 'level=(warn|error)' || true)

DATE=$(date -u +%Y-%m-%dT%H%MZ)
OUT=$ROOT/bench/results/$DATE-soak.md
mkdir -p "$ROOT/bench/results"
get() { echo "$SOAKLINE" | field "$1"; }
SOCKET_ERRORS=$(($(get connect) + $(get read) + $(get write) + $(get timeout)))
NON2XX=$(echo "$SOAKLINE" | tr ' ' '\n' | awk -F= '$1 ~ /^code_/ { c = substr($1, 6) + 0; if (c < 200 || c > 299) n += $2 } END { print n + 0 }')
N5XX=$(echo "$SOAKLINE" | tr ' ' '\n' | awk -F= '$1 ~ /^code_/ && substr($1, 6) + 0 >= 500 { n += $2 } END { print n + 0 }')
CODES=$(echo "$SOAKLINE" | tr ' ' '\n' | awk -F= '$1 ~ /^code_/ { printf "%s%s: %s", sep, substr($1, 6), $2; sep = ", " }')

# The checks, from the samples: the warm-up value is the first sample at or after WARMUP.
# prints "name verdict detail" lines.
checks() {
    awk -v w="$WARMUP" -v sock="$SOCKET_ERRORS" -v bad="$NON2XX" -v five="$N5XX" -v events="$EVENTS_CHECK" \
        -v sup="$SERVER_UP" -v wup="$WORKER_UP" -v target="$RATE" \
        -v achieved="$(echo "$RESULT" | awk '{ print $2 }')" '
        function pct(a, b) { return b > 0 ? (a - b) * 100 / b : 0 }
        function line(name, ok, detail) { printf "%s|%s|%s\n", name, ok ? "pass" : "FAIL", detail; if (!ok) fail = 1 }
        { t[NR] = $1; s[NR] = $2; k[NR] = $3; m[NR] = $4; b[NR] = $8; e[NR] = $9
          if (!base && $1 >= w) base = NR }
        END {
            n = NR
            line("zero 5xx", five == 0, five " answers >= 500")
            line("no other non-2xx (429 included)", bad - five == 0, (bad - five) " answers")
            line("zero socket errors", sock == 0, sock " connect/read/write/timeout errors")
            line("achieved rate at least 90% of the target", achieved >= 0.9 * target,
                 sprintf("%.0f of %d req/s", achieved, target))
            line("server and worker still running", sup == "yes" && wup == "yes", "server " sup ", worker " wup)
            line("server RSS end within 10% of warm-up", pct(s[n], s[base]) <= 10 && pct(s[n], s[base]) >= -10,
                 sprintf("%d -> %d kB (%+.1f%%)", s[base], s[n], pct(s[n], s[base])))
            line("worker RSS end within 10% of warm-up", pct(k[n], k[base]) <= 10 && pct(k[n], k[base]) >= -10,
                 sprintf("%d -> %d kB (%+.1f%%)", k[base], k[n], pct(k[n], k[base])))
            mx = 0; for (i = base; i <= n; i++) if (m[i] > mx) mx = m[i]
            line("Redis used_memory end within 10% of warm-up, max below 1.5x",
                 pct(m[n], m[base]) <= 10 && mx <= 1.5 * m[base],
                 sprintf("%d -> %d bytes (%+.1f%%), max %d (%.2fx)", m[base], m[n], pct(m[n], m[base]), mx, mx / m[base]))
            rate = (t[n] > t[base]) ? (e[n] - e[base]) / (t[n] - t[base]) : 0
            bmx = 0; for (i = base; i <= n; i++) if (b[i] > bmx) bmx = b[i]
            line("activity backlog below 10 s of events after warm-up", bmx <= 10 * rate,
                 sprintf("max %d events, end %d, limit %.0f (%.0f events/s)", bmx, b[n], 10 * rate, rate))
            line("every event in PostgreSQL, once", events ~ / ok$/,
                 "rows/counter " events)
            exit fail
        }' "$SAMPLES"
}
VERDICT=PASS
CHECKS=$(checks) || VERDICT=FAIL

{
    echo "# Soak, $DATE: $VERDICT"
    echo
    echo "$(nproc) cores shared by wrk (1 thread, $CONNS connections), the API server, one worker, Redis"
    echo "(AOF everysec, default snapshots) and PostgreSQL (fsync on); loopback; keep-alive."
    echo
    echo "| load | value |"
    echo "|---|---|"
    echo "$PEAK_OUT" | grep '^SOAK ' | field steady_rps | awk -v given="${PEAK:-}" '{ printf "| peak of the mix (%s) | %.0f req/s |\n",
        (given == "" ? "measured after its enqueue burst, '"$PEAK_SECONDS"'s unpaced" : "given by PEAK"), $1 }'
    echo "| target: $SHARE% of the peak | $RATE req/s |"
    echo "$RESULT" | awk -v r="$RATE" -v s="$SOAK" '{ printf "| achieved over %ss | %.0f req/s (%.1f%% of target); p50 %s ms, p99 %s ms, p99.9 %s ms |\n", s, $2, $2 * 100 / r, $3, $4, $5 }'
    echo "| admission | $ADMIT users/s (1 tick/s), ready_ttl 60 s, abandon after 30 s |"
    echo "| visitors kept waiting by the mix | $TARGET |"
    echo "$SOAKLINE" | tr ' ' '\n' | awk -F= '{ v[$1] = $2 } END {
        printf "| requests | %d: status %d, enqueue %d, verify %d, finish %d, leave %d |\n", v["responses"], v["status"], v["enqueue"], v["verify"], v["finish"], v["leave"]
        printf "| what the polls saw | waiting %d, ready %d, gone %d; verified ready %d of %d; finish cleared %d of %d |\n", v["st_waiting"], v["st_ready"], v["st_gone"], v["verify_ready"], v["verify"], v["finish_cleared"], v["finish"]
        printf "| visitors who never came back | %d ready (expire), %d waiting (evicted or admitted, then expire) |\n", v["ready_dropped"], v["abandoned"] }'
    echo "| answers by status | $CODES |"
    echo "| socket errors | $SOCKET_ERRORS |"
    echo "| Redis persistence at the end | $PERSIST|"
    echo "| /health at the end | \`$HEALTH\` |"
    echo "| warn/error lines in the server and worker logs | $ERRLOG |"
    echo
    echo "Steady state, per second between the warm-up (${WARMUP}s) and the end, from the business's counters:"
    echo
    awk -v w="$WARMUP" '!b && $1 >= w { b = 1; t0 = $1; e0 = $10; a0 = $11; x0 = $12; v0 = $13; f0 = $14; l0 = $18 }
        { t1 = $1; e1 = $10; a1 = $11; x1 = $12; v1 = $13; f1 = $14; l1 = $18 }
        END { d = t1 - t0; if (d <= 0) d = 1
              printf "| enqueued | admitted | left | evicted | finished | expired |\n|---|---|---|---|---|---|\n"
              printf "| %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", (e1 - e0) / d, (a1 - a0) / d, (l1 - l0) / d,
                     (v1 - v0) / d, (f1 - f0) / d, (x1 - x0) / d }' "$SAMPLES"
    echo
    echo "Samples every ${EVERY}s (warm-up: the first sample at or after ${WARMUP}s):"
    echo
    echo "| metric | soak start | after warm-up | max | end | end vs warm-up |"
    echo "|---|---|---|---|---|---|"
    awk -v w="$WARMUP" '
        BEGIN { split("2 3 4 5 6 8", col, " "); split("API server RSS (kB)|worker RSS (kB)|Redis used_memory (bytes)|waiting|ready|activity backlog (events)", name, "|") }
        { for (j = 1; j <= 6; j++) { v = $(col[j]); if (NR == 1) first[j] = v; if (v > mx[j]) mx[j] = v; last[j] = v
              if (!b && $1 >= w) base[j] = v }
          if (!b && $1 >= w) b = 1 }
        END { for (j = 1; j <= 6; j++)
                  printf "| %s | %d | %d | %d | %d | %s |\n", name[j], first[j], base[j], mx[j], last[j],
                         (base[j] > 0 ? sprintf("%+.1f%%", (last[j] - base[j]) * 100 / base[j]) : "-") }' "$SAMPLES"
    echo
    echo "| check | verdict | detail |"
    echo "|---|---|---|"
    echo "$CHECKS" | awk -F'|' '{ printf "| %s | %s | %s |\n", $1, $2, $3 }'
    echo
    echo "<details><summary>all samples</summary>"
    echo
    echo "| t s | server RSS kB | worker RSS kB | Redis bytes | waiting | ready | hb | backlog | events | enqueued | admitted | expired | evicted | finished | responses | non-2xx | 5xx | left |"
    echo "|$(printf -- '---|%.0s' $(seq 18))"
    awk '{ s = "|"; for (i = 1; i <= 18; i++) s = s " " $i " |"; print s }' "$SAMPLES"
    echo
    echo "</details>"
} >"$OUT"
cat "$OUT"
echo "report: $OUT" >&2
[ "$VERDICT" = PASS ]
