# SPDX-License-Identifier: MIT
"""attacks.py -- every attack of `make test-abuse`, each a probe (the documented answer, asserted
once) and a flood (run beside the well-behaved client), and ATTACKS, the list abuse.py runs in
order. Built from helpers.py; see abuse.py."""
import asyncio
import base64
import hashlib
import json
import os
import random
from collections import Counter

from helpers import (ATTACKER, Attack, LIMITED_IP, NEWCOMER_IP, PERIP_LIMIT, PERIP_PID, PERIP_PORT, PORT,
                     PROXY_IP, SERVER_PID, SPOOFER_IP, TIMEOUT, VISITOR_IP, answers, call, claims_for,
                     connect, enqueue, exchange, expect, expect_only, flood, good_token, make_token, operator,
                     parse_responses, read_until_closed, request, summary, vol)


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


# -- joins without, or with a forged, proof of work ----------------------------------------------


def pow_payload(c, number):
    doc = {"algorithm": c["algorithm"], "challenge": c["challenge"], "number": number, "salt": c["salt"],
           "signature": c["signature"]}
    return base64.b64encode(json.dumps(doc).encode()).decode()


def pow_solve(c):
    for n in range(c["maxnumber"] + 1):
        if hashlib.sha256(f"{c['salt']}{n}".encode()).hexdigest() == c["challenge"]:
            return n
    raise RuntimeError("the challenge has no solution")


POW = [("business_id", "guarded")]


async def pow_probe():
    checks = []
    got = (await enqueue("guarded", "pow-probe")).label()
    checks.append(expect("pow.probe", got == "428 pow_required", f"no proof: {got}"))
    c = (await call("GET", "/queue/challenge", POW)).json()
    forged = dict(c, challenge="0" * 64)
    got = (await enqueue("guarded", "pow-probe", extra=[("X-Gatekeeper-Pow", pow_payload(forged, 0))])).label()
    checks.append(expect("pow.probe", got == "403 pow_invalid", f"a challenge of the client's making: {got}"))
    good = pow_payload(c, pow_solve(c))
    got = (await enqueue("guarded", "pow-probe", extra=[("X-Gatekeeper-Pow", good)])).label()
    checks.append(expect("pow.probe", got == "200", f"a solution: {got}"))
    got = (await enqueue("guarded", "pow-probe-2", extra=[("X-Gatekeeper-Pow", good)])).label()
    checks.append(expect("pow.probe", got == "403 pow_reused", f"the same solution again: {got}"))
    return checks


async def pow_flood():
    c = (await call("GET", "/queue/challenge", POW)).json()
    forged = [pow_payload(dict(c, challenge=f"{i:064x}"), i) for i in range(100)]

    async def unit(i):
        kind = i % 3
        if kind == 0:
            return (await call("GET", "/queue/challenge", POW)).label()
        extra = [("X-Gatekeeper-Pow", forged[i % len(forged)])] if kind == 1 else []
        return (await enqueue("guarded", f"pow-flood-{i}", extra=extra)).label()

    seen = await flood(unit, rate=300)
    return summary(seen), vol(seen, "requests"), [
        expect_only("pow.flood", seen, {"200", "403 pow_invalid", "428 pow_required"})]


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
    Attack("pow", "joins with no or a forged proof of work, and challenge requests (pow_mode on)",
           "428 pow_required / 403 pow_invalid before any Redis work; challenges 200, stateless",
           pow_probe, pow_flood),
    Attack("oversized", "oversized token (over 1024 bytes)", "401 invalid_token; over 16 KiB of headers: 431 headers_too_large",
           oversized_probe, oversized_flood),
]
