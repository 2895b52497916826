#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A minimal business backend behind the Gatekeeper waiting room (Python standard library only).

Every protected request asks Gatekeeper first (GET /queue/verify) and is served only when the
visitor has been admitted; the request that completes the visit (POST /checkout) calls
DELETE /queue/finish afterwards, so the slot goes to the next visitor at once.

The visitor arrives from the waiting room with ?gk_token=<token> (or, behind the nginx example,
with the gk_token cookie): the token is moved into an HttpOnly cookie and the address cleaned,
so it does not stay in the browser's history or leak in Referer headers.

Environment:
  GATEKEEPER_URL    where this server reaches Gatekeeper (default http://127.0.0.1:8000)
  BUSINESS_ID       the business (default shop1)
  PORT, BIND        where this server listens (default 9000 on 127.0.0.1)
  PUBLIC_URL        this site as browsers see it, for return_to (default http://127.0.0.1:PORT);
                    it must be listed in the business's allowed_origins
  WAITING_ROOM_URL  where to send visitors who are not admitted
                    (default GATEKEEPER_URL/wait/BUSINESS_ID)
"""

import base64
import html
import http.cookies
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GATEKEEPER_URL = os.environ.get("GATEKEEPER_URL", "http://127.0.0.1:8000").rstrip("/")
BUSINESS_ID = os.environ.get("BUSINESS_ID", "shop1")
BIND = os.environ.get("BIND", "127.0.0.1")
PORT = int(os.environ.get("PORT", "9000"))
PUBLIC_URL = os.environ.get("PUBLIC_URL", f"http://127.0.0.1:{PORT}").rstrip("/")
WAITING_ROOM_URL = os.environ.get("WAITING_ROOM_URL", f"{GATEKEEPER_URL}/wait/{BUSINESS_ID}")
COOKIE = "gk_token"
TOKEN_RE = re.compile(r"[A-Za-z0-9._-]{1,1024}")  # a JWT: base64url segments and dots


def gatekeeper(method, path, token):
    """Calls Gatekeeper with the visitor's token; returns (HTTP status, JSON body or {})."""
    req = urllib.request.Request(
        GATEKEEPER_URL + path,
        method=method,
        headers={"business-id": BUSINESS_ID, "Authorization": "Bearer " + token},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as res:
            return res.status, json.load(res)
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.load(e)
        except ValueError:
            return e.code, {}
    except (urllib.error.URLError, OSError, ValueError):
        return 503, {}


def lifetime(token):
    """Seconds the token lasts from its issue, or None: an admitted visitor's lasts their whole
    ready time, and so should the cookie holding it. (Only Gatekeeper checks the signature.)"""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return int(claims["exp"]) - int(claims["iat"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None


def page(title, body):
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><main><h1>{html.escape(title)}</h1>{body}</main></html>"
    ).encode()


class Handler(BaseHTTPRequestHandler):
    server_version = "gatekeeper-example-backend"

    def log_message(self, fmt, *args):  # one line per request on stderr, without tokens
        sys.stderr.write("backend: %s %s\n" % (self.command, self.path.split("?", 1)[0]))

    def send(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def token(self):
        jar = http.cookies.SimpleCookie()
        try:
            jar.load(self.headers.get("Cookie", ""))
        except http.cookies.CookieError:
            return ""
        token = jar[COOKIE].value if COOKIE in jar else ""
        return token if TOKEN_RE.fullmatch(token) else ""

    def admitted(self):
        """The visitor's token when Gatekeeper says they are admitted; else answers and returns None."""
        token = self.token()
        if token:
            status, body = gatekeeper("GET", "/queue/verify", token)
            if status == 200 and body.get("ready") is True:
                return token
            if status >= 500:
                self.send(503, page("Please try again", "<p>The queue cannot be checked right now.</p>"),
                          [("Retry-After", "5")])
                return None
        # Not admitted (no token, waiting, finished, expired): to the waiting room, and back here.
        back = urllib.parse.quote(PUBLIC_URL + self.path, safe="")
        self.send(303, headers=[("Location", f"{WAITING_ROOM_URL}?return_to={back}")])
        return None

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
        token = [v for k, v in query if k == COOKIE and TOKEN_RE.fullmatch(v)]
        if token:
            # Straight from the waiting room: keep the token in a cookie, drop it from the address.
            rest = urllib.parse.urlencode([(k, v) for k, v in query if k != COOKIE])
            clean = url.path + ("?" + rest if rest else "")
            cookie = f"{COOKIE}={token[-1]}; Path=/; HttpOnly; SameSite=Lax"
            seconds = lifetime(token[-1])
            if seconds is not None and seconds > 0:
                cookie += f"; Max-Age={seconds}"
            if PUBLIC_URL.startswith("https:"):
                cookie += "; Secure"
            self.send(303, headers=[("Location", clean), ("Set-Cookie", cookie)])
            return
        if url.path != "/":
            self.send(404, page("Not found", "<p>No such page.</p>"))
            return
        if self.admitted() is None:
            return
        self.send(200, page("You're in", (
            "<p>Welcome to the sale: you have been admitted.</p>"
            '<form method=post action="/checkout"><button>Complete purchase</button></form>')))

    def do_POST(self):
        if urllib.parse.urlsplit(self.path).path != "/checkout":
            self.send(404, page("Not found", "<p>No such page.</p>"))
            return
        token = self.admitted()
        if token is None:
            return
        # ... the real work of the business happens here ...
        self.send(200, page("Thank you", "<p>Your order is complete.</p>"))
        # Done with this visitor: free the slot for the next one in line.
        status, body = gatekeeper("DELETE", "/queue/finish", token)
        if status != 200:
            sys.stderr.write(f"backend: finish answered {status} {body.get('error', '')}\n")


def main():
    server = ThreadingHTTPServer((BIND, PORT), Handler)
    sys.stderr.write(f"backend: {BUSINESS_ID} on http://{BIND}:{PORT}, Gatekeeper {GATEKEEPER_URL}\n")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
