# SPDX-License-Identifier: MIT
"""crowd.py -- the FAULTS suite's flash crowd (users joining and polling as web/gatekeeper.js
does, every answer recorded) and the checks after a fault: a consistent snapshot of Redis and the
activity log, and what must hold in it. Imported by phases.py; see driver.py."""
import asyncio
import random

from helpers import Failed, Http, NetError, activity, admin, now, tokens


# ---- the crowd ----


class Crowd:
    """Users u0..u(n-1) of one business arriving at `rate` per second, each joining (retrying the
    same user id until a 200) and, for the pollers, polling /queue/status every 250-400 ms (more
    often than poll_after_ms asks, for more observations) until stop_polls is set.

    Records every answer as (sent, answered, route, status or 'net'/'timeout', error code,
    Retry-After, json ok), every acknowledged join, and each poller's (time, state, position)."""

    def __init__(self, phase, biz, ports, n, rate, pollers, joiners=40, poll_when_ready=True):
        self.phase, self.biz, self.ports, self.n, self.rate = phase, biz, ports, n, rate
        self.poll_when_ready = poll_when_ready
        self.pollers = set(pollers)
        self.joiners = joiners
        self.toks = tokens(biz, n)
        self.answers = []
        self.acks = {}  # user -> (time, enqueue answer)
        self.seqs = {}  # user -> [(time, state, position)]
        self.ready_seen = asyncio.Queue()  # users a poll saw ready, for a backend
        self.stop_polls = False
        self.start = None
        self.joined = 0  # joins done, acknowledged or failed

    def user(self, i):
        return f"u{i}"

    async def req(self, c, port, method, path, headers, route):
        t0 = now()
        try:
            r = await c.call(port, method, path, headers)
        except NetError as e:
            self.answers.append((t0, now(), route, "timeout" if e.timeout else "net", str(e), None, False))
            return None
        self.answers.append((t0, now(), route, r.status, r.error(), r.headers.get("retry-after"),
                             isinstance(r.json, dict)))
        return r

    async def _retry(self, c, i, method, path, headers, route):
        """One call, again and again (to the other server after a failure) until it is answered
        with anything but a network error or a 503."""
        k, backoff = i, 0.05
        while True:
            r = await self.req(c, self.ports[k % len(self.ports)], method, path, headers, route)
            if r is not None and r.status != 503:
                return r
            k += 1
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, 1.0)

    async def join(self, c, i):
        u = self.user(i)
        r = await self._retry(c, i, "POST", "/queue/enqueue", {"business_id": self.biz, "user_id": u},
                              "enqueue")
        self.joined += 1
        if r.status != 200:
            self.phase.fail(f"enqueue {u} answered {r.status} {r.body[:200]!r}")
            return None
        self.acks[u] = (now(), r.json)
        return r.json

    async def poll(self, c, i, first):
        u, tok = self.user(i), self.toks[i]
        seq = self.seqs[u] = [(now(), "ready" if first.get("ready") else "waiting", first.get("position"))]
        told = False
        while not self.stop_polls:
            await asyncio.sleep(random.uniform(0.25, 0.4))
            r = await self._retry(c, i, "GET", "/queue/status", {"business_id": self.biz, "jwt": tok},
                                  "status")
            if r.status != 200 or not isinstance(r.json, dict):
                self.phase.fail(f"status of {u} answered {r.status} {r.body[:200]!r}")
                return
            tok = r.json.get("jwt_token") or tok
            seq.append((now(), r.json.get("state"), r.json.get("position")))
            if r.json.get("state") == "ready" and not told:
                told = True
                self.ready_seen.put_nowait((i, tok))
                if not self.poll_when_ready:
                    return  # waitUntilReady() resolves here

    async def _arrive(self, i):
        await asyncio.sleep(max(0.0, self.start + i / self.rate - now()))

    async def _joiner(self, j):
        c = Http()
        for i in range(j, self.n, self.joiners):
            if i in self.pollers:
                continue
            await self._arrive(i)
            await self.join(c, i)
        c.close()

    async def _poller(self, i):
        c = Http()
        await self._arrive(i)
        first = await self.join(c, i)
        if first is not None:
            await self.poll(c, i, first)
        c.close()

    async def run_joins(self):
        """Starts the pollers (returned, to be awaited after stop_polls) and returns once every
        user's join was acknowledged."""
        self.start = now()
        polls = [asyncio.ensure_future(self._poller(i)) for i in sorted(self.pollers)]
        await asyncio.gather(*(self._joiner(j) for j in range(self.joiners)))
        while self.joined < self.n:
            await asyncio.sleep(0.05)
        return polls

    async def finish_polls(self, polls):
        self.stop_polls = True
        await asyncio.gather(*polls)

    # -- what the answers say --

    def counts(self):
        out = {}
        for a in self.answers:
            out[(a[2], a[3])] = out.get((a[2], a[3]), 0) + 1
        return out

    def check_503s(self):
        """Every 503 is Gatekeeper's own: a JSON unavailable error with Retry-After."""
        e503 = [a for a in self.answers if a[3] == 503]
        for a in e503:
            if not (a[4] == "unavailable" and a[5] and a[6]):
                self.phase.fail(f"a 503 without a JSON unavailable body or Retry-After: {a}")
                break
        return e503

    def token_lost(self):
        """Joins whose first answer was lost: the retry found the user already queued and so
        carried no token (the real client rejects with "token_lost")."""
        return sum(1 for _, a in self.acks.values() if a.get("jwt") == "")

    def check_sequences(self, allow_not_found=(), rollback_at=None):
        """Each poller's positions never go up while waiting; ready never turns back into
        waiting; a user never vanishes (unless listed). With rollback_at (a Redis crash that
        lost writes), a step back between an answer before and one after that time is counted,
        not failed. Returns how many pollers saw such a step back."""
        back = set()
        for u, seq in self.seqs.items():
            for (t1, s1, p1), (t2, s2, p2) in zip(seq, seq[1:]):
                if (s1 == "waiting" and s2 == "waiting" and p2 > p1) or (s1 == "ready" and s2 == "waiting"):
                    if rollback_at is not None and t1 < rollback_at < t2:
                        back.add(u)
                    elif s1 == "ready":
                        self.phase.fail(f"{u}: was ready, then waiting again at position {p2}")
                    else:
                        self.phase.fail(f"{u}: position went back from {p1} to {p2}")
                elif s2 not in ("waiting", "ready") and u not in allow_not_found:
                    self.phase.fail(f"{u}: acknowledged, then status says {s2}")
        return len(back)

    def observations(self):
        return sum(len(s) for s in self.seqs.values())


