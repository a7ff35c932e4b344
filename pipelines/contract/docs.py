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
   no value), JSON Lines (one object per line) or Parquet; `.txt` and `.tsv` delimited text and Excel `.xlsx`
   workbooks too, and other delimiters, encodings and shapes as the column mapping below describes them.
   Any number of files per entity; the file name is free except for interaction logs, which come **one file
   per day** named `landing/interactions/YYYY-MM-DD.csv|jsonl|parquet`.
2. **The operational database** (the system of record the portal edits): SQLite at
   `$CRM_HOME/operational.db` by default, or PostgreSQL via `CRM_OPERATIONAL_DB_URL`.

## Id rules
- Every entity has one primary key `<entity>_id`: non-empty text, unique within the entity, stable across
  exports (the same record keeps its id in every export).
- A row whose id was seen before replaces the earlier one when its `updated_at` is newer (upsert); an
  identical row is dropped as an exact duplicate; a row with the same id and `updated_at` but different
  content is quarantined as `duplicate_id`.
- Foreign keys (column *references* below) must name an id that exists in the target entity, in any source.

## Column mapping: exports of another shape
Put `$CRM_HOME/landing/column_mapping.yaml` beside the files to describe, per entity, how your export differs
from the contract, without editing the export. Every key is optional; an entity without a section is read
with the contract's own column names. Each section is checked on its own: a section with a wrong key or
shape fails that entity's files (one sentence naming the file, the entity and the key, shown in the run
summary), and every other entity still loads.

```yaml
accounts:
  columns:            # "header in your file": contract column
    "Customer No": account_id
    "Company": account_name
    "Segment": account_type
  defaults:           # value used when the column is absent from the file (or empty)
    source_system: erp
    is_archived: "false"
```

Each row goes through the keys in this order: headers are renamed (`columns`), `derive` builds columns,
`values` translates, `formats` normalises (derived values too), `defaults` fill what is still empty, and
`collapse` folds repeated records.

### `file`: how the file is written
| key | meaning | default |
| --- | --- | --- |
| `delimiter` | one character (`";"`, `"\\|"`), `tab`, or `whitespace` (runs of spaces and tabs; a value with spaces in double quotes) | `,` (`.tsv`: tab) |
| `header` | `false`: the file has no header line; `names` lists its columns in order | `true` |
| `names` | the column names of a file without header (then used in `columns`, `derive`) | - |
| `encoding` | any Python codec: `latin-1`, `cp1252`, `utf-16`, ... | `utf-8` |
| `format` | `csv`, `jsonl`, `parquet` or `xlsx`: read a file of any suffix as this | by suffix |
| `sheet` | the sheet of an `.xlsx` workbook | the first |

Files ending `.csv`, `.txt`, `.tsv` are delimited text, `.xlsx` an Excel workbook (read in streaming
mode: row numbers are the sheet's rows, header = row 1; an empty row is blank; date cells become dates).
A file of any other suffix is read as delimited text when its sidecar mapping (below) has a `file` section.

```yaml
products:             # a headerless, semicolon-separated Latin-1 export
  file:
    delimiter: ";"
    header: false
    names: [code, title, price, changed]
    encoding: latin-1
  columns: {code: product_id, title: product_name, price: list_price, changed: updated_at}
```

### `columns`: one header may feed several columns
```yaml
products:
  columns:
    "Product ID": [product_id, sku]   # the same value in both contract columns
```

### `values`: translation tables per column
```yaml
opportunities:
  values:
    stage: {Won: closed_won, Engaging: qualification, Lost: closed_lost}
```
A value that is neither in the table nor already one of its translations quarantines its row as
`unmapped_value`, naming the column and the value (`stage 'Parked' has no translation in the mapping's
values.stage`). Empty values stay empty.

### `formats`: dates, decimal commas, fractions
```yaml
orders:
  formats:
    order_date: "%m/%d/%Y"       # or "%Y%m%d", "%d.%m.%Y %H:%M": any strftime format, for date and timestamp columns
order_lines:
  formats:
    line_amount: decimal_comma   # 1.234,56 -> 1234.56 (points, spaces or apostrophes group thousands)
    discount_pct: fraction       # a percent given as 0-1: 0.15 -> 15
```
A value that does not fit its format is kept as it is, so the row is quarantined as `invalid_type` with the
value as your file has it.

### `derive`: columns built from others and the line number
```yaml
order_lines:
  derive:
    order_line_id: "{Order No}-{line}"   # {header of your file}, {contract column} or {line} (the line number)
```
A derived value is empty when one of its parts is empty. A column is either mapped from a header or
derived, not both.

### `collapse`: one flat file for several entities
A shop export has one line per order line, so its orders, customers and products repeat. With
`collapse: true`, lines of one file with the same id fold into the record of their first line
(deterministic: first by line). The folded lines count as duplicates in the load log; attributes that
differ between the repeats are reported as **load warnings** (`raw._load_warnings`, the run summary and the
`crm import` report), with the number of records and examples (`O-2: 'completed' (line 4) and 'cancelled'
(line 7)`; for personal data only the lines), never quarantined line by line. Without `collapse`, a repeated id with the same `updated_at`
and different content is quarantined as `duplicate_id`. Collapsing is asked for per section, never implied:
an export where repeated ids are mistakes keeps the quarantine.

### Sidecar mapping: one file, its own section
`landing/<entity>/<file>.mapping.yaml` holds one section (the keys above, optionally under the entity's
name) for the file `<file>` beside it, and replaces the section of `column_mapping.yaml` for that file. A
sidecar is settings, never data. Worked example: one shop export feeding four entities, placed (or linked)
as `landing/orders/shop.csv`, `landing/order_lines/shop.csv`, `landing/accounts/shop.csv` and
`landing/products/shop.csv`, each with its sidecar:

```csv
Order No,Order Date,Customer No,Customer,Product ID,Product,Qty,Net Total,Status,Changed
O-1,02.01.2026,C-1,Acme,P-1,Suite,2,"1.000,00",Done,2026-01-02T10:00:00
O-1,02.01.2026,C-1,Acme,P-2,Pro,1,"99,50",Done,2026-01-02T10:00:00
```

```yaml
# landing/orders/shop.csv.mapping.yaml
collapse: true
columns: {Order No: order_id, Customer No: account_id, Order Date: order_date, Status: status, Changed: updated_at}
values: {status: {Done: completed, Storno: cancelled}}
formats: {order_date: "%d.%m.%Y"}
defaults: {sales_channel: webshop, currency: EUR}
```

```yaml
# landing/order_lines/shop.csv.mapping.yaml
columns: {Order No: order_id, Product ID: product_id, Qty: quantity, Net Total: line_amount, Changed: updated_at}
derive: {order_line_id: "{Order No}-{line}"}
formats: {line_amount: decimal_comma}
defaults: {discount_pct: 0}
```

(`accounts` and `products` likewise, with `collapse: true`.) An order line may carry its net total
`line_amount` instead of a unit price, as most shop and ERP exports do: the line's revenue is then that
total, and `unit_price` may be empty.

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
- Parquet: the row count in the file's metadata; Excel (`.xlsx`): the sheet's rows that are not empty, after
  the header row.

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
            if c.required_unless:
                rules.append(f"may be empty when `{c.required_unless}` is given")
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
