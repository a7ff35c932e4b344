-- 0005 (SQLite): the change log ingestion reads the store by. Every write appends one entry per changed
-- record in its own transaction (OperationalStore.record_changes); record_id NULL means "any row of the
-- table". SQLite serialises writers, so AUTOINCREMENT ids are handed out in commit order and a reader
-- that has seen id N has seen every change below it (docs/store-changes.md).

CREATE TABLE store_changes (
    change_id INTEGER PRIMARY KEY AUTOINCREMENT,
    entity TEXT NOT NULL,
    record_id TEXT,
    changed_at TIMESTAMP NOT NULL
);
CREATE INDEX ix_store_changes_entity_change ON store_changes (entity, change_id, record_id);
