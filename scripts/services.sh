# shellcheck shell=bash
# services.sh -- start and stop the Redis and PostgreSQL that `make run`, the tests and the
# benchmarks use, so that logic exists once. Sourced (not executed) by scripts/run,
# scripts/with-services (which every test suite and benchmark runs under), the pgctl/redisctl
# helpers it generates, and tests/abuse/run.sh for its API servers.
#
# Every function prints its errors on stderr prefixed with "services:" and returns non-zero;
# callers run under `set -eu`. Servers listen on 127.0.0.1 only. PostgreSQL refuses to run as
# root, so as root initdb/pg_ctl run as the `postgres` user (created if missing) via runuser.

GK_ROOT=${GK_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)}
GK_PG_USER=${GK_PG_USER:-postgres}

gk_err() {
    echo "services: $*" >&2
}

# Directory holding initdb/pg_ctl/postgres: Debian keeps them off PATH, under one directory per
# major version; take the highest.
gk_pg_bindir() {
    local d best=""
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V); do
        if [ -x "$d/initdb" ]; then best=$d; fi
    done
    if [ -z "$best" ] && command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir 2>/dev/null || true)
        if [ -n "$d" ] && [ -x "$d/initdb" ]; then best=$d; fi
    fi
    if [ -z "$best" ] && command -v initdb >/dev/null 2>&1; then
        best=$(dirname "$(command -v initdb)")
    fi
    if [ -z "$best" ]; then
        gk_err "PostgreSQL server binaries (initdb) not found; run scripts/install-deps"
        return 1
    fi
    echo "$best"
}

# True when something listens on TCP port $1 on any local address. Reads /proc so it needs no
# ss/netstat and also sees sockets bound to addresses other than 127.0.0.1.
gk_port_busy() {
    local hex f files=""
    hex=$(printf '%04X' "$1")
    # tcp6 is absent when IPv6 is disabled, and awk stops at a missing file.
    for f in /proc/net/tcp /proc/net/tcp6; do
        if [ -r "$f" ]; then files="$files $f"; fi
    done
    # shellcheck disable=SC2086 # paths without spaces
    awk -v h="$hex" '$4 == "0A" { split($2, a, ":"); if (a[2] == h) found = 1 } END { exit !found }' $files
}

# A TCP port that is free right now. It can be taken before the caller binds it, so callers
# retry with a new port when the server fails to start.
gk_free_port() {
    local p i
    if [ -n "${BUILD:-}" ] && [ -x "$BUILD/freeport" ]; then
        "$BUILD/freeport"
        return
    fi
    # Fallback: a random port below the usual ephemeral range (32768+), so it does not collide
    # with outgoing connections.
    i=0
    while [ "$i" -lt 20 ]; do
        p=$(od -An -tu2 -N2 /dev/urandom | tr -d ' ')
        p=$((20000 + p % 12000))
        if ! gk_port_busy "$p"; then
            echo "$p"
            return 0
        fi
        i=$((i + 1))
    done
    gk_err "no free port found"
    return 1
}

# gk_start_retry WHAT START [ARGS...]: runs START PORT ARGS... on a free port until it succeeds,
# 5 times at most (a free port can be taken between gk_free_port and the bind, and START is
# expected to fail then), and sets GK_PORT to the port it got. Not in a $(...) subshell, so what
# START sets or starts stays this shell's.
# shellcheck disable=SC2034 # GK_PORT is for the caller
gk_start_retry() {
    local what=$1 start=$2 i port
    shift 2
    GK_PORT=""
    for i in 1 2 3 4 5; do
        port=$(gk_free_port) || continue
        if "$start" "$port" "$@"; then
            GK_PORT=$port
            return 0
        fi
        gk_err "$what did not start on port $port (attempt $i of 5)"
    done
    gk_err "could not start $what"
    return 1
}

# True while pid $1 runs. A zombie counts as gone: where PID 1 does not reap orphans (some
# containers), a server started by an exited helper stays a zombie after it exits.
gk_alive() {
    local st
    kill -0 "$1" 2>/dev/null || return 1
    st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    [ "${st%% *}" != Z ]
}

# True if pid $1 is a live redis-server: a stale pid file may name a reused pid.
gk_redis_alive() {
    gk_alive "$1" && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = redis-server ]
}

# gk_redis_running DIR: true if the redis-server of gk_redis_start DIR runs.
gk_redis_running() {
    [ -f "$1/redis.pid" ] && gk_redis_alive "$(cat "$1/redis.pid")"
}

