"""Ingestion of CRM records into the warehouse `raw` layer: plain functions, wrapped by Dagster assets.

Raw layer (shared with dbt, do not change without the dbt owner): `raw.<entity>` per contract entity,
one row per primary key (latest `updated_at` wins), contract columns in contract order with DuckDB types,
then `_source`, `_source_file`, `_source_line`, `_batch_id`, `_ingested_at`. `raw._quarantine` holds every
rejected row with reason, field, file and line; `raw._load_log` one row per (batch, entity, source file)
with rows_read = rows_loaded + rows_quarantined + duplicates_dropped + rows_erased (rows of customers
erased on request, see `pipelines.lib.erasure`), plus one row (status `ignored`, no counts) per
landing file a batch did not read, saying why and what to do; `raw._quarantine_log` the quarantine rows
that left the quarantine (loaded, quarantined again differently, or gone from their source);
`raw._landing_files` the sha256 of each landing file last loaded (unchanged files are skipped). See
docs/quarantine.md.

Column mapping for exports whose headers differ: see `pipelines.lib.ingest.mapping` (format documented
there; the file is `$CRM_HOME/landing/column_mapping.yaml`).

Entry points: `ingest_all(home)` for everything in one process, `Ingestor(home, con).ingest(entity)` for
one entity (what each Dagster asset does), `reconcile(con, batch_id)` for the count check.
"""

from pipelines.lib.ingest.mapping import ColumnMapping, EntityMapping, MappingError, load_column_mapping
from pipelines.lib.ingest.readers import UnreadableFileError
from pipelines.lib.ingest.reconcile import batch_summary, reconcile
from pipelines.lib.ingest.run import (
    EntityResult,
    Ingestor,
    SourceResult,
    entity_order,
    ingest_all,
    new_batch_id,
)

__all__ = [
    "ColumnMapping", "EntityMapping", "MappingError", "load_column_mapping", "UnreadableFileError",
    "EntityResult", "Ingestor", "SourceResult", "entity_order", "ingest_all", "new_batch_id", "reconcile",
    "batch_summary",
]
