#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""abuse.py -- the driver of `make test-abuse`; tests/abuse/run.sh starts the servers and runs it.

Every attack of docs/SECURITY.md's abuse list, against one real server (the 10,000 idle connections once
more against a second one with MAX_CONNECTIONS_PER_IP set). For each attack a probe first
asserts the documented answer (docs/API.md, docs/SECURITY.md); then the
attack runs while a well-behaved client measures its latency: wrk with tests/abuse/good.lua,
4 keep-alive connections from 127.0.0.1 polling /queue/status, each pausing 5 ms between polls.
Its p99 must stay within p99_bound() of a baseline measured in the same run, with no errors, and
everything the attack gets back must be the documented answer. Attackers use other loopback
addresses (127.0.0.2-9), so per-IP rate limits never count them against the good client.

Checks that fail for a reason written down as a gap in docs/SECURITY.md are listed in
KNOWN_GAPS: they are measured and reported as GAP every run and do not fail it (ABUSE_STRICT=1
makes them fail); one that does not reproduce is reported as such (a latency gap can pass on a
quiet moment), and once it never does, the list and the document should lose it.

Prints the table, writes it to ABUSE_REPORT (tests/artifacts/abuse.md) and exits 1 if any check
failed. ABUSE_ONLY=key,... runs only those attacks (for debugging). Standard library only.
"""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import random
import resource
import signal
import socket
import sys
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
LEAD_SECONDS = 0.5  # the good client connects before the attack starts
BASELINE_SECONDS = 4
P99_ATTEMPTS = 3  # see run_attack


def p99_bound(base_ms):
    """The good client's p99 under attack must stay within 3x its baseline, or the baseline plus
    25 ms where that is more: a poll every 1-15 s that answers 25 ms later is invisible to a
    visitor, while 25 ms is well above the scheduling noise of a loaded 2-core machine."""
    return max(3 * base_ms, base_ms + 25)


# Check ids that fail today for a reason docs/SECURITY.md lists as a gap (Denial of service).
KNOWN_GAPS = {
    "idle-10k.p99": "in internal poll mode every turn of libmicrohttpd's loop polls every open "
    "connection of its thread, so each request waits several ms more (p50 too), and accepting and "
    "then timing out 10,000 connections at once takes both threads for seconds",
    "idle-10k.newcomer": "the attacker's 10,000 connections and the good client's fill MAX_CONNECTIONS "
    "(10,000, counted across the event loops), so a new visitor's connection is closed at once "
    "until the attacker's are closed at CONNECTION_TIMEOUT",
}


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


# -- slowloris: partial requests, silent or trickling ---------------------------------------------

PARTIAL = b"GET /queue/status HTTP/1.1\r\nHost: 127.0.0.1\r\nbusiness_id: good\r\n"


async def slowloris_conn(trickle_every, hold):
    """Sends a partial request and then, if trickle_every, one more header byte that often;
    returns ('closed'|'reset'|'answered'|'open', seconds from the partial request to the end)."""
    loop = asyncio.get_running_loop()
    s = await connect(ATTACKER)
    try:
        await loop.sock_sendall(s, PARTIAL + b"X-Slow: ")
        start = loop.time()
        reader = asyncio.ensure_future(read_until_closed(s, hold))
        while trickle_every and not reader.done() and loop.time() - start < hold - trickle_every:
            await asyncio.wait([reader], timeout=trickle_every)
            if not reader.done():
                try:
                    await loop.sock_sendall(s, b"a")
                except ConnectionError:
                    break
        buf, end = await reader
        if buf:
            return "answered", loop.time() - start
        return {"close": "closed", "reset": "reset", "timeout": "open"}[end], loop.time() - start
    finally:
        s.close()


async def slowloris_silent_flood():
    n = 1000
    res = await asyncio.gather(*(slowloris_conn(0, TIMEOUT + 10) for _ in range(n)))
    kinds = Counter(k for k, _ in res)
    times = sorted(t for k, t in res if k in ("closed", "reset"))
    closed = len(times)
    lo, hi = (times[0], times[-1]) if times else (0, 0)
    seen = f"{closed}/{n} closed, no answer, {lo:.1f}-{hi:.1f} s after their last byte"
    return seen, f"{n} connections", [
        expect("slowloris-silent.closed", kinds["closed"] + kinds["reset"] == n,
               f"closed by the server: {dict(kinds)}"),
        expect("slowloris-silent.timeout", times and TIMEOUT - 1 <= lo and hi <= TIMEOUT + 5,
               f"closed {lo:.1f}-{hi:.1f} s after the last byte; CONNECTION_TIMEOUT is {TIMEOUT} s"),
    ]


async def slowloris_trickle_flood():
    # The request deadline (CONNECTION_TIMEOUT from the connection's start) cuts them; the server
    # checks once a second, and with 500 sockets this event loop may learn of a close late.
    n, hold, slack = 500, TIMEOUT + 10, 3
    res = await asyncio.gather(*(slowloris_conn(1.0, hold) for _ in range(n)))
    kinds = Counter(k for k, _ in res)
    times = sorted(t for k, t in res if k in ("closed", "reset"))
    closed = len(times)
    lo, hi = (times[0], times[-1]) if times else (0, 0)
    seen = (f"{closed}/{n} closed by the server, no answer, {lo:.1f}-{hi:.1f} s after the partial request, "
            f"{kinds['open']} still open after {hold} s")
    return seen, f"{n} connections, 1 byte/s each", [
        expect("slowloris-trickle.answer", kinds["answered"] == 0, f"outcomes: {dict(kinds)}"),
        expect("slowloris-trickle.closed", closed == n,
               f"{closed} of {n} trickling connections closed by the server within {hold} s"),
        expect("slowloris-trickle.deadline", times and TIMEOUT - 1 <= lo and hi <= TIMEOUT + slack,
               f"closed {lo:.1f}-{hi:.1f} s after the partial request; CONNECTION_TIMEOUT is {TIMEOUT} s, "
               f"bound {TIMEOUT + slack} s"),
    ]


# -- 10,000 idle connections ------------------------------------------------------------------------


def server_fds(pid=SERVER_PID):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


async def idle_conn(port=PORT):
    """Connects and sends nothing; returns how that ended, when (the loop's clock) and how long
    the connection lasted once established."""
    loop = asyncio.get_running_loop()
    try:
        s = await connect(ATTACKER, timeout=60, port=port)
    except (OSError, asyncio.TimeoutError) as e:
        return f"connect failed ({type(e).__name__})", loop.time(), 0.0
    try:
        connected = loop.time()
        buf, end = await read_until_closed(s, 90)
        kind = "answered" if buf else {"close": "closed", "reset": "reset", "timeout": "open"}[end]
        return kind, loop.time(), loop.time() - connected
    finally:
        s.close()


async def newcomer(port=PORT):
    """A new visitor arriving while the idle connections are held: (what it got, seconds until its
    connection was established, seconds until it was answered)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        s = await connect(NEWCOMER_IP, timeout=60, port=port)
    except (OSError, asyncio.TimeoutError) as e:
        return f"connect failed ({type(e).__name__})", loop.time() - start, loop.time() - start
    try:
        connected = loop.time() - start
        await loop.sock_sendall(s, request("GET", "/health?shallow"))
        buf, end = await read_until_closed(s, 60)
        return " ".join([r.label() for r in parse_responses(buf)] + [end]), connected, loop.time() - start
    finally:
        s.close()


async def idle_attack(n, port, pid):
    """n idle connections from one address at once, and a newcomer 2 s in: (outcomes, seconds
    until the last ended, most connections the server held at once, the newcomer's outcome)."""
    loop = asyncio.get_running_loop()
    idle_fds, peak = server_fds(pid), 0

    async def sample():
        nonlocal peak
        while True:
            peak = max(peak, server_fds(pid))
            await asyncio.sleep(0.25)

    sampler = asyncio.ensure_future(sample())
    start = loop.time()
    conns = [asyncio.ensure_future(idle_conn(port)) for _ in range(n)]
    await asyncio.sleep(2)
    new = await newcomer(port)
    res = await asyncio.gather(*conns)
    sampler.cancel()
    return res, max(t for _, t, _ in res) - start, peak - idle_fds, new


async def idle_flood():
    # One address, as nothing limits connections per address by default (SECURITY.md). The timing
    # of each close is not checked against CONNECTION_TIMEOUT here: with 10,000 sockets this event
    # loop learns of a connection seconds late, and the server accepts them over seconds too.
    n = 10000
    res, last, held, (new_what, new_connected, new_secs) = await idle_attack(n, PORT, SERVER_PID)
    kinds = Counter(k for k, _, _ in res)
    closed = kinds["closed"] + kinds["reset"]
    seen = (f"{closed}/{n} closed, no answer, the last at {last:.0f} s; the server held {held} "
            f"at once; a new visitor 2 s in got {new_what} after {new_secs:.1f} s")
    return seen, f"{n} connections from one address", [
        expect("idle-10k.closed", closed == n and last < 60,
               f"outcomes: {dict(kinds)}, the last after {last:.0f} s"),
        expect("idle-10k.newcomer", new_what == "200 close" and new_secs < 1,
               f"a new visitor's first request: {new_what} after {new_secs:.1f} s, its connection "
               f"established after {new_connected:.1f} s (bound 1 s)"),
    ]


async def idle_perip_flood():
    # The same attack against the server with MAX_CONNECTIONS_PER_IP: it keeps PERIP_LIMIT of
    # them (until CONNECTION_TIMEOUT) and closes the others as soon as it accepts them.
    n = 10000
    res, last, held, (new_what, new_connected, new_secs) = await idle_attack(n, PERIP_PORT, PERIP_PID)
    kinds = Counter(k for k, _, _ in res)
    closed = kinds["closed"] + kinds["reset"]
    # Refused: closed at once (well before the idle timeout) without an answer.
    refused = sum(1 for k, _, lasted in res if k in ("closed", "reset") and lasted < TIMEOUT / 2)
    # Slack over the limit for the good client's 4 connections, the newcomer and sampling jitter.
    held_bound = PERIP_LIMIT + 16
    seen = (f"{refused}/{n} refused at once, {closed - refused} kept until CONNECTION_TIMEOUT, no answer, "
            f"the last closed at {last:.0f} s; the server held {held} at once (limit {PERIP_LIMIT}); "
            f"a new visitor 2 s in got {new_what} after {new_secs:.1f} s")
    return seen, f"{n} connections from one address", [
        expect("idle-10k-perip.closed", closed == n and last < 60,
               f"outcomes: {dict(kinds)}, the last after {last:.0f} s"),
        expect("idle-10k-perip.refused", refused >= n - 2 * PERIP_LIMIT,
               f"{refused} of {n} closed at once (at least {n - 2 * PERIP_LIMIT} expected: all but the "
               f"{PERIP_LIMIT} allowed, twice if the attacker's connects outlast CONNECTION_TIMEOUT)"),
        expect("idle-10k-perip.held", held <= held_bound,
               f"the server held {held} connections at once, bound {held_bound} "
               f"(MAX_CONNECTIONS_PER_IP={PERIP_LIMIT} + the good client and the newcomer)"),
        expect("idle-10k-perip.newcomer", new_what == "200 close" and new_secs < 1,
               f"a new visitor's first request: {new_what} after {new_secs:.1f} s, its connection "
               f"established after {new_connected:.1f} s (bound 1 s)"),
    ]


# -- 1 MB of headers ------------------------------------------------------------------------------

MEGA_LINES = request("GET", "/queue/status", [("business_id", "good"), ("jwt", good_token())] +
                     [(f"X-Pad-{i}", "a" * 1000) for i in range(1000)])
MEGA_ONE = request("GET", "/queue/status", [("business_id", "good"), ("X-Big", "a" * (1 << 20))])


async def headers_probe():
    checks = []
    for what, data in (("1,000 header lines of 1 KB", MEGA_LINES), ("one 1 MB header", MEGA_ONE)):
        ex = await exchange(data)
        checks.append(expect("mb-headers.probe", [r.label() for r in ex.responses] == ["431 html"]
                             and ex.responses[0].headers.get("connection") == "close"
                             and ex.end in ("close", "reset"),
                             f"{what}: {answers(ex)}"))
    return checks


async def headers_flood():
    async def unit(i):
        return answers(await exchange(MEGA_LINES if i % 2 else MEGA_ONE, timeout=10))

    seen = await flood(unit, rate=50)
    return summary(seen), vol(seen, "requests of 1 MB"), [
        expect_only("mb-headers.flood", seen, {"431 html +close", "431 html +reset"})]


# -- pipelined garbage ----------------------------------------------------------------------------

VALID = request("GET", "/health?shallow", close=False)
# Kinds of garbage with libmicrohttpd's answer to each, after the valid requests before it.
GARBAGE = [
    (b"\x01\x02 NOT HTTP\r\n\r\n", "400 html +close"),
    (b"GET /health HTTP/1.1\r\nHost x\r\n\r\n", "400 html +close"),  # header without a colon
    (b"GET  HTTP/1.1\r\n\r\n", "400 html +close"),
    (b"GET /health?shallow HTTP/9.9\r\n\r\n", "505 html +close"),
    # libmicrohttpd 0.9.75 sends this 400's status line and headers twice, so what reads as its
    # body is the second copy: still a 400 and a close.
    (b"GET /health?shallow HTTP/1.1\r\nContent-Length: -5\r\n\r\n", "400 +close"),
    (b"POST /queue/enqueue HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     "400 html +close"),
    (b"busi\x00ness_id: good\r\n\r\n", "400 html +close"),
    (b" / HTTP/1.1\r\n\r\n", "+close"),  # no method: closed without an answer
]
# Random bytes: where libmicrohttpd's reads happen to split them decides whether it answers 400
# or closes without an answer, at once or at the idle timeout; never anything else.
NOISE = bytes(random.Random(8).randrange(1, 256) for _ in range(4096))


async def garbage_probe():
    checks = []
    for i, (junk, want) in enumerate(GARBAGE):
        ex = await exchange(VALID * 10 + junk)
        want_all = " ".join(["200"] * 10 + [want])
        checks.append(expect("garbage.probe", answers(ex) == want_all,
                             f"garbage {i}: {answers(ex)} (expected {want_all})"))
    ex = await exchange(VALID * 10 + NOISE, timeout=TIMEOUT + 3)
    checks.append(expect("garbage.probe", answers(ex) in (" ".join(["200"] * 10 + [end]) for end in
                                                          ("+close", "400 html +close")),
                         f"4 KB of random bytes: {answers(ex)} after {ex.seconds:.1f} s"))
    return checks


async def garbage_flood():
    async def unit(i):
        junk, want = GARBAGE[i % len(GARBAGE)]
        got = answers(await exchange(VALID * 5 + junk))
        return "5x 200, then the documented answer" if got == " ".join(["200"] * 5 + [want]) else got

    seen = await flood(unit, rate=200)
    return summary(seen), vol(seen, "connections"), [
        expect_only("garbage.flood", seen, {"5x 200, then the documented answer"})]


# -- invalid UTF-8 and NUL bytes in headers ------------------------------------------------------


def bad_bytes_cases():
    tok = good_token(1).encode()
    enq = "/queue/enqueue"
    return [  # (method, path, headers, expected label, what)
        ("POST", enq, [("business_id", "open"), ("user_id", b"ab\xff\xfe")], "400 invalid_header", "user_id"),
        ("POST", enq, [("business_id", b"op\xc3\x28en"), ("user_id", "x")], "400 invalid_header",
         "business_id"),
        ("GET", "/queue/status", [("business_id", "good"), ("jwt", b"\xff\xfe" + tok[2:])],
         "401 invalid_token", "jwt"),
        ("POST", enq, [("business_id", "open"), ("user_id", b"\x00abc")], "400 invalid_header",
         "NUL in user_id"),
        ("GET", "/queue/status", [("business_id", b"\x00good"), ("jwt", tok)], "400 invalid_header",
         "NUL in business_id"),
        ("GET", "/queue/status", [("business_id", "good"), ("jwt", b"\x00" + tok)], "400 invalid_header",
         "NUL in jwt"),
        ("GET", "/queue/status", [("busi\x00ness_id", "good"), ("jwt", tok)], "400 bad_request",
         "NUL in a header name"),
    ]


async def bad_bytes_probe():
    checks = []
    for method, path, headers, want, what in bad_bytes_cases():
        r = await call(method, path, headers)
        checks.append(expect("bad-bytes.probe", r.label() == want, f"{what}: {r.label()} (expected {want})"))
    # libmicrohttpd cuts a value at its NUL; the server refuses the line rather than take "nul1".
    r = await enqueue("open", b"nul1\x00<script>")
    checks.append(expect("bad-bytes.probe", r.label() == "400 invalid_header",
                         f"user_id nul1\\0<script>: {r.label()} (expected 400 invalid_header)"))
    return checks


async def bad_bytes_flood():
    cases = bad_bytes_cases()

    async def unit(i):
        method, path, headers, want, _ = cases[i % len(cases)]
        r = await call(method, path, headers)
        return "documented 4xx" if r.label() == want else r.label()

    seen = await flood(unit, rate=300)
    return summary(seen), vol(seen, "requests"), [expect_only("bad-bytes.flood", seen, {"documented 4xx"})]


# -- one IP enqueueing past its limit -------------------------------------------------------------


async def stats(biz):
    r = await call("GET", "/stats", [operator(), ("business_id", biz)])
    return r.json()


async def ip_limit_probe():
    got = [(await enqueue("limited", f"bot{i}", LIMITED_IP)).label() for i in range(20)]
    over = await enqueue("limited", "bot20", LIMITED_IP)
    visitor = await enqueue("limited", "visitor", VISITOR_IP)
    return [
        expect("ip-limit.probe", got == ["200"] * 20, f"first 20 enqueues: {Counter(got)}"),
        expect("ip-limit.probe",
               over.label() == "429 rate_limited" and int(over.headers.get("retry-after", 0)) >= 1,
               f"21st: {over.label()}, Retry-After {over.headers.get('retry-after')}"),
        expect("ip-limit.probe", visitor.label() == "200",
               f"another address on the same business: {visitor.label()}"),
    ]


async def ip_limit_flood():
    async def unit(i):
        r = await enqueue("limited", f"flood{i}", LIMITED_IP)
        return r.label() if r.status != 429 or r.headers.get("retry-after") else "429 without Retry-After"

    seen = await flood(unit, rate=300)
    st = await stats("limited")
    return summary(seen), vol(seen, "enqueues"), [
        expect_only("ip-limit.flood", seen, {"429 rate_limited"}),
        # A refused enqueue changes nothing: 20 bots and the visitor are all that joined (the
        # worker may have admitted some of them meanwhile).
        expect("ip-limit.unchanged", st["waiting"] + st["ready"] == 21 and st["enqueued_total"] == 21,
               f"after the flood: waiting {st['waiting']} + ready {st['ready']}, "
               f"enqueued_total {st['enqueued_total']}"),
    ]


# -- X-Forwarded-For spoofing from untrusted peers ------------------------------------------------


def fake_ip(i):
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


async def xff_probe():
    xff = lambda v: [("X-Forwarded-For", v)]  # noqa: E731
    spoof = [(await enqueue("spoofed", f"s{i}", SPOOFER_IP, xff(fake_ip(i)))).label() for i in range(21)]
    # The control: the trusted proxy's X-Forwarded-For is honoured, so 25 different clients
    # behind it all get in, while one client behind it is limited like anyone...
    behind = [(await enqueue("spoofed", f"p{i}", PROXY_IP, xff(fake_ip(1000 + i)))).label()
              for i in range(25)]
    one = [(await enqueue("spoofed", f"q{i}", PROXY_IP, xff("192.0.2.7"))).label() for i in range(21)]
    # ...and prepending a fake entry through the proxy does not escape that limit.
    pre = await enqueue("spoofed", "q21", PROXY_IP, xff("203.0.113.5, 192.0.2.7"))
    return [
        expect("xff.probe", spoof == ["200"] * 20 + ["429 rate_limited"],
               f"untrusted peer, new X-Forwarded-For each time: {spoof.count('200')} in, then {spoof[-1]}"),
        expect("xff.probe", behind == ["200"] * 25,
               f"25 clients behind the trusted proxy: {Counter(behind)}"),
        expect("xff.probe", one == ["200"] * 20 + ["429 rate_limited"],
               f"one client behind the proxy: {Counter(one)}"),
        expect("xff.probe", pre.label() == "429 rate_limited",
               f"that client prepending a fake entry: {pre.label()}"),
    ]


async def xff_flood():
    rnd = random.Random(7)
    spoofs = ["127.0.0.1", "127.0.0.9", "::1", "unknown", "1.2.3.4, 127.0.0.9", " , ,", "x" * 200]

    async def unit(i):
        v = fake_ip(rnd.randrange(1 << 24)) if i % 2 else spoofs[i % len(spoofs)]
        return (await enqueue("spoofed", f"sf{i}", SPOOFER_IP, [("X-Forwarded-For", v)])).label()

    seen = await flood(unit, rate=300)
    return summary(seen), vol(seen, "enqueues with spoofed X-Forwarded-For"), [
        expect_only("xff.flood", seen, {"429 rate_limited"})]


# -- token replay after finish --------------------------------------------------------------------


def with_token(biz, tok):
    return [("business_id", biz), ("jwt", tok)]


async def replay_probe():
    r = await enqueue("pass", "r0")
    tok = r.json()["jwt"]
    steps = [
        ("GET", "/queue/verify", "200 ready"),
        ("GET", "/queue/gate", "204"),
        ("DELETE", "/queue/finish", "200 ready_cleared"),
        ("GET", "/queue/verify", "200 not ready"),
        ("GET", "/queue/gate", "401 not_ready"),
        ("DELETE", "/queue/finish", "200 not_ready"),
        ("GET", "/queue/status", "200 not_found"),
        ("DELETE", "/queue/leave", "200 not_found"),
    ]
    checks = [expect("replay.probe", r.label() == "200" and r.json()["ready"] is True,
                     f"passthrough enqueue: {r.label()} ready={r.json().get('ready')}")]
    for method, path, want in steps:
        got = replay_label(await call(method, path, with_token("pass", tok)))
        checks.append(expect("replay.probe", got == want, f"{method} {path}: {got} (expected {want})"))
    return checks


def replay_label(r):
    doc = r.json() or {}
    if r.status == 200 and "ready" in doc and "status" not in doc and "state" not in doc:
        return "200 ready" if doc["ready"] else "200 not ready"
    if r.status == 200 and "status" in doc:
        return f"200 {doc['status']}"
    if r.status == 200 and "state" in doc:
        return f"200 {doc['state']}"
    return r.label()


async def replay_flood():
    toks = []
    for i in range(50):  # 50 users admitted and finished; their tokens are then replayed
        tok = (await enqueue("pass", f"rf{i}")).json()["jwt"]
        await call("DELETE", "/queue/finish", with_token("pass", tok))
        toks.append(tok)
    routes = [("GET", "/queue/verify"), ("GET", "/queue/gate"), ("DELETE", "/queue/finish")]

    async def unit(i):
        method, path = routes[i % len(routes)]
        return f"{path} {replay_label(await call(method, path, with_token('pass', toks[i % len(toks)])))}"

    seen = await flood(unit, rate=300)
    return summary(seen), vol(seen, "replays"), [expect_only("replay.flood", seen, {
        "/queue/verify 200 not ready", "/queue/gate 401 not_ready", "/queue/finish 200 not_ready"})]


# -- business A's token at business B ------------------------------------------------------------

CROSS_ROUTES = [("GET", "/queue/status"), ("GET", "/queue/verify"), ("GET", "/queue/gate"),
                ("DELETE", "/queue/finish"), ("DELETE", "/queue/leave")]


async def cross_probe():
    tok = (await enqueue("biz-a", "alice")).json()["jwt"]
    checks = []
    for method, path in CROSS_ROUTES:
        got = (await call(method, path, with_token("biz-b", tok))).label()
        checks.append(expect("cross.probe", got == "401 invalid_token", f"{method} {path} at biz-b: {got}"))
    # The gate takes the business from X-Gatekeeper-Business first, so a visitor's own header
    # cannot point it back at biz-a.
    got = (await call("GET", "/queue/gate", [("X-Gatekeeper-Business", "biz-b"), *with_token("biz-a", tok)]))
    checks.append(expect("cross.probe", got.label() == "401 invalid_token",
                         f"gate for biz-b with business_id biz-a: {got.label()}"))
    st = (await call("GET", "/queue/status", with_token("biz-a", tok))).json() or {}
    checks.append(expect("cross.probe", st.get("state") == "waiting",
                         f"at biz-a the user is still {st.get('state')}"))
    return checks


async def cross_flood():
    toks = [make_token(claims_for("biz-a", f"a{i}")) for i in range(20)]  # as biz-a would issue them

    async def unit(i):
        method, path = CROSS_ROUTES[i % len(CROSS_ROUTES)]
        return (await call(method, path, with_token("biz-b", toks[i % len(toks)]))).label()

    seen = await flood(unit, rate=300)
    return summary(seen), vol(seen, "requests"), [expect_only("cross.flood", seen, {"401 invalid_token"})]


# -- alg none, HS512, RS256 -----------------------------------------------------------------------

FORGED = {
    "none": lambda c: make_token(c, alg="none", signature=""),
    # Signed with the real secret: a verifier that takes the algorithm from the token accepts it.
    "HS512": lambda c: make_token(c, alg="HS512", digest=hashlib.sha512),
    # Carrying the valid HS256 MAC: a verifier that ignores alg accepts it.
    "RS256": lambda c: make_token(c, alg="RS256"),
}
TOKEN_ROUTES = [("GET", "/queue/status"), ("GET", "/queue/verify"), ("GET", "/queue/gate"),
                ("DELETE", "/queue/leave")]


def forged_probe(alg):
    async def probe():
        claims = claims_for("good", "u7")
        # The control: the same claims signed HS256 are accepted, so only the algorithm differs.
        control = (await call("GET", "/queue/status", with_token("good", make_token(claims)))).label()
        checks = [expect(f"alg-{alg}.probe", control == "200", f"the same claims as HS256: {control}")]
        for method, path in TOKEN_ROUTES:
            got = (await call(method, path, with_token("good", FORGED[alg](claims)))).label()
            checks.append(expect(f"alg-{alg}.probe", got == "401 invalid_token", f"{method} {path}: {got}"))
        return checks
    return probe


def forged_flood(alg):
    async def run():
        toks = [FORGED[alg](claims_for("good", f"u{i}")) for i in range(100)]

        async def unit(i):
            method, path = TOKEN_ROUTES[i % len(TOKEN_ROUTES)]
            return (await call(method, path, with_token("good", toks[i % len(toks)]))).label()

        seen = await flood(unit, rate=300)
        return summary(seen), vol(seen, "requests"), [
            expect_only(f"alg-{alg}.flood", seen, {"401 invalid_token"})]
    return run


# -- an oversized token ---------------------------------------------------------------------------


def padded_token(size):
    """A validly signed HS256 token for good/u8 of about size bytes (an extra claim pads it)."""
    tok = make_token(claims_for("good", "u8", pad=""))
    return make_token(claims_for("good", "u8", pad="p" * max(0, (size - len(tok)) * 3 // 4)))


async def oversized_probe():
    small, big, huge = padded_token(900), padded_token(8192), padded_token(20000)
    checks = []
    got = (await call("GET", "/queue/status", with_token("good", small))).label()
    checks.append(expect("oversized.probe", got == "200", f"control, {len(small)} bytes: {got}"))
    over = padded_token(1100)
    got = (await call("GET", "/queue/status", with_token("good", over))).label()
    checks.append(expect("oversized.probe", got == "401 invalid_token", f"{len(over)} bytes: {got}"))
    for method, path in TOKEN_ROUTES:
        got = (await call(method, path, with_token("good", big))).label()
        checks.append(expect("oversized.probe", got == "401 invalid_token",
                             f"{method} {path}, {len(big)} bytes: {got}"))
    bearer = [("business_id", "good"), ("Authorization", f"Bearer {big}")]
    got = (await call("GET", "/queue/status", bearer)).label()
    checks.append(expect("oversized.probe", got == "401 invalid_token", f"as Authorization: Bearer: {got}"))
    ex = await exchange(request("GET", "/queue/status", with_token("good", huge)))
    checks.append(expect("oversized.probe", answers(ex) == "431 headers_too_large +close",
                         f"{len(huge)} bytes, over the 16 KiB header limit: {answers(ex)}"))
    return checks


async def oversized_flood():
    toks = [padded_token(2048), padded_token(8192), padded_token(12000)]

    async def unit(i):
        method, path = TOKEN_ROUTES[i % len(TOKEN_ROUTES)]
        return (await call(method, path, with_token("good", toks[i % len(toks)]))).label()

    seen = await flood(unit, rate=300)
    return summary(seen), vol(seen, "requests with 2-12 KB tokens"), [
        expect_only("oversized.flood", seen, {"401 invalid_token"})]


async def no_probe():
    return []


ATTACKS = [
    Attack("slowloris-silent", "slowloris, silent (partial request, then nothing)",
           "closed at CONNECTION_TIMEOUT, no answer", no_probe, slowloris_silent_flood),
    Attack("slowloris-trickle", "slowloris, trickling (a header byte every second)",
           "closed CONNECTION_TIMEOUT after it began (request deadline), no answer", no_probe,
           slowloris_trickle_flood),
    Attack("idle-10k", "10,000 idle connections", "closed at CONNECTION_TIMEOUT, no answer",
           no_probe, idle_flood),
    Attack("idle-10k-perip", f"10,000 idle connections, MAX_CONNECTIONS_PER_IP={PERIP_LIMIT}",
           f"{PERIP_LIMIT} closed at CONNECTION_TIMEOUT, the rest closed at once; no answer",
           no_probe, idle_perip_flood, port=PERIP_PORT),
    Attack("mb-headers", "1 MB of headers", "431 (libmicrohttpd, HTML: past its 32 KiB) + close",
           headers_probe, headers_flood),
    Attack("garbage", "pipelined garbage", "requests before it answered; then 400/505 + close, or close",
           garbage_probe, garbage_flood),
    Attack("bad-bytes", "invalid UTF-8 and NUL bytes in headers",
           "400 invalid_header (NUL in a value) / 401 invalid_token; NUL in a name: 400 bad_request + close",
           bad_bytes_probe, bad_bytes_flood),
    Attack("ip-limit", "one IP enqueueing past its limit", "429 rate_limited + Retry-After; nothing changes",
           ip_limit_probe, ip_limit_flood),
    Attack("xff", "X-Forwarded-For spoofing from an untrusted peer",
           "ignored: 429 rate_limited at the peer's limit", xff_probe, xff_flood),
    Attack("replay", "token replay after finish", "verify ready:false, gate 401 not_ready, finish not_ready",
           replay_probe, replay_flood),
    Attack("cross", "business A's token at business B", "401 invalid_token", cross_probe, cross_flood),
    Attack("alg-none", "alg none token", "401 invalid_token", forged_probe("none"), forged_flood("none")),
    Attack("alg-HS512", "HS512 token (signed with the real secret)", "401 invalid_token",
           forged_probe("HS512"), forged_flood("HS512")),
    Attack("alg-RS256", "RS256 token (carrying a valid HS256 MAC)", "401 invalid_token",
           forged_probe("RS256"), forged_flood("RS256")),
    Attack("oversized", "oversized token (over 1024 bytes)", "401 invalid_token; over 16 KiB of headers: 431 headers_too_large",
           oversized_probe, oversized_flood),
]


# ---- running and reporting ---------------------------------------------------------------------


def verdict(check):
    """ok, FAIL, GAP (a known gap, as documented) or NOT-REPRODUCED (a known gap that held)."""
    if check.ok:
        return "NOT-REPRODUCED" if check.id in KNOWN_GAPS else "ok"
    return "GAP" if check.id in KNOWN_GAPS and not STRICT else "FAIL"


async def run_attack(att, base):
    att.checks = await att.probe()
    for attempt in range(1, P99_ATTEMPTS + 1):
        wrk = await start_good_client(att.port)
        await asyncio.sleep(LEAD_SECONDS)
        try:
            att.seen, att.volume, flood_checks = await att.flood()
        finally:
            att.good = await stop_good_client(wrk)
        att.base = base
        bound = p99_bound(base["p99"])
        perf = [
            expect(f"{att.key}.p99", att.good["p99"] <= bound,
                   f"good client p99 {att.good['p99']:.1f} ms, bound {bound:.1f} ms "
                   f"(baseline {base['p99']:.1f} ms)"),
            expect(f"{att.key}.errors", att.good["errors"] == 0 and att.good["requests"] > 0,
                   f"good client: {att.good['errors']} errors in {att.good['requests']} requests"),
        ]
        # A busy moment of a shared machine can spoil a window: the p99 check alone gets more
        # attempts, each against a fresh baseline. Answers are never retried, and neither is a
        # known gap (it is expected to fail).
        if attempt < P99_ATTEMPTS and not perf[0].ok and perf[0].id not in KNOWN_GAPS:
            print(f"  {att.name}: {perf[0].detail}; measuring a fresh baseline and trying again", flush=True)
            base = await measure_quiet(BASELINE_SECONDS, att.port)
            att.retried = attempt
            continue
        att.checks += flood_checks + perf
        return


def fmt(g, k):
    return f"{g[k]:.1f}" if g else "-"


def table(attacks, before, after):
    lines = [
        "| attack | documented answer | seen | attack volume | good p50 ms (base / during) "
        "| good p99 ms (base / during) | good errors | verdict |",
        "|---|---|---|---|---|---|---|---|",
        f"| no attack (baseline, start) | - | - | - | {fmt(before, 'p50')} | {fmt(before, 'p99')} "
        f"| {before['errors']} | - |",
    ]
    for a in attacks:
        verdicts = Counter(f"{verdict(c)} {c.id.split('.', 1)[1]}" for c in a.checks if verdict(c) != "ok")
        v = ", ".join(k + (f" x{n}" if n > 1 else "") for k, n in verdicts.items()) or "ok"
        tries = f" (try {a.retried + 1})" if a.retried else ""
        lines.append(
            f"| {a.name} | {a.answer} | {a.seen or 'probes only'} | {a.volume} | {fmt(a.base, 'p50')} / "
            f"{fmt(a.good, 'p50')} | {fmt(a.base, 'p99')} / {fmt(a.good, 'p99')}{tries} "
            f"| {a.good['errors'] if a.good else '-'} | {v} |")
    lines.append(f"| no attack (after all attacks) | - | - | - | {fmt(before, 'p50')} / {fmt(after, 'p50')} "
                 f"| {fmt(before, 'p99')} / {fmt(after, 'p99')} | {after['errors']} | - |")
    return "\n".join(lines)


async def main():
    started = time.monotonic()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    await setup_businesses()
    # The quieter of two windows: one busy moment of a shared machine must not loosen every bound.
    before = min([await measure_quiet(BASELINE_SECONDS) for _ in range(2)], key=lambda g: g["p99"])
    print(f"abuse: baseline p50 {before['p50']:.2f} ms, p99 {before['p99']:.2f} ms, "
          f"{before['requests']} requests, {before['errors']} errors", flush=True)
    attacks = [a for a in ATTACKS if not ONLY or a.key in ONLY.split(",")]
    for att in attacks:
        t = time.monotonic()
        base = before
        if att.port != PORT:  # another server: a baseline of its own, measured the same way
            base = min([await measure_quiet(BASELINE_SECONDS, att.port) for _ in range(2)], key=lambda g: g["p99"])
        await run_attack(att, base)
        bad = "".join(f"\n    {verdict(c)} {c.id}: {c.detail}" for c in att.checks if verdict(c) != "ok")
        print(f"abuse: {att.name}: {att.seen or 'probes only'}; good p99 {att.good['p99']:.1f} ms "
              f"({time.monotonic() - t:.0f} s){bad}", flush=True)
    # The server must be back to its baseline once the attacks stop (no connection, thread or
    # memory left behind); as with the attacks, a busy moment of the machine gets more tries.
    for _ in range(P99_ATTEMPTS):
        after = await measure_quiet(BASELINE_SECONDS)
        if after["p99"] <= p99_bound(before["p99"]):
            break
    recovered = [
        expect("after.p99", after["p99"] <= p99_bound(before["p99"]),
               f"after all attacks p99 {after['p99']:.1f} ms, bound {p99_bound(before['p99']):.1f} ms"),
        expect("after.errors", after["errors"] == 0, f"after all attacks: {after['errors']} errors"),
    ]
    checks = [c for a in attacks for c in a.checks] + recovered
    failed = [c for c in checks if verdict(c) == "FAIL"]
    gaps = [c for c in checks if verdict(c) in ("GAP", "NOT-REPRODUCED")]
    wall = time.monotonic() - started
    out = [
        "# make test-abuse",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at the end; server: HTTP_THREADS=2, MAX_CONNECTIONS={MAX_CONNECTIONS}, "
        f"CONNECTION_TIMEOUT={TIMEOUT} s (a second, identical server with MAX_CONNECTIONS_PER_IP={PERIP_LIMIT} "
        f"for the attack that names it, with a baseline of its own). Good client: wrk, 4 connections "
        f"polling /queue/status, 5 ms pause; "
        f"p99 bound under attack max(3 x baseline, baseline + 25 ms), no errors; baseline the quieter of "
        f"two {BASELINE_SECONDS} s windows, a fresh one for each retry. Driver {wall:.0f} s.",
        "",
        table(attacks, before, after),
        "",
    ]
    if gaps:
        out += ["Known gaps (measured every run, not failing it; docs/SECURITY.md, Denial of service):", ""]
        out += [f"- {verdict(c)} `{c.id}`: {c.detail}. Cause: {KNOWN_GAPS[c.id]}." for c in gaps] + [""]
    if failed:
        out += ["FAILED:", ""] + [f"- `{c.id}`: {c.detail}" for c in failed] + [""]
    text = "\n".join(out)
    os.makedirs(os.path.dirname(REPORT), exist_ok=True)
    with open(REPORT, "w") as f:
        f.write(text)
    print("\n" + text, flush=True)
    print(f"abuse: {'FAILED' if failed else 'passed'}: {len(checks)} checks, {len(failed)} failed, "
          f"{sum(verdict(c) == 'GAP' for c in gaps)} known gaps seen; report in {REPORT}", flush=True)
    return 1 if failed else 0


async def run():
    try:
        return await main()
    finally:
        for proc in GOOD_CLIENTS:
            proc.kill()


if __name__ == "__main__":
    sys.exit(asyncio.run(run()))
