#!/usr/bin/env python3
"""seeds.py -- writes the seed corpora tests/fuzz/corpus/<target>/ (run from anywhere).

The seeds are a handful of small valid and invalid inputs per target; libFuzzer grows its own
corpus from them in build-fuzz/corpus/. Tokens and keys are made with the fixed secrets that
fuzz_token.c and fuzz_http.c use, so valid ones get past signature checks. Rerunning rewrites
the same files (nothing here is random).
"""
import base64
import hashlib
import hmac
import json
import os

JWT_SECRET = b"fuzz-jwt-secret-0123456789abcdefghijklmnop"
JWT_PREVIOUS = b"fuzz-previous-secret-zyxwvutsrqponmlkjihgf"
ADMIN_TOKEN = "fuzz-admin-token-0123456789abcdefghijklmnop"
SHOP1_KEY = "gk_fuzz-shop1-key-0123456789abcdefghijklmnopq"
FAR = 4102444800  # 2100-01-01: valid whenever the fuzzer runs
OLD = 1700000300  # expired for fuzz_token (now = 1800000000) and for fuzz_http (real time)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(claims, key=JWT_SECRET, header=None, alg="sha256"):
    h = b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    p = b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(key, f"{h}.{p}".encode(), getattr(hashlib, alg)).digest()
    return f"{h}.{p}.{b64(sig)}"


def claims(bid="shop1", sub="user-1", iat=1700000000, exp=FAR):
    return {"bid": bid, "sub": sub, "iat": iat, "exp": exp}


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


VALID = jwt(claims())
EXPIRED = jwt(claims(exp=OLD))
PREV = jwt(claims(), key=JWT_PREVIOUS)
SHOP2 = jwt(claims(bid="shop2"))
SHOP3 = jwt(claims(bid="shop3"))
NONE = b64(b'{"alg":"none"}') + "." + b64(json.dumps(claims()).encode()) + "."
HS512 = jwt(claims(), header={"alg": "HS512", "typ": "JWT"}, alg="sha512")

# POST /config bodies
for name, body in {
    "empty": "{}",
    "all": json.dumps({"admission_limit": 50, "admission_frequency": 2, "jwt_expiry_seconds": 120,
                       "ready_ttl_seconds": 900, "ip_enqueue_limit": 10, "ip_enqueue_limit_interval": 60,
                       "ip_status_polling_limit": 30, "ip_status_polling_limit_interval": 60,
                       "max_active_users": 1000, "abandon_after_seconds": 60, "max_queue_length": 5000,
                       "queueing_method": "random",
                       "allowed_origins": ["https://shop.example", "http://localhost:3000"]}),
    "origins_star": '{"allowed_origins":["*"]}',
    "bad_range": '{"admission_limit":0}',
    "bad_type": '{"admission_limit":"5"}',
    "unknown": '{"admision_limit":5}',
    "float": '{"jwt_expiry_seconds":60.0}',
    "nul_method": '{"queueing_method":"fifo\\u0000x"}',
    "not_object": "[1,2]",
    "trailing": '{} x',
    "deep": '{"allowed_origins":[[[[1]]]]}',
    "utf8_key": '{"\u00e9t\u00e9":1}',
}.items():
    write("fuzz_bizconf", name, body)

# POST /businesses bodies
for name, body in {
    "ok": '{"business_id":"shop9"}',
    "ws": ' \r\n{"business_id" : "a.b-c_d:e@f"}\n',
    "extra": '{"business_id":"x","y":1}',
    "nested": '{"a":{"b":{"c":{"d":{}}}}}',
    "bad_utf8": b'{"business_id":"\xc3\x28"}',
    "nul": b'{"business_id":"a"}\x00',
    "two": '{}{}',
    "numbers": '{"a":1e400,"b":-0,"c":123456789012345678901234567890}',
    "escapes": '{"a":"\\ud800","b":"\\u0000","c":"\\/"}',
    "empty": "",
}.items():
    write("fuzz_json", name, body)

# tokens
for name, tok in {
    "valid": VALID, "expired": EXPIRED, "previous_key": PREV, "alg_none": NONE, "hs512": HS512,
    "two_parts": VALID.rsplit(".", 1)[0], "padded": VALID + "=", "garbage": "a.b.c",
    "long": "A" * 1100 + ".e30.sig",
}.items():
    write("fuzz_token", name, tok)

