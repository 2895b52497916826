-- SPDX-License-Identifier: MIT
-- 001_businesses.sql -- one row per business: its admin key hash and its queue configuration.
--
-- Column names are the API field names (see include/gk/bizconf.h), and the CHECK constraints
-- repeat src/bizconf.c's ranges, so a value that slipped past the API is still refused here.
-- Idempotent: applying it again changes nothing.
BEGIN;
SET LOCAL client_min_messages = warning; -- no "already exists, skipping" noise on re-runs

CREATE TABLE IF NOT EXISTS businesses (
    id text PRIMARY KEY
        CHECK (id ~ '^[A-Za-z0-9._:@-]{1,128}$'),
    -- SHA-256 of the business's own admin key, lower-case hex; NULL when it has none.
    admin_key_hash text NULL
        CHECK (admin_key_hash IS NULL OR admin_key_hash ~ '^[0-9a-f]{64}$'),
    admission_limit integer NOT NULL DEFAULT 100
        CHECK (admission_limit BETWEEN 1 AND 100000),
    admission_frequency integer NOT NULL DEFAULT 5
        CHECK (admission_frequency BETWEEN 1 AND 3600),
    jwt_expiry_seconds integer NOT NULL DEFAULT 300
        CHECK (jwt_expiry_seconds BETWEEN 60 AND 600),
    ready_ttl_seconds integer NOT NULL DEFAULT 600
        CHECK (ready_ttl_seconds BETWEEN 60 AND 3600),
    ip_enqueue_limit integer NOT NULL DEFAULT 100
        CHECK (ip_enqueue_limit BETWEEN 1 AND 1000000),
    ip_enqueue_limit_interval integer NOT NULL DEFAULT 60
        CHECK (ip_enqueue_limit_interval BETWEEN 1 AND 86400),
    ip_status_polling_limit integer NOT NULL DEFAULT 60
        CHECK (ip_status_polling_limit BETWEEN 1 AND 1000000),
    ip_status_polling_limit_interval integer NOT NULL DEFAULT 60
        CHECK (ip_status_polling_limit_interval BETWEEN 1 AND 86400),
    max_active_users integer NOT NULL DEFAULT 0
        CHECK (max_active_users BETWEEN 0 AND 10000000),
    abandon_after_seconds integer NOT NULL DEFAULT 0
        CHECK (abandon_after_seconds = 0 OR abandon_after_seconds BETWEEN 30 AND 86400),
    max_queue_length integer NOT NULL DEFAULT 0
        CHECK (max_queue_length BETWEEN 0 AND 100000000),
    queueing_method text NOT NULL DEFAULT 'fifo'
        CHECK (queueing_method IN ('fifo', 'random', 'passthrough', 'reject')),
    allowed_origins text[] NOT NULL DEFAULT '{*}'
        CHECK (cardinality(allowed_origins) <= 16 AND array_position(allowed_origins, NULL) IS NULL),
    -- Bumped by every UPDATE (trigger below); caches keep the newest version they have seen.
    version bigint NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The version and timestamp are the database's to set, whatever an UPDATE says.
CREATE OR REPLACE FUNCTION businesses_bump_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS businesses_bump_version ON businesses;
CREATE TRIGGER businesses_bump_version
    BEFORE UPDATE ON businesses
    FOR EACH ROW EXECUTE FUNCTION businesses_bump_version();

-- Every API node and worker LISTENs on gk_config and reloads the named business, or drops it
-- when its row is gone (a DELETE: there is no endpoint for it, an operator deletes the row); the
-- notification is sent at commit, so a listener never reads the row before the change is visible.
CREATE OR REPLACE FUNCTION businesses_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gk_config', CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END);
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS businesses_notify_change ON businesses;
CREATE TRIGGER businesses_notify_change
    AFTER INSERT OR UPDATE OR DELETE ON businesses
    FOR EACH ROW EXECUTE FUNCTION businesses_notify_change();

COMMIT;
