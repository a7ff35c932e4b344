-- 0005 (PostgreSQL): the change log ingestion reads the store by. Every write appends one entry per
-- changed record in its own transaction (OperationalStore.record_changes); record_id NULL means "any row
-- of the table". Sequence values are taken before commit, so change_id is not commit-ordered here: each
-- entry also keeps the id of the transaction that wrote it, and a reader only moves its cursor up to the
-- oldest transaction still running (pg_snapshot_xmin), so an entry that commits late is still read
-- (docs/store-changes.md).

CREATE TABLE store_changes (
    change_id BIGSERIAL PRIMARY KEY,
    entity TEXT NOT NULL,
    record_id TEXT,
    changed_at TIMESTAMP NOT NULL,
    txid BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint)
);
CREATE INDEX ix_store_changes_entity_txid ON store_changes (entity, txid, record_id);
