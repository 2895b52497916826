#!/usr/bin/env bash
# run.sh -- the FAULTS suite: `make test-faults` runs tests/faults/run.sh BUILD_DIR.
#
# Crashes and outages during a flash crowd, on loopback, with real servers: API servers and
# workers killed with SIGKILL again and again; Redis (AOF everysec, as `make run` and
# docker-compose configure it) killed, killed with its AOF cut back by a second (a power loss),
# and shut down, under load; PostgreSQL stopped under load. The load and every check are in
# driver.py and the modules it imports (helpers.py, crowd.py, phases.py; Python 3 standard library
# only); this script provides the services. docs/FAILURES.md explains what each phase shows and
# what it measured. About 90 s.
#
# Runs itself again inside scripts/with-services --redis-aof --low-ports, which starts
# redis-server (AOF everysec) and PostgreSQL on free 127.0.0.1 ports below the ephemeral range
# (the driver restarts them on the same ports again and again) in a temporary directory, and
# afterwards stops every process it or the driver started. There the driver runs with the ctl
# helper tests/faults/ctl, its handle on the services. Never skips: a missing binary or a server
# that cannot start fails the run. Exit status: the driver's (1 when an invariant was violated),
# 1 if setup failed. On failure the temporary directory is kept and the tails of its logs are
# printed.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/../.." && pwd -P)
BUILD_DIR=$(cd "$1" && pwd -P)

if [ "${GK_SERVICES_PID:-}" != "$$" ]; then
    for b in gatekeeper gatekeeper-worker gk-bench-tokens; do
        if [ ! -x "$BUILD_DIR/$b" ]; then
            echo "faults: $BUILD_DIR/$b not found; build it with: make BUILD=$1 all $1/gk-bench-tokens" >&2
            exit 1
        fi
    done
    exec "$ROOT/scripts/with-services" --redis --redis-aof --pg --low-ports --build "$BUILD_DIR" \
        --name faults --keep-on-failure -- "$ROOT/tests/faults/run.sh" "$BUILD_DIR"
fi

GKF_BUILD=$BUILD_DIR GKF_TMP=$GK_TEST_TMP GKF_CTL=$ROOT/tests/faults/ctl GKF_REDIS_PORT=$GK_TEST_REDIS_PORT \
    GKF_DB=$GK_TEST_DATABASE_URL exec python3 "$ROOT/tests/faults/driver.py"
