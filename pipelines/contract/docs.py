"""Render the import guide (docs/IMPORT_FORMAT.md) from the contract, so the docs cannot drift from it.

`tests/test_contract.py` fails when the committed guide differs from what this renders; run
`crm contract docs` after changing the contract.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.contract import Contract, load_contract
from pipelines.contract.validate import REASONS

_TYPE_HELP = {
    "string": "text",
    "integer": "whole number",
    "decimal": "number, `.` as decimal separator",
    "boolean": "`true`/`false` (also 1/0, yes/no)",
    "date": "`YYYY-MM-DD`",
    "timestamp": "`YYYY-MM-DDTHH:MM:SS` (UTC; `Z` or an offset is converted)",
}

#: Rules of the columns whose values the installation sets in $CRM_HOME/crm.yaml (docs/settings.md).
_VOCABULARY_HELP = {
    "stages": "one of the `stages` in `crm.yaml` (default: prospecting, qualification, proposal, negotiation, "
              "closed_won, closed_lost)",
    "currency": "the reporting currency of `crm.yaml` (default `EUR`) or one with a rate there; "
                "other currencies are quarantined as `unknown_currency`",
}

_INTRO = """\
# Import format: bringing your own CRM exports

*Generated from `pipelines/contract/crm_contract.yaml` by `crm contract docs`; do not edit by hand.*

The platform reads two kinds of source:

1. **Landing files** in `$CRM_HOME/landing/<entity>/`: CSV (UTF-8, header row, comma-separated, empty field =
   no value), JSON Lines (one object per line) or Parquet. Any number of files per entity; the file name is
   free except for interaction logs, which come **one file per day** named
   `landing/interactions/YYYY-MM-DD.csv|jsonl|parquet`.
2. **The operational database** (the system of record the portal edits): SQLite at
   `$CRM_HOME/operational.db` by default, or PostgreSQL via `CRM_OPERATIONAL_DB_URL`.

## Id rules
- Every entity has one primary key `<entity>_id`: non-empty text, unique within the entity, stable across
  exports (the same record keeps its id in every export).
- A row whose id was seen before replaces the earlier one when its `updated_at` is newer (upsert); an
  identical row is dropped as an exact duplicate; a row with the same id and `updated_at` but different
  content is quarantined as `duplicate_id`.
- Foreign keys (column *references* below) must name an id that exists in the target entity, in any source.

## Column mapping: exports with other headers
Put `$CRM_HOME/landing/column_mapping.yaml` beside the files to rename headers and fill constant values, per
entity, without editing the export:

```yaml
accounts:
  columns:            # "header in your file": contract column
    "Customer No": account_id
    "Company": account_name
    "Segment": account_type
  defaults:           # value used when the column is absent from the file
    source_system: erp
    is_archived: "false"
```

## What happens to a bad row
Each row is checked against this contract. A row that fails is **quarantined** (table `raw._quarantine`,
shown on the portal's data-quality page) with the file, line, field and one of these reasons; the rest of
the file loads. Counts reconcile per file: rows read = rows loaded + rows quarantined + exact duplicates.

**How rows are counted.** Rows read are counted from the file itself, not by the parser that reads it, so a
file the parser misreads fails the reconciliation instead of passing it:
- a text file is split into lines at LF, CRLF or a lone CR (JSON Lines: LF and CRLF); a line holding only
  spaces, tabs and CR is blank and not a row (with a tab delimiter, tabs are not blank); the first line of
  a delimited file is its header unless the mapping says `header: false`; every other line is one row;
- a quoted value may hold a line break (`"two\nlines"`): those lines are one row if Python's `csv` module,
  reading exactly those lines again, finds one record with the header's number of fields;
- Parquet: the row count in the file's metadata.

**Quotes.** As in RFC 4180 and Python's `csv` module, a `"` opens a quoted value only at the start of a
field, `""` inside it is a quote, and a quote anywhere else is part of the value (`INV-1"` is the id
`INV-1"`). A quote that opens a value and never closes (or whose value spans lines in a row with the wrong
number of fields) makes only its own line a `malformed_row`; reading goes on at the next line.
A NUL byte in the first line means a binary file (not read); elsewhere it is an invalid character of its
row (`bad_encoding`), like bytes that are not UTF-8.

| reason | meaning |
| --- | --- |
"""


def render_import_guide(contract: Contract | None = None) -> str:
    contract = contract or load_contract()
    out = [_INTRO]
    out += [f"| `{code}` | {text} |\n" for code, text in REASONS.items()]
    out.append("\n## Entities\n\n")
    out.append("| entity | source | primary key | updated by |\n| --- | --- | --- | --- |\n")
    for e in contract.entities.values():
        out.append(f"| [{e.name}](#{e.name.replace('_', '-')}) | {', '.join(e.source)} | `{e.primary_key}` "
                   f"| `{e.updated_at}` |\n")
    for e in contract.entities.values():
        out.append(f"\n### {e.name}\n\n{e.description}\n\n")
        out.append(f"Source: {', '.join(e.source)}. Primary key `{e.primary_key}`; versions ordered by "
                   f"`{e.updated_at}`.")
        if e.partition_by_day:
            out.append(f" Partitioned by day of `{e.partition_by_day}`.")
        out.append("\n\n| column | type | required | rules |\n| --- | --- | --- | --- |\n")
        for c in e.columns:
            rules = []
            if c.allowed:
                rules.append("one of " + ", ".join(f"`{v}`" for v in c.allowed))
            if c.vocabulary:
                rules.append(_VOCABULARY_HELP.get(c.vocabulary, f"any value, unless `crm.yaml` lists the values "
                                                                f"of `dimensions.{c.vocabulary}`"))
            if c.min is not None:
                rules.append(f">= {c.min:g}")
            if c.max is not None:
                rules.append(f"<= {c.max:g}")
            if c.references:
                rules.append(f"references `{c.references}`")
            if c.pii:
                rules.append("personal data")
            if c.description:
                rules.append(c.description)
            out.append(f"| `{c.name}` | {c.type} ({_TYPE_HELP[c.type]}) | {'yes' if c.required else 'no'} "
                       f"| {'; '.join(rules)} |\n")
    return "".join(out)


def write_import_guide(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_import_guide(), encoding="utf-8")
    return path.resolve()
