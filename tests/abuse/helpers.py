# SPDX-License-Identifier: MIT
"""helpers.py -- what the abuse attacks (attacks.py) are made of: the settings run.sh passes and
the attackers' addresses, HTTP/1.1 over raw sockets (one request's bytes, an exchange on a new
connection, its answers), JWTs made here (signed or forged), the well-behaved client (wrk) and
its numbers, a check and an attack, a flood of calls at a fixed rate and how its answers are
summed up, and the businesses the attacks use. Imported by attacks.py and abuse.py; see there."""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import time
from collections import Counter
from dataclasses import dataclass, field

PORT = int(os.environ["ABUSE_PORT"])
ADMIN = os.environ["ADMIN_TOKEN"]
SECRET = os.environ["JWT_SECRET"].encode()
TIMEOUT = int(os.environ["CONNECTION_TIMEOUT"])  # the server's idle timeout, seconds
MAX_CONNECTIONS = int(os.environ["MAX_CONNECTIONS"])
SERVER_PID = int(os.environ["ABUSE_SERVER_PID"])
# A second server, identical but for MAX_CONNECTIONS_PER_IP (tests/abuse/run.sh).
PERIP_PORT = int(os.environ["ABUSE_PERIP_PORT"])
PERIP_PID = int(os.environ["ABUSE_PERIP_PID"])
PERIP_LIMIT = int(os.environ["ABUSE_PERIP_LIMIT"])
GOOD_TOKENS = os.environ["ABUSE_GOOD_TOKENS"]
GOOD_LUA = os.environ["ABUSE_GOOD_LUA"]
REPORT = os.environ["ABUSE_REPORT"]
STRICT = os.environ.get("ABUSE_STRICT") == "1"
ONLY = os.environ.get("ABUSE_ONLY", "")

ATTACKER = "127.0.0.2"  # every attack that needs no address of its own
LIMITED_IP = "127.0.0.3"  # enqueues past its limit
SPOOFER_IP = "127.0.0.4"  # untrusted peer sending X-Forwarded-For
VISITOR_IP = "127.0.0.5"  # a well-behaved visitor of the attacked business
NEWCOMER_IP = "127.0.0.6"  # a new visitor arriving during 10,000 idle connections
PROXY_IP = "127.0.0.9"  # the trusted reverse proxy (TRUSTED_PROXIES in run.sh)

FLOOD_SECONDS = 4  # how long each flood runs beside the good client


# ---- HTTP over raw sockets -------------------------------------------------------------------
# Raw sockets, not asyncio streams: a stream reader drops what it buffered once the peer resets
# the connection, and libmicrohttpd resets after answering a request it did not read to the end
# (431); the kernel still hands over the answer that came before the reset.


def raw(value):
    return value if isinstance(value, bytes) else str(value).encode()


def request(method, path, headers=(), body=b"", close=True):
    """The bytes of one HTTP/1.1 request; header names and values may be bytes (anything goes)."""
    lines = [b"%s %s HTTP/1.1" % (raw(method), raw(path)), b"Host: 127.0.0.1"]
    lines += [raw(k) + b": " + raw(v) for k, v in headers]
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def label(self):
        """'401 invalid_token', '431 html', '200' -- what the table and the checks compare."""
        doc = self.json()
        if isinstance(doc, dict) and "error" in doc:
            return f"{self.status} {doc['error']}"
        if self.body.startswith(b"<html"):  # libmicrohttpd's own answers, without a Content-Type
            return f"{self.status} html"
        return str(self.status)


def parse_responses(buf):
    """Every complete response in buf, in order (the server always sends Content-Length)."""
    out = []
    while b"\r\n\r\n" in buf:
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        n = int(headers.get("content-length", "0"))
        if len(rest) < n:
            break
        out.append(Response(int(lines[0].split()[1]), headers, rest[:n]))
        buf = rest[n:]
    return out


@dataclass
class Exchange:
    responses: list
    end: str  # "close" (the server closed), "reset", or "timeout" (still open when we gave up)
    seconds: float  # from the last byte sent to the end