# Waits up to $1 seconds for pid $2 to exit. Returns 1 if it is still alive.
gk_wait_gone() {
    local n=$(($1 * 10))
    while gk_alive "$2"; do
        n=$((n - 1))
        if [ "$n" -le 0 ]; then return 1; fi
        sleep 0.1
    done
}

# gk_marked_pids MARKER DIR [cwd]: live processes other than this shell that carry MARKER
# (NAME=value) in their environment, or have their working directory inside DIR (and, unless
# the third argument is "cwd", an open file there): what a test run started, found again after
# the process that started it died.
gk_marked_pids() {
    local f pid where="/proc/[0-9]*/fd /proc/[0-9]*/cwd" depth=1
    if [ "${3:-}" = cwd ]; then where="/proc/[0-9]*/cwd" depth=0; fi
    {
        for f in /proc/[0-9]*/environ; do
            pid=${f#/proc/}
            pid=${pid%/environ}
            if grep -qzxF "$1" "$f" 2>/dev/null; then echo "$pid"; fi
        done
        # shellcheck disable=SC2086 # $where is a list of globs
        find $where -maxdepth "$depth" \( -lname "$2" -o -lname "$2/*" \) 2>/dev/null | cut -d/ -f3
    } | sort -un | while read -r pid; do
        if [ "$pid" != "$$" ] && gk_alive "$pid"; then echo "$pid"; fi
    done
}

# gk_stop_marked MARKER DIR [cwd]: SIGTERM to what gk_marked_pids finds, SIGKILL 5 s later.
gk_stop_marked() {
    local pid pids
    pids=$(gk_marked_pids "$@" | tr '\n' ' ')
    [ -n "$pids" ] || return 0
    echo "stopping leftover processes: $pids" >&2
    for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in $pids; do
        if ! gk_wait_gone 5 "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
}

# gk_show_logs DIR LINES: the last LINES lines of every *.log below DIR, on stderr.
gk_show_logs() {
    local f
    find "$1" -name '*.log' -type f | sort | while IFS= read -r f; do
        echo "==> $f (last $2 lines) <==" >&2
        tail -n "$2" "$f" >&2
    done
}

# gk_redis_start DIR PORT [redis-server args...]
# Starts redis-server on 127.0.0.1:PORT with its data, log (redis.log) and pid file in DIR and
# returns once it answers PING. Always with maxmemory-policy noeviction, Redis's default but said
# here: the server and the worker refuse a Redis that may evict keys (queues). Fails (after printing the log tail) if it exits, e.g. because
# the port is taken; retrying with another port is the caller's business.
gk_redis_start() {
    local dir=$1 port=$2 pid n
    shift 2
    # Callers often run us inside `if`, where set -e is off: check every step.
    mkdir -p "$dir" && dir=$(cd "$dir" && pwd -P) || return 1
    if gk_redis_running "$dir"; then
        gk_err "a redis-server for $dir is already running (pid $(cat "$dir/redis.pid")); stop it first"
        return 1
    fi
    rm -f "$dir/redis.pid"
    echo "$port" >"$dir/redis.port" || return 1
    # Backgrounded, not daemonized, so we know its pid at once and notice when it dies. setsid:
    # a Ctrl-C in the terminal must not reach it (redis shuts down on SIGINT); our callers stop
    # it. Without job control the child is no group leader, so setsid execs without forking and
    # $! is redis itself (the process_id check below would notice otherwise).
    # stdout goes to the log too, for errors printed before redis opens its logfile (both append).
    # shellcheck disable=SC2094
    setsid redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --pidfile "$dir/redis.pid" \
        --logfile "$dir/redis.log" --daemonize no --maxmemory-policy noeviction "$@" \
        </dev/null >>"$dir/redis.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/redis.pid"
    n=100 # 10 s; loading a large AOF in `make run` can take a while
    while :; do
        if ! gk_alive "$pid"; then
            gk_err "redis-server on port $port exited during startup; end of $dir/redis.log:"
            tail -n 5 "$dir/redis.log" >&2 || true
            rm -f "$dir/redis.pid"
            return 1
        fi
        # Ask for process_id so a different redis already on this port does not fool us.
        if redis-cli -h 127.0.0.1 -p "$port" info server 2>/dev/null | tr -d '\r' |
            grep -qx "process_id:$pid"; then
            return 0
        fi
        n=$((n - 1))
        if [ "$n" -le 0 ]; then
            gk_err "redis-server on port $port did not answer within 10 s; see $dir/redis.log"
            kill -KILL "$pid" 2>/dev/null || true
            rm -f "$dir/redis.pid"
            return 1
        fi
        sleep 0.1
    done
}

# gk_redis_cluster_node_start DIR PORT BUS: a Redis Cluster node on 127.0.0.1:PORT (cluster bus on
# BUS) with its files in DIR, as gk_redis_start; nodes.conf in DIR keeps its place in the cluster
# across a stop and start. Fails over after 1 s; with cluster-require-full-coverage no, the
# other masters keep serving while one of them is down.
gk_redis_cluster_node_start() {
    gk_redis_start "$1" "$2" --save '' --appendonly no --cluster-enabled yes \
        --cluster-config-file nodes.conf --cluster-port "$3" --cluster-node-timeout 1000 \
        --cluster-require-full-coverage no --cluster-replica-validity-factor 0
}

# gk_redis_cluster_wait_ok PORT...: waits (30 s at most) until every node says cluster_state:ok.
gk_redis_cluster_wait_ok() {
    local p i
    for p in "$@"; do
        i=0
        until redis-cli -p "$p" cluster info 2>/dev/null | tr -d '\r' | grep -qx 'cluster_state:ok'; do
            i=$((i + 1))
            if [ "$i" -gt 300 ]; then
                gk_err "cluster node $p not ok after 30 s"
                return 1
            fi
            sleep 0.1
        done
    done
}

# gk_redis_stop DIR
# Stops the redis-server started by gk_redis_start DIR. SHUTDOWN SAVE writes dump.rdb even with
# --save '', so a later gk_redis_start on the same DIR has the same data (the tests' outage
# helper relies on this). Falls back to signals if that fails. No-op if it is not running.
gk_redis_stop() {
    local dir=$1 pid port
    [ -f "$dir/redis.pid" ] || return 0
    pid=$(cat "$dir/redis.pid")
    port=$(cat "$dir/redis.port" 2>/dev/null || echo 0)
    if gk_redis_alive "$pid"; then
        redis-cli -h 127.0.0.1 -p "$port" shutdown save >/dev/null 2>&1 || true
        if ! gk_wait_gone 10 "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            if ! gk_wait_gone 5 "$pid"; then
                gk_err "redis-server pid $pid ignored SIGTERM; killing it"
                kill -KILL "$pid" 2>/dev/null || true
                gk_wait_gone 5 "$pid" || true
            fi
        fi
    fi
    rm -f "$dir/redis.pid"
}

# Runs a PostgreSQL server program as the user owning the cluster: as root that is
# $GK_PG_USER through runuser (initdb and postgres refuse root), otherwise ourselves. Runs in
# / so the user does not complain about an unreadable current directory.
gk_pg_as() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u "$GK_PG_USER" -- "$@")
    else
        (cd / && "$@")
    fi
}