# POST /events bodies (and, the same input, RFC 3339 times)
for name, v in {
    "ok": '{"name":"Launch","prequeue_opens_at":"2030-01-01T09:30:00Z","opens_at":"2030-01-01T10:00:00Z",'
          '"ends_at":null,"config":{"admission_limit":500,"ready_ttl_seconds":300}}',
    "offset": '{"name":"x","prequeue_opens_at":"2030-01-01T10:00:00.5+01:00","opens_at":"2030-01-01T10:00:00Z"}',
    "order": '{"name":"x","prequeue_opens_at":"2030-01-01T11:00:00Z","opens_at":"2030-01-01T10:00:00Z"}',
    "bad_conf": '{"name":"x","prequeue_opens_at":"2030-01-01T09:00:00Z","opens_at":"2030-01-01T10:00:00Z",'
                '"config":{"admission_limit":0}}',
    "time": "2030-01-01T10:00:00.123Z",
    "time_offset": "2030-01-01T10:00:00-05:30",
}.items():
    write("fuzz_event", name, v)

# identity headers
for name, v in {"ok": "shop1", "all_chars": "aZ09._:@-", "space": "shop 1", "max": "a" * 128,
                "too_long": "a" * 129, "empty": "", "nul": b"ab\x00cd", "utf8": "caf\u00e9"}.items():
    write("fuzz_id", name, v)

# Accept-Language
for name, v in {"browser": "fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5", "zh": "zh-Hant-TW;q=0.3,zh",
                "q_zero": "ja;q=0", "bad_q": "es;q=2, it;q=0.1234", "star": "*", "empty": "",
                "junk": ";;,,q=,-,a-,-b", "long": ",".join(["xx-YY;q=0.5"] * 200) + ",pt-BR",
                "nul": b"de\x00fr"}.items():
    write("fuzz_i18n", name, v)

# X-Forwarded-For: first byte picks the peer (index into fuzz_clientip.c's list; 0x80 = no header)
for name, v in {
    "trusted_v4": b"\x00" + b"198.51.100.7",
    "chain": b"\x00" + b"1.1.1.1, 203.0.113.5, 10.0.0.9",
    "spoof_untrusted_peer": b"\x06" + b"1.2.3.4",
    "v6": b"\x03" + b"2001:db8::5, fd00::1",
    "mapped": b"\x08" + b"::ffff:198.51.100.1",
    "junk": b"\x01" + b"unknown, 10.0.0.1",
    "empty_entries": b"\x02" + b",,, ,",
    "no_header": b"\x80",
    "many": b"\x00" + b",".join(b"10.0.0.%d" % i for i in range(40)),
}.items():
    write("fuzz_clientip", name, v)

# environment tables: KEY=VALUE lines
for name, v in {
    "defaults": "",
    "full": "PORT=8080\nBIND=::1\nREDIS_URL=redis://:pw@[::1]:6380/3\nBUSINESS_IDS=a:b::c\n"
            "TRUSTED_PROXIES=10.0.0.0/8, ::1/128 ,192.168.0.0/16\nHTTP_THREADS=4\nLOG_LEVEL=debug\n"
            "JWT_SECRET_PREVIOUS=previous-secret-0123456789abcdefghijk\n",
    "missing_required": "REDIS_URL\n",
    "bad_port": "PORT=65536\n",
    "bad_cidr": "TRUSTED_PROXIES=10.0.0.0/33\n",
    "weak_secret": "JWT_SECRET=" + "a" * 40 + "\n",
    "redis_user": "REDIS_URL=redis://user:secret@host.example:1/15\n",
    "redis_bad": "REDIS_URL=redis://[::1:6379\n",
    "test_clock": "GK_TEST_CLOCK=1\nREDIS_URL=redis://10.0.0.1\n",
    "cidr_v6": "TRUSTED_PROXIES=2001:db8::/32,fe80::1\n",
    "cluster": "REDIS_URL\nREDIS_CLUSTER_NODES=redis://:pw@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002\n",
    "cluster_and_url": "REDIS_CLUSTER_NODES=h:1,h:2\n",
    "cluster_bad": "REDIS_URL\nREDIS_CLUSTER_NODES=h:1,,redis://h:2/3\n",
}.items():
    write("fuzz_config", name, v)


# whole HTTP requests
def req(method, path, headers=(), body=""):
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"] + list(headers)
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body.encode())}")
    return "\r\n".join(lines) + "\r\n\r\n" + body


