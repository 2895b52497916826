/* SPDX-License-Identifier: MIT */
/*
 * gatekeeper.js -- browser client for the Gatekeeper waiting room. No dependencies; served by
 * Gatekeeper itself at /gatekeeper.js.
 *
 *   const gk = new Gatekeeper({ baseUrl: "https://queue.example.com", businessId: "shop1" });
 *   await gk.enqueue();                          // or gk.enqueue("your-own-user-id")
 *   await gk.waitUntilReady({ onUpdate: (s) => show(s.position, s.eta_seconds) });
 *   location.assign("/checkout?gk_token=" + encodeURIComponent(gk.token));
 *
 * The user id and the token are kept in localStorage (per baseUrl and business), so a reload, or
 * a new tab, keeps the place: enqueue() with the same user id answers with the same place.
 * Requests that fail for passing reasons (network errors, 5xx, 429 rate limits) are retried
 * after Retry-After or an exponential backoff; everything else rejects with a GatekeeperError.
 * While the page is hidden it polls at the server's poll_hidden_ms (slowly, but within the
 * abandonment window), and at once when the page is shown again.
 */
(function (root, factory) {
    if (typeof module === "object" && module.exports) {
        module.exports = factory();
    } else {
        const api = factory();
        root.Gatekeeper = api.Gatekeeper;
        root.GatekeeperError = api.GatekeeperError;
    }
})(typeof self !== "undefined" ? self : this, function () {
    "use strict";

    const ID_RE = /^[A-Za-z0-9._:@-]{1,128}$/;
    const BACKOFF_FIRST_MS = 1000;
    const BACKOFF_MAX_MS = 30000;
    const RETRY_AFTER_MAX_MS = 120000;

    /* code is the server's error code ("invalid_token", "queue_full", ...) or one of the client's
     * own: "not_found" (no longer in the queue), "token_lost" (this user id is queued, but its
     * token is not stored here), "no_token", "aborted". */
    class GatekeeperError extends Error {
        constructor(code, message, status, body) {
            super(message);
            this.name = "GatekeeperError";
            this.code = code;
            this.status = status || 0;
            this.body = body || null;
        }
    }

    function pageHidden() {
        return typeof document !== "undefined" && document.hidden === true;
    }

    /* Between 80% and 120% of ms, so that many clients spread out. */
    function jitter(ms) {
        return Math.round(ms * (0.8 + 0.4 * Math.random()));
    }

    /* Waits ms, or less when wakers (a Set) is woken; rejects when signal aborts. */
    function sleep(ms, signal, wakers) {
        return new Promise(function (resolve, reject) {
            if (signal && signal.aborted) {
                reject(new GatekeeperError("aborted", "Aborted."));
                return;
            }
            const t = setTimeout(done, ms);
            function done() {
                clearTimeout(t);
                if (wakers) wakers.delete(done);
                if (signal) signal.removeEventListener("abort", abort);
                resolve();
            }
            function abort() {
                clearTimeout(t);
                if (wakers) wakers.delete(done);
                reject(new GatekeeperError("aborted", "Aborted."));
            }
            if (wakers) wakers.add(done);
            if (signal) signal.addEventListener("abort", abort, { once: true });
        });
    }

    /* Retry-After in ms (seconds or an HTTP date), or null. */
    function retryAfterMs(res) {
        const v = res.headers.get("Retry-After");
        if (v === null) return null;
        let ms = /^\d+$/.test(v.trim()) ? Number(v.trim()) * 1000 : Date.parse(v) - Date.now();
        if (!Number.isFinite(ms)) return null;
        return Math.min(Math.max(ms, 1000), RETRY_AFTER_MAX_MS);
    }

    /* 32 hex digits from the browser's CSPRNG: a user id nobody else has. */
    function randomId() {
        const b = new Uint8Array(16);
        crypto.getRandomValues(b);
        return Array.from(b, function (x) {
            return x.toString(16).padStart(2, "0");
        }).join("");
    }

    /* localStorage when the browser lets us use it (some private modes throw), else memory. */
    function defaultStorage() {
        try {
            const s = window.localStorage;
            s.setItem("gatekeeper:probe", "1");
            s.removeItem("gatekeeper:probe");
            return s;
        } catch (e) {
            const m = new Map();
            return {
                getItem: (k) => (m.has(k) ? m.get(k) : null),
                setItem: (k, v) => m.set(k, String(v)),
                removeItem: (k) => m.delete(k),
            };
        }
    }

    class Gatekeeper {
        /* opts.baseUrl: where Gatekeeper answers ("" or omitted: this page's own origin).
         * opts.businessId: the business. opts.storage: a Storage-like object (default
         * localStorage). opts.fetch: a fetch function (default the browser's). */
        constructor(opts) {
            opts = opts || {};
            if (!ID_RE.test(opts.businessId || "")) {
                const msg = "businessId must be 1-128 of A-Z a-z 0-9 . _ : @ -.";
                throw new GatekeeperError("invalid_business", msg);
            }
            this.baseUrl = (opts.baseUrl || "").replace(/\/+$/, "");
            this.businessId = opts.businessId;
            this._storage = opts.storage || defaultStorage();
            this._fetch = opts.fetch || fetch.bind(globalThis);
            this._key = "gatekeeper:" + this.baseUrl + ":" + this.businessId;
            this._saved = this._load();
            /* Browsers slow down timers in background tabs: ask at once when the visitor comes
             * back to the tab, or the network comes back, instead of at the next timer. */
            this._wakers = new Set();
            const wake = () => {
                if (typeof document === "undefined" || !document.hidden) this._wakers.forEach((f) => f());
            };
            if (typeof document !== "undefined") document.addEventListener("visibilitychange", wake);
            if (typeof window !== "undefined") window.addEventListener("online", wake);
        }

        /* A fresh random user id, for callers that keep their own. */
        static randomId() {
            return randomId();
        }

        /* The claims of a queue token ({bid, sub, iat, exp}, times in seconds), read without
         * checking the signature (only the server can), or null when it is not one. Once the user
         * is ready, exp covers their whole ready time: keep a cookie that long (exp - iat). */
        static claims(token) {
            try {
                const b64 = String(token).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
                const c = JSON.parse(atob(b64));
                return Number.isInteger(c.iat) && Number.isInteger(c.exp) ? c : null;
            } catch (e) {
                return null;
            }
        }

        /* The user id in use (stored), or null before the first enqueue(). */
        get userId() {
            return this._saved.userId;
        }

        /* The current queue token, or null. A status poll may change it; read it when you need it
         * (for /queue/verify on your backend, or the gk_token cookie). */
        get token() {
            return this._saved.token;
        }

        _load() {
            try {
                const v = JSON.parse(this._storage.getItem(this._key) || "null");
                if (v && typeof v === "object" && (v.userId === null || ID_RE.test(v.userId))) {
                    return { userId: v.userId, token: typeof v.token === "string" ? v.token : null };
                }
            } catch (e) {
                /* unreadable: start afresh */
            }
            return { userId: null, token: null };
        }

        _save(userId, token) {
            this._saved = { userId: userId, token: token };
            try {
                this._storage.setItem(this._key, JSON.stringify(this._saved));
            } catch (e) {
                /* storage full or refused: the place lasts as long as this page */
            }
        }

        /* One API call with retries. Resolves with the parsed 2xx body; rejects with a
         * GatekeeperError for answers that retrying cannot change. */
        async _call(method, path, headers, opts) {
            const signal = opts && opts.signal;
            const onRetry = opts && opts.onRetry;
            let backoff = BACKOFF_FIRST_MS;
            for (;;) {
                let res = null;
                let body = null;
                let delay;
                let reason;
                try {
                    res = await this._fetch(this.baseUrl + path, {
                        method: method,
                        headers: Object.assign({ "business-id": this.businessId }, headers),
                        cache: "no-store",
                        credentials: "omit",
                        signal: signal,
                    });
                    body = await res.json().catch(function () {
                        return null;
                    });
                } catch (e) {
                    if (signal && signal.aborted) throw new GatekeeperError("aborted", "Aborted.");
                    res = null;
                }
                if (res !== null && res.ok) return body || {};
                const code = body && typeof body.error === "string" ? body.error : "";
                if (res === null) {
                    reason = "network";
                } else if (res.status === 429) {
                    reason = "rate_limited";
                } else if (res.status >= 500 && code !== "queue_full" && code !== "queue_closed") {
                    reason = "unavailable";
                } else {
                    const msg = (body && body.message) || "Gatekeeper answered " + res.status + ".";
                    throw new GatekeeperError(code || "http_" + res.status, msg, res.status, body);
                }
                const ra = res !== null ? retryAfterMs(res) : null;
                if (ra !== null) {
                    delay = jitter(ra);
                } else {
                    delay = jitter(backoff);
                    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
                }
                if (onRetry) onRetry({ reason: reason, delayMs: delay, status: res ? res.status : 0 });
                await sleep(delay, signal, reason === "rate_limited" ? null : this._wakers);
            }
        }

        /* Joins the queue as userId (default: the stored user id, else a new random one).
         * Resolves with the server's answer ({position, ready, eta_seconds, ...}). Asking again
         * for a user who is already waiting or ready keeps their place and their stored token;
         * if that token is not stored here, rejects with code "token_lost" (the error's body
         * says whether the user is ready). Call waitUntilReady() next even when the answer is
         * ready: its first poll renews a stored token so that it lasts the whole ready time.
         * opts: {signal, onRetry({reason, delayMs, status})}. */
        async enqueue(userId, opts) {
            if (userId === undefined || userId === null) userId = this._saved.userId || randomId();
            if (!ID_RE.test(userId)) {
                throw new GatekeeperError("invalid_user", "userId must be 1-128 of A-Z a-z 0-9 . _ : @ -.");
            }
            const kept = userId === this._saved.userId ? this._saved.token : null;
            const r = await this._call("POST", "/queue/enqueue", { "user-id": userId }, opts);
            const token = r.jwt ? r.jwt : kept;
            if (!token) {
                this._save(userId, null);
                throw new GatekeeperError(
                    "token_lost",
                    "This user is already in the queue, but its token is not stored in this browser.",
                    200,
                    r
                );
            }
            this._save(userId, token);
            return r;
        }

        /* Polls /queue/status until the user is ready, at the server's poll_after_ms with jitter,
         * keeping every refreshed token. Resolves with the last status ({state: "ready",
         * jwt_token, ...}); rejects with code "not_found" when the user is no longer queued
         * (left, finished, expired, evicted: enqueue() again to rejoin at the back).
         * opts: {onUpdate(status), onRetry({reason, delayMs, status}), signal}. */
        async waitUntilReady(opts) {
            opts = opts || {};
            for (;;) {
                if (!this._saved.token) throw new GatekeeperError("no_token", "Call enqueue() first.");
                let s;
                try {
                    const auth = { Authorization: "Bearer " + this._saved.token };
                    s = await this._call("GET", "/queue/status", auth, opts);
                } catch (e) {
                    if (e.code === "invalid_token") this._save(this._saved.userId, null);
                    throw e;
                }
                if (typeof s.jwt_token === "string" && s.jwt_token) this._save(this._saved.userId, s.jwt_token);
                if (opts.onUpdate) opts.onUpdate(s);
                if (s.state === "ready") return s;
                if (s.state !== "waiting") {
                    throw new GatekeeperError("not_found", s.warning_msg || "Not in the queue.", 200, s);
                }
                let next = Number.isFinite(s.poll_after_ms) && s.poll_after_ms > 0 ? s.poll_after_ms : 5000;
                /* A hidden page polls as rarely as the server allows without eviction
                 * (poll_hidden_ms), and at once when it is shown again (the wakers). */
                if (pageHidden() && Number.isFinite(s.poll_hidden_ms) && s.poll_hidden_ms > next) {
                    next = s.poll_hidden_ms;
                }
                await sleep(jitter(next), opts.signal, this._wakers);
            }
        }

        /* Gives up the place (or the admission). Resolves with the server's answer
         * ({status: "left" | "not_found"}); the stored token is forgotten, the user id kept. */
        async leave(opts) {
            const token = this._saved.token;
            if (!token) return { status: "not_found", message: "Not in the queue." };
            const r = await this._call("DELETE", "/queue/leave", { Authorization: "Bearer " + token }, opts);
            this._save(this._saved.userId, null);
            return r;
        }
    }

    return { Gatekeeper: Gatekeeper, GatekeeperError: GatekeeperError };
});
