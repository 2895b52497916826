#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""driver.py -- the FAULTS suite: load, faults and checks (run by tests/faults/run.sh).

run.sh provides Redis (AOF everysec) and PostgreSQL on loopback (through scripts/with-services)
and a ctl helper (tests/faults/ctl) to kill, shut down and restart them; this driver starts the API servers and workers itself, drives a
flash crowd of asyncio clients at them (raw HTTP/1.1 keep-alive, standard library only) and
checks what must hold after each fault, from the clients' answers, from Redis and from the
activity log in PostgreSQL:

  crash-storm        two API servers and two workers SIGKILLed and restarted every few
                     hundred ms while thousands of users join and poll
  redis-kill         redis-server SIGKILLed under load, down 2 s, started again
  redis-power-loss   the same, with the AOF cut back to its size of a second before the kill:
                     what a machine crash leaves when the last fsync was a second ago
  redis-shutdown     the same with a graceful SHUTDOWN
  postgres-outage    PostgreSQL stopped under load for 5 s, started again

Each phase has its own business, prints what it measured as "faults: <phase>: ..." lines and
ends the run with exit status 1 and the list of violations when an invariant fails. Clients act
as web/gatekeeper.js does (retry the same user id after a network error or a 503), with the
backoff scaled down (50 ms doubling to 1 s) so that the test stays short.

The parts: helpers.py (the settings run.sh passes, a phase's violations, the Redis and PostgreSQL
readers, the ctl helper, the processes under test, the HTTP client and the admin calls), crowd.py
(the flash crowd and the checks after a fault) and phases.py (the phases); this file runs the
phases in order and cleans up.
"""
import asyncio
import signal
import sys

from helpers import Failed, Proc, REDIS_PORT, Redis, now, say, wait_healthy
from phases import crash_storm, pg_outage, redis_restart


# ---- main ----


async def main():
    r = Redis(REDIS_PORT)
    t0 = now()
    await crash_storm(r)
    apis = [Proc("api", "api")]
    workers = [Proc("worker", "worker")]
    for p in apis + workers:
        p.start()
    await wait_healthy(apis)
    lost_kill = await redis_restart(r, apis, workers, "kill")
    lost_power = await redis_restart(r, apis, workers, "power-loss")
    await redis_restart(r, apis, workers, "shutdown")
    await pg_outage(r, apis, workers)
    for p in apis + workers:
        p.stop()
    say(f"all phases passed in {now() - t0:.0f} s (acknowledged joins lost: {lost_kill} to a Redis "
        f"SIGKILL, {lost_power} to a simulated power loss, none to a SHUTDOWN)")


def on_term(sig, frame):
    raise SystemExit(128 + sig)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_term)
    try:
        asyncio.run(main())
    except Failed as e:
        say(f"FAILED: {e}")
        sys.exit(1)
    finally:
        for proc in Proc.all:
            proc.kill()