OP = f"Authorization: Bearer {ADMIN_TOKEN}"
for name, v in {
    "health_shallow": req("GET", "/health?shallow"),
    "health": req("HEAD", "/health"),
    "enqueue": req("POST", "/queue/enqueue", ["business_id: shop1", "user_id: visitor42",
                                              "X-Forwarded-For: 198.51.100.7, 10.0.0.1"]),
    "enqueue_hyphen": req("POST", "/queue/enqueue", ["business-id: shop3", "user-id: u1",
                                                     "Origin: http://localhost:3000"]),
    "enqueue_closed": req("POST", "/queue/enqueue", ["business_id: shop2", "user_id: u1"]),
    "status": req("GET", "/queue/status", ["business_id: shop1", f"jwt: {VALID}"]),
    "status_expired": req("GET", "/queue/status", ["business_id: shop1", f"jwt: {EXPIRED}"]),
    "verify_bearer": req("GET", "/queue/verify", ["business_id: shop1", f"Authorization: Bearer {PREV}"]),
    "finish": req("DELETE", "/queue/finish", ["business_id: shop1", f"jwt: {VALID}"]),
    "leave_other_biz": req("DELETE", "/queue/leave", ["business_id: shop1", f"jwt: {SHOP2}"]),
    "gate_cookie": req("GET", "/queue/gate", ["X-Gatekeeper-Business: shop3",
                                              f"Cookie: theme=dark; gk_token={SHOP3}; x=1"]),
    "gate_alg_none": req("GET", "/queue/gate", ["X-Gatekeeper-Business: shop1", f"jwt: {NONE}"]),
    "preflight": req("OPTIONS", "/queue/status", ["Origin: https://evil.example",
                                                  "Access-Control-Request-Method: GET"]),
    "businesses": req("POST", "/businesses", [OP, "Content-Type: application/json"],
                      '{"business_id":"shop9"}'),
    "businesses_bad": req("POST", "/businesses", [OP], '{"business_id":"shop9","x":1}'),
    "config_get": req("GET", "/config", ["business_id: shop1", f"Authorization: Bearer {SHOP1_KEY}"]),
    "config_post": req("POST", "/config", ["business_id: shop1", OP],
                       '{"admission_limit":7,"allowed_origins":["https://a.example"]}'),
    "config_post_bad": req("POST", "/config", ["business_id: shop1", OP], '{"admission_limit":0}'),
    "stats": req("GET", "/stats", ["business_id: shop1", OP]),
    "activity": req("GET", "/activity?limit=10&before_id=99", ["business_id: shop1", OP]),
    "activity_bad": req("GET", "/activity?limit=&before_id=-1&limit=2", ["business_id: shop1", OP]),
    "not_found": req("GET", "/nope/%2e%2e/x?y=%zz", []),
    "bad_method": req("PUT", "/queue/enqueue", ["business_id: shop1"]),
    "chunked": "POST /config HTTP/1.1\r\nHost: x\r\nbusiness_id: shop1\r\n" + OP +
               "\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"adm\r\n0\r\n\r\n",
    "too_large": req("POST", "/config", ["business_id: shop1", OP]).replace(
        "Content-Length: 0", "Content-Length: 70000"),
    "pipelined": req("GET", "/health?shallow") + req("GET", "/queue/status", ["business_id: shop1"]) +
                 req("GET", "/nope"),
    "request_id": req("GET", "/health?shallow", ["X-Request-Id: abc-123_x.y"]),
    "http10": "GET /health?shallow HTTP/1.0\r\n\r\n",
    "garbage": "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    "nul_header": b"GET /queue/status HTTP/1.1\r\nHost: x\r\nbusiness_id: sh\x00op1\r\n\r\n",
    "wait_page": req("GET", "/wait/shop3?return_to=http%3A%2F%2Flocalhost%3A3000%2Fcheckout%3Fa%3D1"),
    "wait_page_evil": req("GET", "/wait/shop1?return_to=//evil.example&return_to=%5C%5Cx"),
    "client_js": req("GET", "/gatekeeper.js", ["If-None-Match: \"x\""]),
    "metrics": req("GET", "/metrics"),
    "openapi": req("HEAD", "/openapi.json"),
    "folded": "GET /queue/status HTTP/1.1\r\nHost: x\r\nbusiness_id: shop1\r\n  continued\r\n\r\n",
}.items():
    write("fuzz_http", name, v)


# proof-of-work payloads: ALTCHA's JSON in base64, under the key fuzz_pow.c derives from the secrets
def pow_payload(secret=JWT_SECRET, business="shop1", expires=1800000300, number=7, shift=0):
    key = hmac.new(secret, b"gatekeeper pow challenge key", hashlib.sha256).hexdigest().encode()
    salt = f"00112233445566778899aabb?expires={expires}&business={business}&"
    challenge = hashlib.sha256(f"{salt}{number}".encode()).hexdigest()
    sig = hmac.new(key, challenge.encode(), hashlib.sha256).hexdigest()
    p = {"algorithm": "SHA-256", "challenge": challenge, "number": number + shift, "salt": salt,
         "signature": sig}
    return base64.b64encode(json.dumps(p, separators=(",", ":")).encode()).decode()


for name, v in {
    "valid": pow_payload(),
    "previous_key": pow_payload(secret=JWT_PREVIOUS),
    "url_safe": pow_payload().replace("+", "-").replace("/", "_").rstrip("="),
    "wrong_number": pow_payload(shift=1),
    "other_business": pow_payload(business="shop2"),
    "expired": pow_payload(expires=1700000000),
    "not_base64": "!!!",
    "empty_object": base64.b64encode(b"{}").decode(),
}.items():
    write("fuzz_pow", name, v)
