-- SPDX-License-Identifier: MIT
-- 002_activity_log.sql -- what happened to each business's queue, written by the worker from the
-- Redis activity stream. event_id is the stream entry id, so a batch delivered again after a
-- crash inserts nothing twice (INSERT ... ON CONFLICT (event_id) DO NOTHING).
-- Idempotent: applying it again changes nothing.
BEGIN;
SET LOCAL client_min_messages = warning; -- no "already exists, skipping" noise on re-runs

CREATE TABLE IF NOT EXISTS activity_log (
    id bigserial PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    business_id text NOT NULL,
    user_id text NULL,
    event text NOT NULL
        CHECK (event IN ('enqueue', 'admit', 'verify', 'finish', 'leave', 'expire', 'evict',
                         'rate_limited', 'config_change', 'business_created')),
    created_at timestamptz NOT NULL DEFAULT now(),
    client_ip inet NULL,
    details jsonb NOT NULL DEFAULT '{}'
);

-- GET /activity: one business, newest first, paged with before_id.
CREATE INDEX IF NOT EXISTS activity_log_business_id_idx ON activity_log (business_id, id DESC);

COMMIT;
