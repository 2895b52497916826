-- SPDX-License-Identifier: MIT
-- 005_events.sql -- scheduled events (a sale that opens at a set time, with a pre-queue and a
-- verifiable draw; docs/EVENTS.md) and the record of each draw. server_seed is secret until the
-- event opens; seed_commitment (its SHA-256) is public from creation on. The draw columns are
-- written once, by the worker that draws at opening.
-- Idempotent: applying it again changes nothing.
BEGIN;
SET LOCAL client_min_messages = warning; -- no "already exists, skipping" noise on re-runs

CREATE TABLE IF NOT EXISTS events (
    id text PRIMARY KEY CHECK (id ~ '^ev_[0-9a-f]{16}$'),
    business_id text NOT NULL REFERENCES businesses (id) ON DELETE CASCADE,
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    prequeue_opens_at timestamptz NOT NULL,
    opens_at timestamptz NOT NULL,
    ends_at timestamptz NULL,
    -- Overrides of the business's config from opens_at to ends_at; NULL = not overridden.
    admission_limit integer NULL,
    admission_frequency integer NULL,
    max_active_users integer NULL,
    ready_ttl_seconds integer NULL,
    server_seed text NOT NULL CHECK (server_seed ~ '^[0-9a-f]{64}$'),
    seed_commitment text NOT NULL CHECK (seed_commitment ~ '^[0-9a-f]{64}$'),
    cancelled_at timestamptz NULL,
    participants_digest text NULL,
    draw_seed text NULL,
    participants integer NULL,
    drawn_at timestamptz NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (prequeue_opens_at < opens_at AND (ends_at IS NULL OR opens_at < ends_at))
);

-- GET /events: one business, newest first.
CREATE INDEX IF NOT EXISTS events_business_idx ON events (business_id, created_at DESC);

-- The sorted participants of a draw (GET /events/{id}/participants) and their keys in draw
-- order (GET /events/{id}/draw).
CREATE TABLE IF NOT EXISTS event_participants (
    event_id text NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    user_id text NOT NULL,
    draw_key text NOT NULL,
    place integer NOT NULL,
    PRIMARY KEY (event_id, user_id)
);
CREATE INDEX IF NOT EXISTS event_participants_place_idx ON event_participants (event_id, place);

-- The activity events of scheduled events: a join to a pre-queue, a draw's placement, and the
-- admin's creating and cancelling.
ALTER TABLE activity_log DROP CONSTRAINT IF EXISTS activity_log_event_check;
ALTER TABLE activity_log ADD CONSTRAINT activity_log_event_check
    CHECK (event IN ('enqueue', 'admit', 'verify', 'finish', 'leave', 'expire', 'evict',
                     'rate_limited', 'config_change', 'business_created', 'prequeue', 'draw',
                     'event_created', 'event_cancelled'));

COMMIT;
