# SPDX-License-Identifier: MIT
"""phases.py -- the FAULTS suite's phases, each a fault under load and the checks after it:
crash-storm, redis-kill / redis-power-loss / redis-shutdown, postgres-outage (see driver.py and
docs/FAILURES.md). Imported by driver.py."""
import asyncio
import os
import random
import socket
import time

from crowd import Crowd, check_state, freeze, pct, snapshot
from helpers import (AOF_WINDOW, HEALTH_LAG, Http, NetError, OPEN_LIMITS, Phase, Proc, REQ_TIMEOUT, TMP, actl,
                     new_business, now, psql, wait_healthy)


# ---- phase 1: crash storm ----


async def crash_storm(r):
    ph = Phase("crash-storm")
    n, rate, storm_s = 3000, 250.0, 15.0
    apis = [Proc("api", "storm-api-a"), Proc("api", "storm-api-b")]
    workers = [Proc("worker", "storm-worker-a"), Proc("worker", "storm-worker-b")]
    for p in apis + workers:
        p.start()
    await wait_healthy(apis)
    ports = [p.port for p in apis]
    biz = await new_business("storm", ports, dict(OPEN_LIMITS, admission_limit=30, admission_frequency=1))
    # Pollers all along the line: early ones get admitted during the run, later ones wait.
    crowd = Crowd(ph, biz, ports, n, rate, pollers=range(0, n, 20))
    kills = {"api": 0, "worker": 0}
    orphaned = 0  # activity events a killed worker had read but not acknowledged
    stream = "gk:{%s}:events" % biz
    storming = True
    # A slower activity write (20 ms per batch) keeps each consumer mostly between reading a
    # batch and acknowledging it, so that the kills land there too, not only while it waits.
    psql("CREATE OR REPLACE FUNCTION faults_slow() RETURNS trigger LANGUAGE plpgsql AS "
         "$$ BEGIN PERFORM pg_sleep(0.02); RETURN NULL; END $$; "
         "DROP TRIGGER IF EXISTS faults_slow ON activity_log; "
         "CREATE TRIGGER faults_slow AFTER INSERT ON activity_log "
         "FOR EACH STATEMENT EXECUTE FUNCTION faults_slow()")

    async def killer():
        nonlocal orphaned
        while storming:
            await asyncio.sleep(random.uniform(0.2, 0.5))
            for group in (apis, workers):
                victim = random.choice(group)
                for p in group:
                    p.check_alive(ph)  # a crash that we did not cause
                pid = victim.pid()
                victim.kill()
                victim.start()
                kills[victim.kind] += 1
                if victim.kind == "worker" and pid:
                    # The consumer is named host-pid (workers/activity.c).
                    pend = r.cmd("XPENDING", stream, "gk-activity", "-", "+", 10000,
                                 f"{socket.gethostname()}-{pid}")
                    orphaned += len(pend or [])

    ph.say(f"{n} users of {biz} join at {rate:.0f}/s through 2 API servers, {len(crowd.pollers)} "
           f"of them poll; 2 workers admit 30/s; a random server and a random worker are "
           f"SIGKILLed and restarted every 0.2-0.5 s")
    k = asyncio.ensure_future(killer())
    polls = await crowd.run_joins()
    while now() - crowd.start < storm_s:
        await asyncio.sleep(0.1)
    storming = False
    await k
    storm_end = now()
    psql("DROP TRIGGER faults_slow ON activity_log")
    for p in apis + workers:
        p.check_alive(ph)
    # The storm is over: every process is up again; polls go on a little against a calm system.
    await wait_healthy(apis)
    await asyncio.sleep(2.0)
    await crowd.finish_polls(polls)
    await freeze(ports[0], biz)
    w, rd, stats, log = await snapshot(ph, r, biz)
    drain = now() - storm_end
    for p in apis + workers:
        p.check_alive(ph)
        p.stop()
    # Entries that a killed consumer had read but not acknowledged, written by another one.
    claimed = 0
    for p in workers:
        with open(p.log.name, errors="replace") as f:
            for line in f:
                if "claimed events of a stopped consumer" in line:
                    claimed += int(line.rsplit("count=", 1)[1].split()[0])
    consumers = len(r.cmd("XINFO", "CONSUMERS", "gk:{%s}:events" % biz, "gk-activity"))

    check_state(ph, crowd, w, rd, stats, log)
    crowd.check_sequences()
    admitted = sum(1 for u in log.values() if u.get("admit"))
    ph.check(admitted == stats.get("admitted_total", 0) and admitted == len(rd),
             f"admit rows for {admitted} users, admitted_total {stats.get('admitted_total')}, "
             f"{len(rd)} ready")
    ph.check(stats.get("enqueued_total") == n, f"enqueued_total {stats.get('enqueued_total')}, not {n}")
    c = crowd.counts()
    crowd.check_503s()
    net = sum(v for (_, s), v in c.items() if s in ("net", "timeout"))
    timeouts = sum(v for (_, s), v in c.items() if s == "timeout")
    ph.check(timeouts == 0, f"{timeouts} requests hung for {REQ_TIMEOUT:.0f} s")
    odd = {k_: v for k_, v in c.items() if k_[1] not in (200, 503, "net", "timeout")}
    ph.check(not odd, f"unexpected answers {odd}")
    # The storm must have been one: enough kills, and enough of them with work in flight.
    ph.check(kills["api"] >= 15 and kills["worker"] >= 15, f"only {kills} kills")
    ph.check(net >= 50, f"only {net} requests were cut by a crash: the storm missed the load")
    ph.check(admitted >= 100, f"only {admitted} users admitted during the storm")
    ph.check(orphaned > 0, "no worker was killed between reading and acknowledging events")
    waiting_seen = sum(1 for s in crowd.seqs.values() for x in s if x[1] == "waiting")
    ready_seen = sum(1 for s in crowd.seqs.values() if s[-1][1] == "ready")
    ph.say(f"{kills['api']} API server and {kills['worker']} worker SIGKILLs in "
           f"{storm_end - crowd.start:.1f} s; {sum(c.values())} requests: "
           f"{sum(v for (_, s), v in c.items() if s == 200)} answered 200, "
           f"{sum(v for (_, s), v in c.items() if s == 503)} 503 unavailable (a node still starting), "
           f"{net} refused or cut by a crash, all retried")
    ph.say(f"{len(crowd.acks)}/{n} joins acknowledged, {crowd.token_lost()} of them only on a retry "
           f"after the first answer was lost (already queued, no token: token_lost); "
           f"{len(w)} waiting + {len(rd)} ready = {len(w) + len(rd)}, none in both, none lost")
    ph.say(f"activity log: {sum(u.get('enqueue', 0) for u in log.values())} enqueue rows (one per "
           f"user), {admitted} admit rows (at most one per user, exactly the ready ones); "
           f"complete {drain:.1f} s after the last kill")
    ph.say(f"{orphaned} events were read but not yet acknowledged by a worker when it was killed; "
           f"live workers logged claiming {claimed} such events (after 10 s idle), each written once; "
           f"{consumers} consumer names, one per worker process that ever ran, stay in the group")
    ph.say(f"{len(crowd.seqs)} pollers, {crowd.observations()} observations ({waiting_seen} while "
           f"waiting, {ready_seen} pollers ended ready): no position ever went back")
    ph.end()


