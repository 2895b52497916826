#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# draw_check.py -- recomputes a scheduled event's draw from its public record alone, with nothing
# of Gatekeeper's code: Python's hashlib and hmac, following docs/EVENTS.md word for word.
#   draw_check.py <draw.json> <participants.txt>
# Prints the participants in draw order, one per line; exits 1 naming the first step that fails.
import hashlib
import hmac
import json
import sys


def fail(what):
    print("FAIL: " + what, file=sys.stderr)
    sys.exit(1)


def main():
    with open(sys.argv[1], "rb") as f:
        draw = json.load(f)
    with open(sys.argv[2], "rb") as f:
        users = [line for line in f.read().split(b"\n") if line]
    server_seed = bytes.fromhex(draw["server_seed"])
    if hashlib.sha256(server_seed).hexdigest() != draw["seed_commitment"]:
        fail("seed_commitment")
    digest = hashlib.sha256(b"".join(u + b"\n" for u in sorted(users))).hexdigest()
    if digest != draw["participants_digest"]:
        fail("participants_digest")
    draw_seed = hashlib.sha256(server_seed + bytes.fromhex(digest)).digest()
    if draw_seed.hex() != draw["draw_seed"]:
        fail("draw_seed")
    keyed = sorted((hmac.new(draw_seed, u, hashlib.sha256).hexdigest(), u) for u in users)
    if [k for k, _ in keyed] != draw["order"] or draw["participants"] != len(users):
        fail("order")
    for _, u in keyed:
        print(u.decode())


main()