async def connect(src, timeout=10.0, port=PORT):
    loop = asyncio.get_running_loop()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.bind((src, 0))
    try:
        await asyncio.wait_for(loop.sock_connect(s, ("127.0.0.1", port)), timeout)
    except BaseException:
        s.close()
        raise
    return s


async def read_until_closed(s, timeout):
    """(bytes the server sent, how it ended) reading until it closes or timeout seconds pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    buf = b""
    while True:
        left = deadline - loop.time()
        if left <= 0:
            return buf, "timeout"
        try:
            data = await asyncio.wait_for(loop.sock_recv(s, 65536), left)
        except asyncio.TimeoutError:
            return buf, "timeout"
        except ConnectionError:
            return buf, "reset"
        if not data:
            return buf, "close"
        buf += data


async def exchange(data, src=ATTACKER, timeout=5.0, chunk=65536):
    """Sends data on a new connection from src, in chunks, stopping quietly if the server stops
    reading, and reads until the server closes the connection or timeout seconds pass."""
    loop = asyncio.get_running_loop()
    s = await connect(src)
    try:
        for i in range(0, len(data), chunk):
            try:
                await asyncio.wait_for(loop.sock_sendall(s, data[i : i + chunk]), timeout)
            except (ConnectionError, asyncio.TimeoutError):
                break
        sent = loop.time()
        buf, end = await read_until_closed(s, timeout)
        return Exchange(parse_responses(buf), end, loop.time() - sent)
    finally:
        s.close()


async def call(method, path, headers=(), body=b"", src=ATTACKER):
    """One request on its own connection; its one response."""
    ex = await exchange(request(method, path, headers, body), src)
    if len(ex.responses) != 1:
        raise RuntimeError(f"{method} {path}: expected one response, got {len(ex.responses)} ({ex.end})")
    return ex.responses[0]


def operator():
    return ("Authorization", f"Bearer {ADMIN}")


# ---- tokens ------------------------------------------------------------------------------------


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(claims, alg="HS256", digest=hashlib.sha256, key=SECRET, signature=None):
    """A JWT with the given header alg, signed with HMAC(digest, key) unless signature is given."""
    head = b64url(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    if signature is None:
        signature = b64url(hmac.new(key, f"{head}.{body}".encode(), digest).digest())
    return f"{head}.{body}.{signature}"


def claims_for(business, user, **extra):
    now = int(time.time())
    return {"bid": business, "sub": user, "iat": now, "exp": now + 3600, **extra}


# ---- the well-behaved client -------------------------------------------------------------------


GOOD_CLIENTS = set()  # running wrk processes, killed if the driver stops early


async def start_good_client(port=PORT):
    env = dict(os.environ, TOKENS=GOOD_TOKENS, PAUSE_MS="5")
    # Runs until stop_good_client interrupts it: attacks last as long as they need to.
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t1", "-c4", "-d600s", "--timeout", "2s", "-s", GOOD_LUA, f"http://127.0.0.1:{port}",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    GOOD_CLIENTS.add(proc)
    return proc


async def stop_good_client(proc):
    """The good client's numbers: requests, p50, p99 and p99.9 in ms, and errors (socket errors,
    timeouts over 2 s and any answer that is not 2xx/3xx)."""
    proc.send_signal(signal.SIGINT)  # wrk prints its report on SIGINT
    out, _ = await proc.communicate()
    GOOD_CLIENTS.discard(proc)
    for line in out.decode().splitlines():
        if line.startswith("RESULT "):
            _, rps, p50, p99, p999, errors, requests = line.split()
            return {"rps": float(rps), "p50": float(p50), "p99": float(p99), "p999": float(p999),
                    "errors": int(errors), "requests": int(requests)}
    raise RuntimeError("wrk printed no RESULT line:\n" + out.decode())


async def measure_quiet(seconds, port=PORT):
    proc = await start_good_client(port)
    await asyncio.sleep(seconds)
    return await stop_good_client(proc)


# ---- checks and attacks ------------------------------------------------------------------------


@dataclass
class Check:
    id: str
    ok: bool
    detail: str


@dataclass
class Attack:
    key: str  # prefix of its check ids
    name: str
    answer: str  # the documented answer, for the table
    probe: object  # async () -> list[Check]
    flood: object  # async () -> (what the attack saw, volume, list[Check])
    port: int = PORT  # the server attacked, and polled by the good client
    seen: str = ""
    volume: str = ""
    checks: list = field(default_factory=list)
    good: dict = None
    base: dict = None
    retried: int = 0  # attempts that failed the p99 bound before the one reported


def expect(cid, ok, detail):
    return Check(cid, bool(ok), detail)


def expect_only(cid, seen, allowed):
    """Every outcome of a flood is one of the allowed (documented) answers."""
    bad = {k: v for k, v in seen.items() if k not in allowed}
    return Check(cid, not bad and sum(seen.values()) > 0,
                 "all answers documented" if not bad else f"undocumented answers: {dict(bad)}")


def summary(seen):
    return ", ".join(f"{k} x{v}" for k, v in seen.most_common())


async def flood(unit, rate, seconds=FLOOD_SECONDS, limit=64):
    """Calls unit(i) rate times a second for seconds, at most limit at once, and counts what the
    calls returned (a client-side exception counts as its type name)."""
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(limit)
    seen = Counter()

    async def one(i):
        try:
            seen[await unit(i)] += 1
        except Exception as e:  # the answer under test may be a refused or reset connection
            seen[f"client {type(e).__name__}"] += 1
        finally:
            sem.release()

    start = loop.time()
    tasks = []
    for i in range(int(rate * seconds)):
        await sem.acquire()
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return seen


def vol(seen, what, seconds=FLOOD_SECONDS):
    n = sum(seen.values())
    return f"{n} {what} in {seconds} s"


def answers(ex):
    """'200 200 400 html +close': every answer on one connection and how it ended."""
    tail = {"close": "+close", "reset": "+reset", "timeout": "+open"}[ex.end]
    return " ".join([r.label() for r in ex.responses] + [tail])


async def setup_businesses():
    conf = {
        "good": {"ip_status_polling_limit": 1000000, "ip_status_polling_limit_interval": 1},
        # 20 enqueues per address, refilled at one per 3 minutes: nothing refills during the run.
        "limited": {"ip_enqueue_limit": 20, "ip_enqueue_limit_interval": 3600},
        "spoofed": {"ip_enqueue_limit": 20, "ip_enqueue_limit_interval": 3600},
        "open": {"ip_enqueue_limit": 1000000, "ip_enqueue_limit_interval": 1,
                 "ip_status_polling_limit": 1000000, "ip_status_polling_limit_interval": 1},
        "pass": {"queueing_method": "passthrough", "ip_enqueue_limit": 1000000,
                 "ip_enqueue_limit_interval": 1},
        "biz-a": {"ip_enqueue_limit": 1000000, "ip_enqueue_limit_interval": 1,
                  "ip_status_polling_limit": 1000000, "ip_status_polling_limit_interval": 1},
        "biz-b": {"ip_status_polling_limit": 1000000, "ip_status_polling_limit_interval": 1},
        "guarded": {"pow_mode": "on", "ip_enqueue_limit": 1000000, "ip_enqueue_limit_interval": 1},
    }
    for biz, c in conf.items():
        r = await call("POST", "/businesses", [operator()], json.dumps({"business_id": biz}).encode())
        if r.status != 201 and not (ONLY and r.status == 409):  # ABUSE_ONLY may run again
            raise RuntimeError(f"creating {biz}: {r.status} {r.body!r}")
        r = await call("POST", "/config", [operator(), ("business_id", biz)], json.dumps(c).encode())
        if r.status != 200:
            raise RuntimeError(f"configuring {biz}: {r.status} {r.body!r}")


async def enqueue(biz, user, src=ATTACKER, extra=()):
    return await call("POST", "/queue/enqueue", [("business_id", biz), ("user_id", user), *extra], src=src)


def good_token(i=0):
    with open(GOOD_TOKENS) as f:
        return f.read().split()[i]
