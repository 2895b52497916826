#!/usr/bin/env bash
# run.sh -- integration test harness: `make test-integration` runs tests/integration/run.sh BUILD_DIR.
# Usage: run.sh BUILD_DIR [COMMAND [ARGS...]]   (default command: BUILD_DIR/it-tests)
#
# Runs the command from the top of the checkout inside scripts/with-services, which starts a
# throwaway redis-server and PostgreSQL on free 127.0.0.1 ports in a temporary directory, applies
# sql/, exports GK_TEST_BUILD, GK_TEST_REDIS_URL, GK_TEST_DATABASE_URL, GK_TEST_TMP, GK_TEST_PGCTL,
# GK_TEST_REDISCTL and the rest (see there), and tears it all down, also every process the tests
# left behind. Never skips: a server that cannot start fails the run. Exit status is the
# command's status (1 if setup failed). On failure the temporary directory is kept and its logs'
# tails printed. GK_TEST_WRAPPER and CK_TIMEOUT_MULTIPLIER (`make valgrind`) pass through.
# GK_IT_CLUSTER=1 (`make test-cluster`): a Redis Cluster of 3 masters + 3 replicas instead of the
# one Redis; the servers the tests start get REDIS_CLUSTER_NODES.
set -eu

if [ $# -lt 1 ]; then
    echo "usage: $0 BUILD_DIR [COMMAND [ARGS...]]" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/../.." && pwd -P)
BUILD=$(cd "$1" && pwd -P)
shift
if [ $# -eq 0 ]; then set -- "$BUILD/it-tests"; fi
if [ "$1" = "$BUILD/it-tests" ] && [ ! -x "$1" ]; then
    echo "run.sh: $1 not found; build it with: make $1" >&2
    exit 1
fi
cd "$ROOT"
REDIS=--redis
if [ "${GK_IT_CLUSTER:-0}" = 1 ]; then REDIS=--redis-cluster; fi
exec "$ROOT/scripts/with-services" "$REDIS" --pg --build "$BUILD" --name it --keep-on-failure -- "$@"
