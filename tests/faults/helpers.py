# SPDX-License-Identifier: MIT
"""helpers.py -- what the FAULTS phases (phases.py) are made of: the run's settings from run.sh,
a phase's violations, blocking Redis and PostgreSQL readers for the checks, the ctl helper, the
API servers and workers under test (started, killed, restarted), and an asyncio HTTP/1.1 client
with the admin calls that make a business. Imported by driver.py; see there."""
import asyncio
import json
import os
import random
import socket
import subprocess
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