async def snapshot(phase, r, biz, settle=60.0):
    """Waits until every activity event of the business is in PostgreSQL (its stream is empty:
    acknowledged entries are trimmed), then returns (wait, ready, stats, log) read so that no
    tick or write fell between the Redis and the PostgreSQL reads."""
    k = "gk:{%s}:" % biz
    deadline = now() + settle
    while True:
        w, rd, st, xlen = r.atomically(["ZRANGE", k + "wait", 0, -1], ["ZRANGE", k + "ready", 0, -1],
                                       ["HGETALL", k + "stats"], ["XLEN", k + "events"])
        if xlen == 0:
            log = activity(biz)
            st2, xlen2 = r.atomically(["HGETALL", k + "stats"], ["XLEN", k + "events"])
            if st2 == st and xlen2 == 0:
                stats = dict(zip(st[::2], st[1::2]))
                return set(w), set(rd), {k_: int(float(v)) for k_, v in stats.items()}, log
        if now() > deadline:
            raise Failed(f"{phase.name}: the activity log did not catch up within {settle:.0f} s "
                         f"({xlen} events still in Redis)")
        await asyncio.sleep(0.25)


GONE = ("finish", "leave", "expire", "evict")


def check_state(phase, crowd, w, rd, stats, log, lost_ok=(), extra=None):
    """What must hold in Redis and the activity log once the dust settled: every acknowledged
    user is waiting or ready, never both, or the log says why not (finished, left, expired,
    evicted); one enqueue row each; at most one admission each, and exactly for the ready ones.
    After a Redis crash that lost writes, users in lost_ok may be gone without a reason, and
    extra[user][event] rows are allowed on top: events of changes that Redis lost and that
    happened again after the restart (a join retried, a user admitted again). Returns the
    users gone without a reason."""
    extra = extra or {}
    users = {crowd.user(i) for i in range(crowd.n)}
    phase.check(not (w & rd), f"{len(w & rd)} users both waiting and ready, e.g. {sorted(w & rd)[:5]}")
    phase.check((w | rd) <= users, f"strangers in the queue: {sorted((w | rd) - users)[:5]}")
    unacked = users - set(crowd.acks)
    phase.check(not unacked, f"{len(unacked)} users never acknowledged, e.g. {sorted(unacked)[:5]}")
    lost = set()
    for u in sorted(crowd.acks):
        ev = log.get(u, {})
        enq, adm = ev.get("enqueue", 0), ev.get("admit", 0)
        gone = [e for e in GONE if e in ev]
        if u not in w and u not in rd and not gone:
            lost.add(u)
            phase.check(u in lost_ok, f"{u} was acknowledged, is neither waiting nor ready, and the log "
                        f"says only {ev}")
            continue
        more = extra.get(u, {})
        again = more.get("admit", 0)
        phase.check(1 <= enq <= 1 + more.get("enqueue", 0), f"{u}: {enq} enqueue rows in the activity log")
        phase.check(adm <= 1 + again, f"{u}: admitted {adm} times")
        if u in rd or "finish" in ev or "expire" in ev:
            phase.check(1 <= adm <= 1 + again, f"{u}: ready or released after being ready, but {adm} "
                        f"admit rows: {ev}")
        if u in w:
            phase.check(adm <= again and not gone, f"{u}: waiting, but the log says {ev}")
        odd = set(ev) - {"enqueue", "admit", "verify"} - set(GONE)
        phase.check(not odd, f"{u}: unexpected events {ev}")
    phase.check(stats.get("events_dropped", 0) == 0, f"{stats.get('events_dropped')} events dropped")
    return lost


async def freeze(port, biz):
    """No more admission ticks for this business (the next is an hour away), so that the
    snapshot holds still. In force on every worker within 2 s."""
    await admin(port, "POST", "/config", biz, {"admission_frequency": 3600})
    await asyncio.sleep(2.5)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else 0.0
