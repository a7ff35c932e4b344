"""Mapping presets: column mappings for the exports people already have (Salesforce, HubSpot, web shops).

Each `<name>.yaml` beside this module is an ordinary mapping file (the format of
`pipelines.lib.ingest.mapping`) written against the product's documented export column names, so
`crm import opportunities export.csv --mapping salesforce-opportunity` needs no mapping of one's own.
`--mapping` takes either a path or one of these names; docs/import.md describes each preset.
"""

from __future__ import annotations

from pathlib import Path

PRESETS_DIR = Path(__file__).parent


def list_presets() -> dict[str, Path]:
    """Preset name -> its file, sorted by name."""
    return {p.stem: p for p in sorted(PRESETS_DIR.glob("*.yaml"))}


def resolve_mapping(value: str) -> Path:
    """The mapping file `value` names: an existing path, else a preset name. LookupError otherwise."""
    path = Path(value).expanduser()
    if path.is_file():
        return path
    presets = list_presets()
    name = value[:-5] if value.endswith(".yaml") else value
    if name in presets:
        return presets[name]
    raise LookupError(f"--mapping {value}: no such file and no preset of that name; give the path of a "
                      f"mapping file or one of the presets: {', '.join(presets)}.")
