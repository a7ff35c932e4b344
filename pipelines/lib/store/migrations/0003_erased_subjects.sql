-- 0003: tombstones of erased records (right to erasure). Holds only a one-way hash of "<entity>:<id>" and
-- the time, never personal data. Ingestion drops any incoming row whose id, or any id it refers to, is
-- here, so a customer erased once does not come back from an old export.

CREATE TABLE erased_subjects (
    subject_hash TEXT NOT NULL PRIMARY KEY,
    entity TEXT NOT NULL,
    erased_at TIMESTAMP NOT NULL
);