# As root: make sure the unprivileged user exists (the Debian postgresql package creates it;
# a minimal container may not have it).
gk_pg_ensure_user() {
    [ "$(id -u)" -eq 0 ] || return 0
    if ! id -u "$GK_PG_USER" >/dev/null 2>&1; then
        useradd --system --user-group --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin "$GK_PG_USER"
    fi
}

# gk_pg_running DATADIR: true if a PostgreSQL server runs on DATADIR.
gk_pg_running() {
    local bindir
    [ -f "$1/postmaster.pid" ] || return 1
    bindir=$(gk_pg_bindir) || return 1
    gk_pg_as "$bindir/pg_ctl" -D "$1" status >/dev/null 2>&1
}

# gk_pg_start DATADIR PORT [FSYNC]
# Creates a cluster in DATADIR if it has none (superuser "gatekeeper", trust auth, UTF8),
# starts it on 127.0.0.1:PORT with its socket in DATADIR and its log in DATADIR/postgres.log,
# waits until it accepts connections and creates database "gatekeeper" if missing.
# FSYNC is "on" (default) or "off"; use off only for throwaway test clusters.
gk_pg_start() {
    local dir=$1 port=$2 fsync=${3:-on} bindir opts sock out initopts=""
    case "$fsync" in
    on | off) ;;
    *)
        gk_err "gk_pg_start: FSYNC must be on or off, not '$fsync'"
        return 1
        ;;
    esac
    bindir=$(gk_pg_bindir) || return 1
    gk_pg_ensure_user || return 1
    # Callers often run us inside `if`, where set -e is off: check every step.
    mkdir -p "$dir" && dir=$(cd "$dir" && pwd -P) || return 1
    # The socket path must fit in sun_path (107 bytes).
    sock="$dir/.s.PGSQL.$port"
    if [ "${#sock}" -gt 107 ]; then
        gk_err "path too long for the PostgreSQL socket: $sock; use a shorter directory"
        return 1
    fi
    if [ "$(id -u)" -eq 0 ]; then
        chown "$GK_PG_USER:" "$dir" && chmod 700 "$dir" || return 1
        if ! runuser -u "$GK_PG_USER" -- test -r "$dir" -a -w "$dir" -a -x "$dir"; then
            gk_err "user $GK_PG_USER cannot reach $dir: every parent directory must be" \
                "searchable by others (chmod o+x on it), or put the checkout somewhere else"
            return 1
        fi
    fi
    if [ ! -f "$dir/PG_VERSION" ]; then
        # The data of a throwaway cluster need not reach the disk.
        if [ "$fsync" = off ]; then initopts="--no-sync"; fi
        # --locale=C: works whatever locales the machine has generated.
        # shellcheck disable=SC2086 # initopts is empty or one word
        if ! out=$(gk_pg_as "$bindir/initdb" -D "$dir" -A trust -U gatekeeper -E UTF8 --locale=C \
            $initopts 2>&1); then
            gk_err "initdb failed for $dir:"
            echo "$out" >&2
            return 1
        fi
    fi
    if gk_pg_running "$dir"; then
        gk_err "a PostgreSQL server already runs on $dir ($(head -n 1 "$dir/postmaster.pid" 2>/dev/null));" \
            "stop it: runuser -u $GK_PG_USER -- $bindir/pg_ctl -D $dir -m fast stop"
        return 1
    fi
    opts="-p $port -c listen_addresses=127.0.0.1 -k $dir -c fsync=$fsync"
    if ! gk_pg_as "$bindir/pg_ctl" -w -t 60 -D "$dir" -l "$dir/postgres.log" -o "$opts" start \
        >/dev/null 2>&1; then
        gk_err "PostgreSQL on port $port did not start; end of $dir/postgres.log:"
        tail -n 5 "$dir/postgres.log" >&2 || true
        return 1
    fi
    if ! gk_psql "postgresql://gatekeeper@127.0.0.1:$port/postgres" -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'gatekeeper'" | grep -qx 1; then
        gk_psql "postgresql://gatekeeper@127.0.0.1:$port/postgres" -qc 'CREATE DATABASE gatekeeper'
    fi
}

