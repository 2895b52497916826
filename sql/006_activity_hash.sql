-- SPDX-License-Identifier: MIT
-- 006_activity_hash.sql -- the activity log as a hash chain per business, so that editing,
-- deleting or reordering a past row is detectable (gatekeeper-audit log; docs/OPERATIONS.md,
-- "Checking the activity log").
--
-- hash = SHA-256(the previous row's hash of the same business || the row's canonical content),
-- the canonical content being the UTF-8 text of, one per line: id, event_id, business_id,
-- user_id ('' for NULL), event, created_at as YYYY-MM-DDTHH:MI:SS.ffffffZ in UTC, client_ip
-- (host(), '' for NULL), details (jsonb's text); the first row of a business chains from the
-- empty string. Chain order is id order within a business. activity_chain holds each business's
-- head (the last hash) and anchor: the hash the retained part starts from once retention has
-- deleted older rows (anchor_id: the last deleted row's id).
--
-- The worker's activity consumer writes whole batches chained (src/activitylog.c): it locks the
-- heads of the batch's businesses, computes the hashes itself from the text PostgreSQL gives for
-- each column, inserts the rows with them and moves the heads. gk_chain (a running aggregate over
-- rows in id order) computes the same chain in SQL, for checks by hand. Rows written without a hash (PostgreSQL's own config_change and business_created) are chained one by one by
-- a trigger under the same lock. Rows from before this migration have no hash.
-- Idempotent: applying it again changes nothing.
BEGIN;
SET LOCAL client_min_messages = warning; -- no "already exists, skipping" noise on re-runs

ALTER TABLE activity_log ADD COLUMN IF NOT EXISTS hash bytea NULL;

CREATE TABLE IF NOT EXISTS activity_chain (
    business_id text PRIMARY KEY,
    head bytea NOT NULL DEFAULT '',
    anchor bytea NOT NULL DEFAULT '',
    anchor_id bigint NOT NULL DEFAULT 0
);

-- STABLE (as to_char is), so that it is inlined into the statements that call it.
CREATE OR REPLACE FUNCTION gk_activity_canon(id bigint, event_id text, business_id text, user_id text,
                                             event text, created_at timestamptz, client_ip inet,
                                             details jsonb) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT convert_to(id::text || E'\n' || event_id || E'\n' || business_id || E'\n' ||
                      coalesce(user_id, '') || E'\n' || event || E'\n' ||
                      to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || E'\n' ||
                      coalesce(host(client_ip), '') || E'\n' || details::text, 'UTF8')
$$;

-- gk_chain(x ORDER BY ...): the first value as it is (a business's head), then
-- SHA-256(state || x) for each next one: the running hash chain.
CREATE OR REPLACE FUNCTION gk_chain_step(state bytea, x bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN state IS NULL THEN x ELSE sha256(state || x) END
$$;
CREATE OR REPLACE AGGREGATE gk_chain(bytea) (SFUNC = gk_chain_step, STYPE = bytea);

CREATE OR REPLACE FUNCTION gk_activity_chain_row() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    prev bytea;
BEGIN
    INSERT INTO activity_chain (business_id) VALUES (NEW.business_id)
        ON CONFLICT (business_id) DO UPDATE SET head = activity_chain.head
        RETURNING head INTO prev;
    NEW.id := nextval('activity_log_id_seq');
    NEW.hash := sha256(prev || gk_activity_canon(NEW.id, NEW.event_id, NEW.business_id, NEW.user_id,
                                                 NEW.event, NEW.created_at, NEW.client_ip, NEW.details));
    UPDATE activity_chain SET head = NEW.hash WHERE business_id = NEW.business_id;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS activity_log_chain ON activity_log;
CREATE TRIGGER activity_log_chain BEFORE INSERT ON activity_log
    FOR EACH ROW WHEN (NEW.hash IS NULL) EXECUTE FUNCTION gk_activity_chain_row();

COMMIT;