# ---- phases 2 to 4: Redis killed, killed with a power loss, shut down, under load ----


def aof_incr_file():
    """The AOF file Redis appends to (Redis 7 multi-part AOF: the last incr file of the manifest)."""
    d = os.path.join(TMP, "redis", "appendonlydir")
    with open(os.path.join(d, "appendonly.aof.manifest")) as f:
        incr = [line.split()[1] for line in f if line.split()[-1] == "i"]
    return os.path.join(d, incr[-1])


async def redis_restart(r, apis, workers, mode):
    """mode: "kill" (SIGKILL), "power-loss" (SIGKILL, and the AOF cut back to its size of
    1 s earlier: what a machine crash leaves when the last fsync was a second ago), or
    "shutdown" (SHUTDOWN, which fsyncs the AOF)."""
    ph = Phase(f"redis-{mode}")
    ports = [p.port for p in apis]
    pids = [p.pid() for p in apis + workers]
    biz = await new_business(f"redis-{mode}", ports,
                             dict(OPEN_LIMITS, admission_limit=10, admission_frequency=1))
    n, rate = 1200, 150.0
    crowd = Crowd(ph, biz, ports, n, rate, pollers=range(0, n, 30))
    k = "gk:{%s}:" % biz
    down_s = 1.0 if mode == "shutdown" else 2.0
    how = {"kill": "SIGKILLed", "power-loss": "SIGKILLed and its AOF cut back by 1 s",
           "shutdown": "shut down (SHUTDOWN)"}[mode]
    ph.say(f"{n} users of {biz} join at {rate:.0f}/s, {len(crowd.pollers)} poll, 10 admitted/s; "
           f"after 3 s Redis is {how}, down {down_s:.0f} s")
    # Redis rewrites the AOF (a new incr file) only past 64 MB; this run stays far below.
    aof = aof_incr_file()
    sizes = []  # (time, AOF size)
    cut = {}
    fault_wall = []  # wall-clock time of the fault, to compare with the activity log

    async def fault():
        t_end = now() + 3.0
        while now() < t_end:
            sizes.append((now(), os.path.getsize(aof)))
            await asyncio.sleep(0.02)
        before = int(r.cmd("HGET", k + "stats", "ticks_total") or 0)
        t_fault = now()
        fault_wall.append(time.time())
        await actl("redis-shutdown" if mode == "shutdown" else "redis-kill")
        r.close()
        t_down = now()
        if mode == "power-loss":
            t_keep, size = max((x for x in sizes if x[0] <= t_fault - 1.0), default=sizes[0])
            cut.update(keep=t_keep, bytes=os.path.getsize(aof) - size)
            os.truncate(aof, size)
        await asyncio.sleep(down_s)
        t_start = now()
        await actl("redis-start")
        return before, t_fault, t_down, t_start, now()

    f = asyncio.ensure_future(fault())
    polls = await crowd.run_joins()
    ticks_before, t_fault, t_down, t_start, t_up = await f
    wall = fault_wall[0]
    while now() < t_up + 4.0:
        await asyncio.sleep(0.1)
    await crowd.finish_polls(polls)
    ticks_after = int(r.cmd("HGET", k + "stats", "ticks_total") or 0)
    for p in apis + workers:
        p.check_alive(ph)
    ph.check([p.pid() for p in apis + workers] == pids, "a server or worker was restarted")
    t_end = now()
    await freeze(ports[0], biz)
    w, rd, stats, log = await snapshot(ph, r, biz)
    drain = now() - t_end

    # Answers: 200, or 503 unavailable with a JSON body and Retry-After; never a network error
    # (a crashed server) or a hang.
    bad = [a for a in crowd.answers if a[3] not in (200, 503)]
    for a in bad[:10]:
        ph.fail(f"{a[2]} answered {a[3]} ({a[4]}) at t={a[0] - crowd.start:.2f} s")
    e503 = crowd.check_503s()
    lat = [a[1] - a[0] for a in e503]
    ph.check(len(e503) >= 10, f"only {len(e503)} 503 answers: the outage was not seen")
    # The contract's 2 s command deadline, plus 0.5 s for a loaded machine.
    ph.check(max(lat, default=0) < 2.5, f"a 503 took {max(lat, default=0):.2f} s (deadline 2 s)")
    first_ok = min((a[1] for a in crowd.answers if a[3] == 200 and a[0] > t_up), default=None)
    last_503 = max((a[1] for a in e503), default=t_up)
    ph.check(first_ok is not None and first_ok - t_up < 5.0, "no 200 within 5 s of the restart")
    ph.check(last_503 - t_up < 10.0, f"503 answers {last_503 - t_up:.1f} s after the restart")
    ph.check(ticks_after > ticks_before, "the worker did not tick again after the restart")

    # What may be lost: nothing after a SHUTDOWN; after a crash, at most what was acknowledged
    # within the everysec window before it. Redis writes the AOF before it answers, so a crash
    # of the process alone normally loses nothing; a power loss loses what was not fsynced.
    window = {u for u, (t_, _) in crowd.acks.items() if t_ >= t_fault - AOF_WINDOW}
    lost_ok, extra = (set() if mode == "shutdown" else window), {}
    if mode != "shutdown":
        # The activity log keeps the events of a lost second that the worker had written:
        # users admitted then are waiting again and are admitted a second time; a join whose
        # answer the crash cut off is retried and recorded again.
        lo, hi = wall - AOF_WINDOW, wall + (t_down - t_fault)
        for u, event, n in psql(
                f"SELECT user_id, event, count(*) FROM activity_log WHERE business_id = '{biz}' "
                f"AND created_at BETWEEN to_timestamp({lo}) AND to_timestamp({hi}) GROUP BY 1, 2"):
            extra.setdefault(u, {})[event] = int(n)
    lost = check_state(ph, crowd, w, rd, stats, log, lost_ok=lost_ok, extra=extra)
    back = crowd.check_sequences(allow_not_found=lost, rollback_at=None if mode == "shutdown" else t_fault)
    twice = sum(1 for u in log.values() if u.get("admit", 0) > 1)
    rejoined = sum(1 for u in log.values() if u.get("enqueue", 0) > 1)
    orphans = sum(1 for u in lost if log.get(u))
    in_window = len(window - {u for u, (t_, _) in crowd.acks.items() if t_ >= t_fault})
    if mode == "power-loss":
        ph.check(lost, "nothing was lost: the AOF cut did not take")
    ph.say(f"{len(e503)} answers were 503 unavailable (JSON, Retry-After), latency max "
           f"{max(lat, default=0) * 1000:.0f} ms, p50 {pct(lat, 0.5) * 1000:.0f} ms; no other error, "
           f"server and worker never restarted")
    ph.say(f"Redis down {t_up - t_down:.1f} s ({'SHUTDOWN' if mode == 'shutdown' else 'SIGKILL'} took "
           f"{(t_down - t_fault) * 1000:.0f} ms, the restart {(t_up - t_start) * 1000:.0f} ms to answer); "
           f"first 200 {(first_ok or t_up) - t_start:.2f} s and last 503 {max(0.0, last_503 - t_start):.2f} "
           f"s after the restart began; worker ticks resumed")
    if mode == "power-loss":
        ph.say(f"the AOF lost its last {cut['bytes']} bytes (written {t_fault - cut['keep']:.2f} s "
               f"before the kill and later)")
    ph.say(f"{len(crowd.acks)} joins acknowledged, {in_window} of them in the {AOF_WINDOW:.0f} s before "
           f"the fault; lost: {len(lost)}"
           + (f" (all acknowledged in the last {max(t_fault - crowd.acks[u][0] for u in lost):.2f} s "
              f"before the kill; {orphans} still have their enqueue row in the activity log)"
              if lost else "")
           + f"; {crowd.token_lost()} joins acknowledged only on a retry (token_lost)")
    if mode != "shutdown":
        ph.say(f"{twice} users admitted in the lost second were admitted again, {rejoined} whose join "
               f"was lost with its answer joined again (two rows each in the log); {back} pollers saw "
               f"their place go back (or ready turn to waiting) across the crash")
    ph.say(f"activity log complete {drain:.1f} s after the load (2.5 s of it waiting for the "
           f"freeze): {len(w) + len(rd)} users, one enqueue row each"
           + (f" but for the {rejoined} above" if rejoined else "") + f", {len(rd)} admitted, once each"
           + (f" but for the {twice} above" if twice else ""))
    ph.end()
    return len(lost)


