-- SPDX-License-Identifier: MIT
-- 008_console.sql -- what the operator console sets: admission_paused (the worker admits nobody
-- while it is true) and the waiting page's brand (`page` in the API: title, message, logo_url,
-- primary_color, language), with src/bizconf.c's defaults and limits. Existing businesses get the
-- defaults. The API checks the syntax of URLs and colours; the CHECKs here bound lengths and the
-- obvious shapes, so a value that slipped past the API is still refused.
-- Idempotent: applying it again changes nothing.
BEGIN;
SET LOCAL client_min_messages = warning; -- no "already exists, skipping" noise on re-runs

ALTER TABLE businesses
    ADD COLUMN IF NOT EXISTS admission_paused boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS page_title text NOT NULL DEFAULT ''
        CHECK (octet_length(page_title) <= 120),
    ADD COLUMN IF NOT EXISTS page_message text NOT NULL DEFAULT ''
        CHECK (octet_length(page_message) <= 1000),
    ADD COLUMN IF NOT EXISTS page_logo_url text NOT NULL DEFAULT ''
        CHECK (page_logo_url = '' OR (octet_length(page_logo_url) <= 1024 AND page_logo_url LIKE 'https://_%')),
    ADD COLUMN IF NOT EXISTS page_primary_color text NOT NULL DEFAULT ''
        CHECK (octet_length(page_primary_color) <= 64),
    ADD COLUMN IF NOT EXISTS page_language text NOT NULL DEFAULT 'auto'
        CHECK (page_language ~ '^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})?$');

COMMIT;
