#!/usr/bin/env bash
# run.sh -- browser end-to-end tests: `make test-e2e` runs tests/e2e/run.sh BUILD_DIR.
#
# Installs what is missing (Chromium, nginx, Node.js and npm through scripts/install-deps --e2e;
# playwright-core from package-lock.json with npm ci, only when the lock file changed), then runs
# e2e.mjs inside scripts/with-services, which provides a throwaway Redis and PostgreSQL and stops
# every process left behind. e2e.mjs starts the server, the worker, the example backends and nginx
# itself: nginx's configuration is the example's with the ports it picks for them. Screenshots go
# to tests/artifacts/ (gitignored). The last line printed is "N passed, N failed" (also in
# tests/artifacts/summary.txt); the exit status is 0 only when nothing failed.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/../.." && pwd -P)
BUILD=$(cd "$1" && pwd -P)
E2E=$ROOT/tests/e2e

"$ROOT/scripts/install-deps" --e2e
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
    echo "run.sh: playwright-core needs Node.js 20 or later; this is $(node --version)" >&2
    exit 1
fi
# npm ci leaves a copy of the lock file it installed from, so an unchanged lock costs nothing.
if ! cmp -s "$E2E/package-lock.json" "$E2E/node_modules/.gk-installed-lock" 2>/dev/null; then
    (cd "$E2E" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$E2E/package-lock.json" "$E2E/node_modules/.gk-installed-lock"
fi

export GK_E2E_ARTIFACTS="$ROOT/tests/artifacts"
GK_E2E_NGINX=$(command -v nginx || echo /usr/sbin/nginx)
export GK_E2E_NGINX
export GK_E2E_CHROMIUM=${GK_E2E_CHROMIUM:-/usr/bin/chromium}
rm -f "$GK_E2E_ARTIFACTS/summary.txt"
rc=0
(cd "$ROOT" && "$ROOT/scripts/with-services" --redis --pg --build "$BUILD" --name e2e --keep-on-failure \
    -- node "$E2E/e2e.mjs") || rc=$?
# On failure the harness prints the servers' logs after the tests: repeat the count at the end.
if [ "$rc" -ne 0 ]; then
    cat "$GK_E2E_ARTIFACTS/summary.txt" 2>/dev/null || echo "0 passed, 1 failed (the run did not finish)"
fi
exit "$rc"
