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
"""
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

BUILD = os.environ["GKF_BUILD"]
TMP = os.environ["GKF_TMP"]
CTL = os.environ["GKF_CTL"]
REDIS_PORT = int(os.environ["GKF_REDIS_PORT"])
DB = os.environ["GKF_DB"]
JWT_SECRET = "faults-jwt-secret-0123456789abcdefghijklmnopq"
ADMIN_TOKEN = "faults-admin-token-0123456789abcdefghijklmnop"
# No request on loopback may take this long; one that does is a hang, and a violation.
REQ_TIMEOUT = 10.0
# appendfsync everysec: the AOF is fsynced about once a second, and while an fsync is slow Redis
# holds writes back for up to 2 s; so a crash loses at most about the last 2 s of writes.
AOF_WINDOW = 2.0
# Deep /health answers from the monitor's last background pass (src/monitor.c): up to one period
# (GK_MONITOR_PERIOD_MS, 2 s) plus the pass itself behind an outage or a recovery.
HEALTH_LAG = 2.5

now = time.monotonic


def say(msg):
    print("faults: " + msg, flush=True)


class Failed(Exception):
    pass


class Phase:
    """Collects violations; end() fails the run if there are any."""

    def __init__(self, name):
        self.name = name
        self.violations = []
        self.t0 = now()

    def fail(self, msg):
        self.violations.append(msg)

    def check(self, ok, msg):
        if not ok:
            self.fail(msg)
        return ok

    def say(self, msg):
        say(f"{self.name}: {msg}")

    def end(self):
        if self.violations:
            for v in self.violations[:30]:
                say(f"{self.name}: VIOLATION: {v}")
            if len(self.violations) > 30:
                say(f"{self.name}: ... and {len(self.violations) - 30} more violations")
            raise Failed(f"{self.name}: {len(self.violations)} violated invariant(s)")
        self.say(f"passed in {now() - self.t0:.1f} s")


# ---- Redis and PostgreSQL, read directly for the checks ----


class Redis:
    """A minimal blocking RESP2 client, for snapshots. Reconnects on every call after an error."""

    def __init__(self, port):
        self.port = port
        self.sock = None
        self.f = None

    def close(self):
        if self.sock is not None:
            self.sock.close()
        self.sock = self.f = None

    def _read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError("redis: " + rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2].decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise ConnectionError(f"bad RESP line {line!r}")

    def pipeline(self, *cmds):
        try:
            if self.sock is None:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                self.f = self.sock.makefile("rb")
            out = b""
            for c in cmds:
                out += b"*%d\r\n" % len(c)
                for a in c:
                    a = str(a).encode()
                    out += b"$%d\r\n%s\r\n" % (len(a), a)
            self.sock.sendall(out)
            return [self._read() for _ in cmds]
        except Exception:
            self.close()
            raise

    def cmd(self, *args):
        return self.pipeline(args)[0]

    def atomically(self, *cmds):
        """The cmds in one MULTI/EXEC: one consistent snapshot."""
        return self.pipeline(["MULTI"], *cmds, ["EXEC"])[-1]


def psql(sql):
    """Rows of a query as lists of strings (tab-separated output)."""
    out = subprocess.run(
        ["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d", DB, "-c", sql],
        capture_output=True, text=True, timeout=60, env=dict(os.environ, PGCONNECT_TIMEOUT="10"))
    if out.returncode != 0:
        raise RuntimeError("psql: " + out.stderr.strip())
    return [line.split("\t") for line in out.stdout.splitlines() if line]


def activity(biz):
    """{user: {event: count}} from activity_log for a business."""
    ev = {}
    for user, event, n in psql(
            f"SELECT coalesce(user_id, ''), event, count(*) FROM activity_log "
            f"WHERE business_id = '{biz}' GROUP BY 1, 2"):
        ev.setdefault(user, {})[event] = int(n)
    return ev


def ctl(verb):
    """Runs the ctl helper, tests/faults/ctl (blocking); returns when the service is down / up."""
    out = subprocess.run([CTL, verb], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise Failed(f"ctl {verb} failed: {out.stderr.strip()}")


async def actl(verb):
    await asyncio.get_running_loop().run_in_executor(None, ctl, verb)


# ---- the processes under test ----


def pick_port():
    """A free port below the ephemeral range (see --low-ports in scripts/with-services)."""
    for _ in range(100):
        p = random.randint(20000, 32000)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise Failed("no free port")


class Proc:
    """An API server (on a fixed port) or a worker, killed and restarted at will. A process
    that exits without being told to is a crash, which check_alive() reports."""

    all = []  # every Proc, for the cleanup at exit

    def __init__(self, kind, name):
        Proc.all.append(self)
        self.kind, self.name = kind, name
        self.port = pick_port() if kind == "api" else None
        self.p = None
        self.log = open(os.path.join(TMP, name + ".log"), "ab")

    def start(self):
        env = dict(os.environ, REDIS_URL=f"redis://127.0.0.1:{REDIS_PORT}/0", DATABASE_URL=DB,
                   JWT_SECRET=JWT_SECRET, ADMIN_TOKEN=ADMIN_TOKEN, LOG_LEVEL="info")
        if self.port:
            env["PORT"] = str(self.port)
        exe = os.path.join(BUILD, "gatekeeper" if self.kind == "api" else "gatekeeper-worker")
        self.p = subprocess.Popen([exe], env=env, stdin=subprocess.DEVNULL, stdout=self.log,
                                  stderr=self.log)

    def pid(self):
        return self.p.pid if self.p else None

    def check_alive(self, phase):
        rc = self.p.poll() if self.p else None
        if rc is not None:
            phase.fail(f"{self.name} (pid {self.p.pid}) exited by itself with status {rc}; "
                       f"see {self.log.name}")
            self.p = None
        return rc is None and self.p is not None

    def kill(self):
        if self.p is not None:
            self.p.kill()
            self.p.wait()
            self.p = None

    def stop(self):
        if self.p is not None:
            self.p.terminate()
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
            self.p = None


async def wait_healthy(procs, timeout=30.0):
    """Waits until every API server answers /health with 200 (Redis and PostgreSQL reachable).
    A server that exited (its port was taken after pick_port) is started on another port."""
    deadline = now() + timeout
    for pr in procs:
        c = Http()
        while True:
            if pr.p is not None and pr.p.poll() is not None:
                pr.p = None
                pr.port = pick_port()
                pr.start()
            try:
                r = await c.call(pr.port, "GET", "/health", {})
                if r.status == 200:
                    break
            except NetError:
                pass
            if now() > deadline:
                raise Failed(f"{pr.name} not healthy within {timeout:.0f} s; see {pr.log.name}")
            await asyncio.sleep(0.1)
        c.close()


# ---- HTTP ----


class NetError(Exception):
    def __init__(self, msg, timeout=False):
        super().__init__(msg)
        self.timeout = timeout


class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def error(self):
        return self.json.get("error") if isinstance(self.json, dict) else None


class Http:
    """One keep-alive HTTP/1.1 connection, reopened after any error (as a browser does)."""

    def __init__(self):
        self.r = self.w = None
        self.port = None

    def close(self):
        if self.w is not None:
            self.w.close()
        self.r = self.w = None

    async def _call(self, port, method, path, headers, body):
        if self.w is None or self.port != port:
            self.close()
            self.r, self.w = await asyncio.open_connection("127.0.0.1", port)
            self.port = port
        head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if method != "GET":
            head.append(f"Content-Length: {len(body)}")
        self.w.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await self.w.drain()
        line = await self.r.readline()
        if not line:
            raise NetError("connection closed before an answer")
        status = int(line.split(b" ", 2)[1])
        hdrs = {}
        while True:
            line = await self.r.readline()
            if not line:
                raise NetError("connection closed in the headers")
            if line in (b"\r\n", b"\n"):
                break
            k, _, v = line.decode("latin-1").partition(":")
            hdrs[k.strip().lower()] = v.strip()
        data = await self.r.readexactly(int(hdrs.get("content-length", "0")))
        if hdrs.get("connection", "").lower() == "close":
            self.close()
        return Resp(status, hdrs, data)

    async def call(self, port, method, path, headers, body=b"", timeout=REQ_TIMEOUT):
        try:
            return await asyncio.wait_for(self._call(port, method, path, headers, body), timeout)
        except asyncio.TimeoutError:
            self.close()
            raise NetError(f"no answer within {timeout:.0f} s", timeout=True)
        except NetError:
            self.close()
            raise
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
            self.close()
            raise NetError(f"{type(e).__name__}: {e}")


async def admin(port, method, path, biz=None, body=None, ok=(200, 201)):
    """An admin call with the operator key, retried while the node answers 503."""
    c = Http()
    h = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    if biz:
        h["business_id"] = biz
    data = json.dumps(body).encode() if body is not None else b""
    try:
        for _ in range(100):
            try:
                r = await c.call(port, method, path, h, data)
                if r.status in ok:
                    return r.json
                if r.status != 503:
                    raise Failed(f"{method} {path} answered {r.status}: {r.body[:200]!r}")
            except NetError:
                pass
            await asyncio.sleep(0.2)
        raise Failed(f"{method} {path} kept failing")
    finally:
        c.close()


async def new_business(prefix, ports, conf):
    """Creates a business through the first node, sets its config, and waits until every node
    has it (config reaches the other nodes and the workers through NOTIFY)."""
    biz = f"{prefix}-{os.getpid()}-{random.randrange(1 << 30)}"
    await admin(ports[0], "POST", "/businesses", body={"business_id": biz})
    await admin(ports[0], "POST", "/config", biz, conf)
    for p in ports[1:]:
        for _ in range(100):
            got = (await admin(p, "GET", "/config", biz, ok=(200, 404))) or {}
            cur = got.get("updated_config") or {}
            if all(cur.get(k) == v for k, v in conf.items()):
                break
            await asyncio.sleep(0.1)
        else:
            raise Failed(f"the config of {biz} did not reach port {p}")
    await asyncio.sleep(1.0)  # the workers learn the business through the same NOTIFY
    return biz


def tokens(biz, n):
    """Tokens of users u0..u(n-1), as their first enqueue answers would carry them: a client
    whose answer was lost in a crash still polls (the real one would have its token)."""
    out = subprocess.run([os.path.join(BUILD, "gk-bench-tokens"), biz, str(n)], capture_output=True,
                         text=True, check=True, env=dict(os.environ, JWT_SECRET=JWT_SECRET))
    return out.stdout.split()


# Rate limits out of the way: every client here shares 127.0.0.1.
OPEN_LIMITS = {"ip_enqueue_limit": 1000000, "ip_enqueue_limit_interval": 1,
               "ip_status_polling_limit": 1000000, "ip_status_polling_limit_interval": 1,
               "ip_verify_limit": 1000000, "ip_verify_limit_interval": 1,
               "ip_finish_limit": 1000000, "ip_finish_limit_interval": 1,
               "jwt_expiry_seconds": 600, "ready_ttl_seconds": 3600}


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
