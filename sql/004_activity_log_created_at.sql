-- SPDX-License-Identifier: MIT
-- 004_activity_log_created_at.sql -- the index the worker's retention (ACTIVITY_RETENTION_DAYS)
-- deletes by: the oldest rows first, 10,000 per statement, found without reading the table.
-- CONCURRENTLY, so that building it on a large existing table does not hold up the worker's
-- inserts; that cannot run inside a transaction, so this file has none. If a build is
-- interrupted, PostgreSQL keeps an invalid index that IF NOT EXISTS would skip: drop it
-- (DROP INDEX activity_log_created_at_idx) and apply this file again.
-- Idempotent: applying it again changes nothing.
SET client_min_messages = warning; -- no "already exists, skipping" noise on re-runs

CREATE INDEX CONCURRENTLY IF NOT EXISTS activity_log_created_at_idx ON activity_log (created_at);
