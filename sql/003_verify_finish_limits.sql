-- SPDX-License-Identifier: MIT
-- 003_verify_finish_limits.sql -- per-IP rate limits of verify and gate (ip_verify_limit*) and of
-- finish and leave (ip_finish_limit*), with src/bizconf.c's defaults and ranges. Existing
-- businesses get the defaults.
-- Idempotent: applying it again changes nothing.
BEGIN;
SET LOCAL client_min_messages = warning; -- no "already exists, skipping" noise on re-runs

ALTER TABLE businesses
    ADD COLUMN IF NOT EXISTS ip_verify_limit integer NOT NULL DEFAULT 1200
        CHECK (ip_verify_limit BETWEEN 1 AND 1000000),
    ADD COLUMN IF NOT EXISTS ip_verify_limit_interval integer NOT NULL DEFAULT 60
        CHECK (ip_verify_limit_interval BETWEEN 1 AND 86400),
    ADD COLUMN IF NOT EXISTS ip_finish_limit integer NOT NULL DEFAULT 600
        CHECK (ip_finish_limit BETWEEN 1 AND 1000000),
    ADD COLUMN IF NOT EXISTS ip_finish_limit_interval integer NOT NULL DEFAULT 60
        CHECK (ip_finish_limit_interval BETWEEN 1 AND 86400);

COMMIT;
