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
 *
 * When the business asks joins for a proof of work (428 pow_required), enqueue() solves the
 * challenge (ALTCHA's format) in a Web Worker running this same file, so the page never
 * freezes, and joins again with the solution; on pow_invalid or pow_reused it solves one new
 * challenge and tries once more. Where no worker can start, it solves on the page in short
 * slices. opts.onPow({state: "solving" | "done" | "failed"}) lets a page say so.
 *
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
    const POW_SLICE = 5000; /* hashes between two yields when solving on the page */
    /* This file's own URL, for the solver's worker; captured while it is being loaded. */
    const SCRIPT_URL =
        typeof document !== "undefined" && document.currentScript ? document.currentScript.src : null;

    /* SHA-256 of an ASCII string, in hex. Plain JavaScript: synchronous (a solver needs tens of
     * thousands in a row, which WebCrypto's promises make slow) and available outside secure
     * contexts. */
    const K256 = new Uint32Array([
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]);
    const W256 = new Uint32Array(64);
    const M256 = new Uint32Array(64); /* the padded message: strings of up to 247 bytes */
    const H256 = new Int32Array(8);
    const HEX = [];
    for (let i = 0; i < 256; i++) HEX.push((i < 16 ? "0" : "") + i.toString(16));
    function sha256hex(str) {
        const n = str.length;
        const blocks = ((n + 8) >> 6) + 1;
        const m = M256;
        const w = W256;
        m.fill(0, 0, blocks * 16);
        for (let i = 0; i < n; i++) m[i >> 2] |= (str.charCodeAt(i) & 0xff) << (24 - (i & 3) * 8);
        m[n >> 2] |= 0x80 << (24 - (n & 3) * 8);
        m[blocks * 16 - 1] = n * 8;
        let h0 = 0x6a09e667, h1 = 0xbb67ae85 | 0, h2 = 0x3c6ef372, h3 = 0xa54ff53a | 0;
        let h4 = 0x510e527f, h5 = 0x9b05688c | 0, h6 = 0x1f83d9ab, h7 = 0x5be0cd19;
        for (let b = 0; b < blocks; b++) {
            for (let t = 0; t < 16; t++) w[t] = m[b * 16 + t];
            for (let t = 16; t < 64; t++) {
                const x = w[t - 15], y = w[t - 2];
                const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
                const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
                w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
            }
            let a = h0, bb = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
            for (let t = 0; t < 64; t++) {
                const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
                const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K256[t] + w[t]) | 0;
                const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
                const t2 = (S0 + ((a & bb) ^ (a & c) ^ (bb & c))) | 0;
                h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = bb; bb = a; a = (t1 + t2) | 0;
            }
            h0 = (h0 + a) | 0; h1 = (h1 + bb) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;
            h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + h) | 0;
        }
        H256[0] = h0; H256[1] = h1; H256[2] = h2; H256[3] = h3;
        H256[4] = h4; H256[5] = h5; H256[6] = h6; H256[7] = h7;
        let out = "";
        for (let i = 0; i < 8; i++) {
            const v = H256[i];
            out += HEX[(v >>> 24) & 255] + HEX[(v >>> 16) & 255] + HEX[(v >>> 8) & 255] + HEX[v & 255];
        }
        return out;
    }

    /* The number n in [from, to] with sha256hex(salt + n) === challenge, or null. */
    function solveRange(challenge, salt, from, to) {
        for (let n = from; n <= to; n++) {
            if (sha256hex(salt + n) === challenge) return n;
        }
        return null;
    }

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

    /* Solves challenge c on the page, a slice at a time, so the page stays responsive. */
    async function solveInSlices(c, signal) {
        for (let from = 0; from <= c.maxnumber; from += POW_SLICE) {
            const n = solveRange(c.challenge, c.salt, from, Math.min(from + POW_SLICE - 1, c.maxnumber));
            if (n !== null) return n;
            await sleep(0, signal);
        }
        return null;
    }

    /* Solves challenge c in a Web Worker running this file (from its own origin, or through a
     * blob that imports it); on the page when no worker starts. Resolves with the number or
     * null. */
    function solve(c, signal) {
        let w = null;
        try {
            if (SCRIPT_URL && typeof Worker !== "undefined") {
                const sameOrigin = new URL(SCRIPT_URL).origin === location.origin;
                const boot = "importScripts(" + JSON.stringify(SCRIPT_URL) + ");";
                w = sameOrigin
                    ? new Worker(SCRIPT_URL)
                    : new Worker(URL.createObjectURL(new Blob([boot], { type: "text/javascript" })));
            }
        } catch (e) {
            w = null;
        }
        if (w === null) return solveInSlices(c, signal);
        return new Promise(function (resolve, reject) {
            function end() {
                w.terminate();
                if (signal) signal.removeEventListener("abort", abort);
            }
            function abort() {
                end();
                reject(new GatekeeperError("aborted", "Aborted."));
            }
            w.onmessage = function (e) {
                end();
                resolve(e.data && Number.isInteger(e.data.number) ? e.data.number : null);
            };
            w.onerror = function (e) {
                /* Refused by a content security policy, or failed to load: solve here. */
                if (e && e.preventDefault) e.preventDefault();
                end();
                solveInSlices(c, signal).then(resolve, reject);
            };
            if (signal) signal.addEventListener("abort", abort, { once: true });
            w.postMessage({ challenge: c.challenge, salt: c.salt, maxnumber: c.maxnumber });
        });
    }

    /* The X-Gatekeeper-Pow value for challenge c solved with number: ALTCHA's payload. */
    function powPayload(c, number) {
        const p = { algorithm: c.algorithm, challenge: c.challenge, number: number, salt: c.salt, signature: c.signature };
        return btoa(JSON.stringify(p));
    }

    /* Inside the solver's worker, this file only answers challenges. */
    if (typeof WorkerGlobalScope !== "undefined" && self instanceof WorkerGlobalScope) {
        self.onmessage = function (e) {
            const c = e.data || {};
            self.postMessage({ number: solveRange(String(c.challenge), String(c.salt), 0, Number(c.maxnumber) || 0) });
        };
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
         * A proof of work the business asks for is solved on the way (see the top of this file).
         * opts: {signal, onRetry({reason, delayMs, status}), onPow({state})}. */
        async enqueue(userId, opts) {
            if (userId === undefined || userId === null) userId = this._saved.userId || randomId();
            if (!ID_RE.test(userId)) {
                throw new GatekeeperError("invalid_user", "userId must be 1-128 of A-Z a-z 0-9 . _ : @ -.");
            }
            const kept = userId === this._saved.userId ? this._saved.token : null;
            /* A user already queued shows their token and is not asked for a proof again. */
            const headers = kept ? { "user-id": userId, Authorization: "Bearer " + kept } : { "user-id": userId };
            let r;
            try {
                r = await this._call("POST", "/queue/enqueue", headers, opts);
            } catch (e) {
                if (e.code !== "pow_required" || !e.body || !e.body.challenge) throw e;
                r = await this._enqueueWithPow(headers, e.body.challenge, opts);
            }
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

        /* Joins with a solution of challenge; once more with a new challenge when the server
         * finds the solution invalid or spent (a challenge that expired meanwhile, say). */
        async _enqueueWithPow(headers, challenge, opts) {
            const onPow = (opts && opts.onPow) || function () {};
            const signal = opts && opts.signal;
            for (let attempt = 0; ; attempt++) {
                onPow({ state: "solving", maxnumber: challenge.maxnumber });
                const n = await solve(challenge, signal);
                try {
                    if (n === null) throw new GatekeeperError("pow_invalid", "The challenge has no solution.");
                    const h = Object.assign({ "X-Gatekeeper-Pow": powPayload(challenge, n) }, headers);
                    const r = await this._call("POST", "/queue/enqueue", h, opts);
                    onPow({ state: "done" });
                    return r;
                } catch (e) {
                    const again = e.code === "pow_invalid" || e.code === "pow_reused" || e.code === "pow_required";
                    if (!again || attempt >= 1) {
                        if (e.code !== "aborted") onPow({ state: again ? "failed" : "done" });
                        throw e;
                    }
                }
                challenge = await this._call("GET", "/queue/challenge", {}, opts);
            }
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
                /* prequeue: a scheduled event's, before its opening; polled like waiting. */
                if (s.state !== "waiting" && s.state !== "prequeue") {
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
