-- SPDX-License-Identifier: MIT
-- 007_pow.sql -- proof of work on joining: pow_mode (off, on, auto) and pow_max_number, the work
-- of one challenge, with src/bizconf.c's defaults and ranges. Existing businesses get the
-- defaults (off).
-- Idempotent: applying it again changes nothing.
BEGIN;
SET LOCAL client_min_messages = warning; -- no "already exists, skipping" noise on re-runs

ALTER TABLE businesses
    ADD COLUMN IF NOT EXISTS pow_mode text NOT NULL DEFAULT 'off'
        CHECK (pow_mode IN ('off', 'on', 'auto')),
    ADD COLUMN IF NOT EXISTS pow_max_number integer NOT NULL DEFAULT 100000
        CHECK (pow_max_number BETWEEN 1000 AND 10000000);

COMMIT;
