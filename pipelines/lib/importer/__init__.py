"""`crm import`: bring one export file into the platform, with a report of what happened to every row.

- `run.import_file` plans and carries out an import (store entities upserted, landing entities placed);
- `chunks.read_pieces` reads a file of any size a piece at a time through the ingestion readers;
- `report.ImportReport` is what an import did, printed as one screen or written as JSON.

Mapping presets for common exports live in `pipelines.presets`; the guide is docs/import.md.
"""

from pipelines.lib.importer.report import EntityReport, Fault, ImportReport, render
from pipelines.lib.importer.run import ImportFailed, import_file, write_report

__all__ = ["EntityReport", "Fault", "ImportFailed", "ImportReport", "import_file", "render", "write_report"]
