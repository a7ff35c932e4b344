-- 0006 (both dialects): the store's identity, a random UUID set when this migration is applied
-- (OperationalStore.migrate) and kept on this migration's row. Ingestion keys its change-log cursor by it,
-- so a cursor kept for a store that was since deleted and created again under the same URL (ids start
-- again at 1) never counts for the new one (docs/store-changes.md). It lives in schema_migrations, which
-- backups treat as bookkeeping, so a freshly migrated store still counts as empty for a restore.

ALTER TABLE schema_migrations ADD COLUMN store_identity TEXT;