# ---- phase 5: PostgreSQL outage ----


async def pg_outage(r, apis, workers):
    ph = Phase("postgres-outage")
    ports = [p.port for p in apis]
    pids = [p.pid() for p in apis + workers]
    biz = await new_business("pg", ports, dict(OPEN_LIMITS, admission_limit=10, admission_frequency=1))
    n, rate = 1200, 120.0
    # Every one of the first 100 polls, so that many are admitted, verified and finished.
    crowd = Crowd(ph, biz, ports, n, rate, pollers=set(range(100)) | set(range(0, n, 20)),
                  poll_when_ready=False)
    k = "gk:{%s}:" % biz
    verified, finished = {}, {}
    health = []  # (sent, answered, status, postgres, redis)
    backlog = []  # (time, events of this business waiting in Redis)
    stop = False
    ph.say(f"{n} users of {biz} join at {rate:.0f}/s, {len(crowd.pollers)} poll, a backend verifies "
           f"and finishes the admitted ones; after 2 s PostgreSQL is stopped for 5 s")

    async def backend():
        # What a business backend does with an admitted user: verify, serve, finish.
        c = Http()
        while not (stop and crowd.ready_seen.empty()):
            try:
                i, tok = await asyncio.wait_for(crowd.ready_seen.get(), 0.2)
            except asyncio.TimeoutError:
                continue
            u, h = crowd.user(i), {"business_id": biz, "jwt": tok}
            rv = await crowd.req(c, ports[0], "GET", "/queue/verify", h, "verify")
            if ph.check(rv is not None and rv.status == 200 and rv.json.get("ready") is True,
                        f"verify {u}: {rv and rv.status} {rv and rv.body[:100]!r}"):
                verified[u] = verified.get(u, 0) + 1
            rf = await crowd.req(c, ports[0], "DELETE", "/queue/finish", h, "finish")
            if ph.check(rf is not None and rf.status == 200 and rf.json.get("status") == "ready_cleared",
                        f"finish {u}: {rf and rf.status} {rf and rf.body[:100]!r}"):
                finished[u] = finished.get(u, 0) + 1
        c.close()

    async def watch():
        c = Http()
        while not stop:
            t = now()
            try:
                h = await c.call(ports[0], "GET", "/health", {})
                j = h.json or {}
                health.append((t, now(), h.status, j.get("postgres"), j.get("redis")))
            except NetError as e:
                health.append((t, now(), "net", str(e), None))
            backlog.append((now(), int(r.cmd("XLEN", k + "events"))))
            await asyncio.sleep(0.2)
        c.close()

    async def fault():
        await asyncio.sleep(2.0)
        await actl("pg-stop")
        t_down = now()
        await asyncio.sleep(5.0)
        t_start = now()
        await actl("pg-start")
        return t_down, t_start, now()

    tasks = [asyncio.ensure_future(x()) for x in (backend, watch)]
    f = asyncio.ensure_future(fault())
    polls = await crowd.run_joins()
    t_down, t_start, t_up = await f
    while now() < t_up + 3.0:
        await asyncio.sleep(0.1)
    await crowd.finish_polls(polls)
    # Health must say healthy again before we stop watching it.
    for _ in range(150):
        if health and health[-1][2] == 200 and health[-1][0] > t_up:
            break
        await asyncio.sleep(0.1)
    stop = True
    await asyncio.gather(*tasks)
    for p in apis + workers:
        p.check_alive(ph)
    ph.check([p.pid() for p in apis + workers] == pids, "a server or worker was restarted")
    await freeze(ports[0], biz)
    w, rd, stats, log = await snapshot(ph, r, biz)
    caught_up = now() - t_up

    c = crowd.counts()
    bad = {k_: v for k_, v in c.items() if not (k_[1] == 200 or k_[1] == 429)}
    ph.check(not bad, f"queue traffic had errors: {bad}")
    # Every health check asked while PostgreSQL was surely down, and the monitor had seen it, says
    # so and names the culprit.
    during = [h for h in health if t_down + HEALTH_LAG <= h[0] and h[1] <= t_start]
    wrong = [h for h in during if not (h[2] == 503 and h[3] != "ok" and h[4] == "ok")]
    ph.check(len(during) >= 5 and not wrong, f"/health while PostgreSQL was down: {wrong[:3] or during}")
    back = min((h[1] for h in health if h[0] > t_up and h[2] == 200), default=None)
    ph.check(back is not None, "/health never said healthy again")
    backlog_max = max((b for _, b in backlog), default=0)
    ph.check(backlog_max > 100, f"only {backlog_max} events waited: the outage was not seen")
    # The backlog is drained when it is back to what the live load keeps in flight.
    drained = min((t for t, b in backlog if t > t_up and b <= 50), default=None)
    lat = {name: [a[1] - a[0] for a in crowd.answers if (t_down <= a[0] <= t_up) == name]
           for name in (True, False)}
    # The log is exactly what happened: one enqueue per user, one admit per admitted user (the
    # ready ones and those finished), and every verify and finish the backend made, once.
    check_state(ph, crowd, w, rd, stats, log)
    ph.check(all("finish" in log.get(u, {}) for u in finished), "a finish is missing from the log")
    crowd.check_sequences()
    for u in set(verified) | set(finished):
        ev = log.get(u, {})
        ph.check(ev.get("verify", 0) == verified.get(u, 0) and ev.get("finish", 0) == finished.get(u, 0),
                 f"{u}: log {ev}, but verified {verified.get(u, 0)}x, finished {finished.get(u, 0)}x")
    ph.check(log.get("") == {"business_created": 1, "config_change": 2},
             f"business rows {log.get('')}, expected its creation and 2 config changes")
    rows = sum(sum(e.values()) for u, e in log.items() if u)
    want = n + stats.get("admitted_total", 0) + sum(verified.values()) + sum(finished.values())
    ph.check(rows == want, f"{rows} activity rows, expected {want}")
    ph.check(stats.get("admitted_total", 0) == len(rd) + len(finished),
             f"admitted_total {stats.get('admitted_total')} != {len(rd)} ready + {len(finished)} finished")
    ph.say(f"{sum(c.values())} queue requests ({sum(v for (rt, _), v in c.items() if rt == 'enqueue')} "
           f"enqueue, {sum(v for (rt, _), v in c.items() if rt == 'status')} status, "
           f"{sum(verified.values())} "
           f"verify, {sum(finished.values())} finish): all answered 200, none failed")
    ph.say(f"queue latency p50/p99 while PostgreSQL was down {pct(lat[True], 0.5) * 1000:.0f}/"
           f"{pct(lat[True], 0.99) * 1000:.0f} ms, otherwise {pct(lat[False], 0.5) * 1000:.0f}/"
           f"{pct(lat[False], 0.99) * 1000:.0f} ms")
    ph.say(f"PostgreSQL down {t_up - t_down:.1f} s; /health said 503 (postgres not ok, redis ok) "
           f"all {len(during)} times asked from {HEALTH_LAG} s into it, and 200 again "
           f"{(back or t_up) - t_up:.2f} s after PostgreSQL was back")
    ph.say(f"up to {backlog_max} events waited in Redis; drained {(drained or now()) - t_up:.1f} s after "
           f"PostgreSQL was back; complete, with the last events of the load, {caught_up:.1f} s after: "
           f"{rows} rows, exactly the events that happened, each once")
    ph.end()
