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

The parts: helpers.py (the settings run.sh passes, HTTP over raw sockets, tokens, the well-behaved
client, checks, the flood and its summaries, the businesses) and attacks.py (each attack's probe
and flood, and ATTACKS); this file runs them against their baselines and writes the report.

Prints the table, writes it to ABUSE_REPORT (tests/artifacts/abuse.md) and exits 1 if any check
failed. ABUSE_ONLY=key,... runs only those attacks (for debugging). Standard library only.
"""
import asyncio
import os
import resource
import sys
import time
from collections import Counter

from attacks import ATTACKS
from helpers import (GOOD_CLIENTS, MAX_CONNECTIONS, ONLY, PERIP_LIMIT, PORT, REPORT, STRICT, TIMEOUT, expect,
                     measure_quiet, setup_businesses, start_good_client, stop_good_client)

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