# gk_pg_stop DATADIR
# Stops the cluster in DATADIR (fast mode: disconnects clients), as the user who owns it.
# No-op if it is not running. Falls back to immediate mode if fast mode times out.
gk_pg_stop() {
    local dir=$1 bindir
    [ -f "$dir/postmaster.pid" ] || return 0
    bindir=$(gk_pg_bindir) || return 1
    if [ "$(id -u)" -eq 0 ]; then
        # Run as the cluster's owner, whatever GK_PG_USER says now.
        local GK_PG_USER
        GK_PG_USER=$(stat -c %U "$dir") || return 1
    fi
    if ! gk_pg_as "$bindir/pg_ctl" -D "$dir" -m fast -w -t 30 stop >/dev/null 2>&1; then
        gk_pg_as "$bindir/pg_ctl" -D "$dir" status >/dev/null 2>&1 || return 0
        gk_err "PostgreSQL on $dir did not stop in fast mode; using immediate mode"
        gk_pg_as "$bindir/pg_ctl" -D "$dir" -m immediate -w -t 30 stop >/dev/null
    fi
}

# psql of the same major version as the server, ignoring ~/.psqlrc, quiet about NOTICEs
# (idempotent SQL says "already exists, skipping" a lot).
gk_psql() {
    local url=$1 bindir psql=psql
    shift
    bindir=$(gk_pg_bindir 2>/dev/null) || bindir=""
    if [ -n "$bindir" ] && [ -x "$bindir/psql" ]; then psql=$bindir/psql; fi
    PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning" PGCONNECT_TIMEOUT=10 \
        "$psql" -X -v ON_ERROR_STOP=1 -d "$url" "$@"
}

# gk_apply_sql URL
# Applies every sql/*.sql in lexical order; the files are idempotent, so this runs on every
# start. Does nothing if sql/ has no .sql files.
gk_apply_sql() {
    local url=$1 f
    for f in "$GK_ROOT"/sql/*.sql; do
        [ -e "$f" ] || continue
        if ! gk_psql "$url" -q -f "$f"; then
            gk_err "applying $f failed"
            return 1
        fi
    done
}
