"""Render the dbt staging layer of the CRM entities from the contract, so dbt cannot drift from it.

From `crm_contract.yaml` this writes, into `dbt_project/models/staging/crm/`:

- `_crm__sources.yml`: every raw table ingestion writes, with its columns, contract types and descriptions;
- `_crm__models.yml`: one staging model per entity with its docs and tests (`unique` + `not_null` on the
  primary key, `not_null` on required columns, `relationships` on references and on the installation's
  stages and currencies, `accepted_values` on closed lists);
- `stg_crm__<entity>.sql`: rename and cast only, one cast per contract column.

What does not follow from the contract (the currency conversion of order lines, columns staging adds,
wordings of the docs, test configs) lives in `dbt_overrides.yaml` beside this module; every key there names
an entity and column of the contract, so an override cannot outlive what it overrides.
`tests/test_contract_dbt.py` fails when the committed files differ from what this renders; run
`crm contract dbt` after changing the contract or the overrides.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipelines.contract import DUCKDB_TYPES, Column, Contract, Entity, load_contract
from pipelines.lib.warehouse import LINEAGE_COLUMNS

OVERRIDES_PATH = Path(__file__).with_name("dbt_overrides.yaml")
STAGING_DIR = Path(__file__).resolve().parents[2] / "dbt_project" / "models" / "staging" / "crm"
SOURCE_NAME = "crm"

_GENERATED = "Generated from pipelines/contract/crm_contract.yaml (and dbt_overrides.yaml) by `crm contract dbt`; " \
             "do not edit by hand."

#: Docs of the lineage columns ingestion adds to every raw table (their names and types:
#: pipelines.lib.warehouse.LINEAGE_COLUMNS).
_LINEAGE_DOCS: dict[str, str] = {
    "_source": "Where the row came from: 'store' (operational database) or 'landing' (files).",
    "_source_file": "File relative to landing/, or 'store:<table>'.",
    "_source_line": "Line (or row number) within the source file.",
    "_batch_id": "Ingestion batch that loaded the row.",
    "_ingested_at": "When ingestion loaded the row.",
}
#: The lineage columns staging keeps.
STAGING_LINEAGE_COLUMNS = ("_source", "_ingested_at")

#: Vocabularies whose values a settings staging model holds: (model, column) a column is checked against.
_VOCABULARY_MODELS: dict[str, tuple[str, str]] = {
    "stages": ("stg_settings__stages", "stage"),
    "currency": ("stg_settings__currencies", "currency"),
}
_VOCABULARY_DOCS: dict[str, str] = {
    "stages": "A stage of crm.yaml `stages`.",
    "currency": "The reporting currency or one with a rate in crm.yaml `currency`.",
}


class OverrideError(ValueError):
    """The overrides file names something the contract does not have, or has a key this renderer ignores."""


@dataclass
class ExtraColumn:
    """A column staging adds that is not in the contract (e.g. the price as the file gave it)."""

    name: str
    type: str
    expression: str
    after: str
    description: str
    comment: str | None = None


@dataclass
class ColumnOverride:
    source_description: str | None = None
    model_description: str | None = None
    expression: str | None = None
    comment: str | None = None
    #: per generated test name, keys merged into that test's body (e.g. {"relationships": {"config": {...}}})
    tests: dict[str, dict] = field(default_factory=dict)
    #: tests appended after the generated ones, as dbt writes them
    extra_tests: list = field(default_factory=list)


@dataclass
class EntityOverride:
    source_description: str | None = None
    model_description: str | None = None
    sql_comment: str | None = None
    ctes: list[tuple[str, str]] = field(default_factory=list)
    joins: list[str] = field(default_factory=list)
    columns: dict[str, ColumnOverride] = field(default_factory=dict)
    extra_columns: list[ExtraColumn] = field(default_factory=list)


_ENTITY_KEYS = {"source_description", "model_description", "sql_comment", "ctes", "joins", "columns",
                "extra_columns"}
_COLUMN_KEYS = {"source_description", "model_description", "expression", "comment", "tests", "extra_tests"}
_EXTRA_KEYS = {"name", "type", "expression", "after", "description", "comment"}


def load_overrides(contract: Contract, path: Path = OVERRIDES_PATH) -> dict[str, EntityOverride]:
    """Read the overrides and check every entity, column and key they name against the contract."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out: dict[str, EntityOverride] = {}
    for name, body in (raw.get("entities") or {}).items():
        where = f"{path.name}: entities.{name}"
        if name not in contract.entities:
            raise OverrideError(f"{where} is not an entity of the contract; remove it or fix the name.")
        _check_keys(body, _ENTITY_KEYS, where)
        entity = contract.entities[name]
        override = EntityOverride(
            source_description=body.get("source_description"),
            model_description=body.get("model_description"),
            sql_comment=body.get("sql_comment"),
            ctes=[(c["name"], c["sql"].strip()) for c in body.get("ctes") or []],
            joins=list(body.get("joins") or []),
        )
        for col_name, col_body in (body.get("columns") or {}).items():
            if col_name not in entity.column_names:
                raise OverrideError(f"{where}.columns.{col_name} is not a column of {name} in the contract; "
                                    "remove it or fix the name.")
            _check_keys(col_body, _COLUMN_KEYS, f"{where}.columns.{col_name}")
            override.columns[col_name] = ColumnOverride(
                source_description=col_body.get("source_description"),
                model_description=col_body.get("model_description"),
                expression=col_body.get("expression"),
                comment=col_body.get("comment"),
                tests=dict(col_body.get("tests") or {}),
                extra_tests=list(col_body.get("extra_tests") or []),
            )
        for i, extra in enumerate(body.get("extra_columns") or []):
            _check_keys(extra, _EXTRA_KEYS, f"{where}.extra_columns[{i}]")
            missing = sorted(_EXTRA_KEYS - {"comment"} - set(extra))
            if missing:
                raise OverrideError(f"{where}.extra_columns[{i}] lacks {', '.join(missing)}; give each of them.")
            column = ExtraColumn(**extra)
            known = entity.column_names + [e.name for e in override.extra_columns]
            if column.name in known:
                raise OverrideError(f"{where}.extra_columns.{column.name} is already a column of {name}; "
                                    "override it under columns instead.")
            if column.after not in known:
                raise OverrideError(f"{where}.extra_columns.{column.name}: `after: {column.after}` is not a column "
                                    f"of {name}; name a contract column or an earlier extra column.")
            if column.type not in DUCKDB_TYPES:
                raise OverrideError(f"{where}.extra_columns.{column.name}: type {column.type!r} is not a contract "
                                    f"type ({', '.join(DUCKDB_TYPES)}).")
            override.extra_columns.append(column)
        out[name] = override
    return out


def _check_keys(body: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(body or {}) - allowed)
    if unknown:
        raise OverrideError(f"{where} has unknown key(s) {', '.join(unknown)}; use one of {', '.join(sorted(allowed))}.")


# ---------------------------------------------------------------------------------------------------- docs


def model_name(entity: str) -> str:
    return f"stg_{SOURCE_NAME}__{entity}"


def _rule_text(entity: Entity, column: Column, *, staging: bool) -> str:
    """The first sentence of a column's docs: what its values are."""
    if column.name == entity.primary_key:
        return f"Primary key of {entity.name}."
    if column.references:
        return f"References {column.references}."
    if column.allowed:
        return f"One of {', '.join(column.allowed)}."
    if column.vocabulary:
        if column.vocabulary in _VOCABULARY_DOCS:
            return _VOCABULARY_DOCS[column.vocabulary]
        checked = " (checked at ingestion)" if staging else ""
        return f"Any value, or one of crm.yaml `dimensions.{column.vocabulary}` when listed there{checked}."
    if column.description:
        return column.description
    return column.name.replace("_", " ").capitalize() + "."


def column_description(entity: Entity, column: Column, *, staging: bool) -> str:
    traits = [f"Contract type {column.type}", "required" if column.required else "optional"]
    if column.pii:
        traits.append("personal data")
    return f"{_rule_text(entity, column, staging=staging)} {', '.join(traits)}."


# ---------------------------------------------------------------------------------------------------- tests


def column_tests(contract: Contract, entity: Entity, column: Column, override: ColumnOverride | None) -> list:
    """The data tests the contract implies for a staging column, then the override's configs and extras."""
    if column.name == entity.primary_key:
        tests: list = ["unique", "not_null"]
    else:
        tests = ["not_null"] if column.required and not column.required_unless else []
        if column.allowed:
            tests.append({"accepted_values": {"arguments": {"values": list(column.allowed)}}})
        target = None
        if column.reference:
            ref_entity, ref_column = column.reference
            target = (model_name(ref_entity), ref_column)
        elif column.vocabulary in _VOCABULARY_MODELS:
            target = _VOCABULARY_MODELS[column.vocabulary]
        if target:
            tests.append({"relationships": {"arguments": {"to": f"ref('{target[0]}')", "field": target[1]}}})
    if override:
        tests = [_apply_test_override(t, override) for t in tests]
        missing = set(override.tests) - {_test_name(t) for t in tests}
        if missing:
            raise OverrideError(f"dbt overrides: {entity.name}.{column.name} configures test(s) "
                                f"{', '.join(sorted(missing))} the contract does not give it; use extra_tests.")
        tests += copy.deepcopy(override.extra_tests)
    return tests


def _test_name(test) -> str:
    return test if isinstance(test, str) else next(iter(test))


def _apply_test_override(test, override: ColumnOverride):
    name = _test_name(test)
    if name not in override.tests:
        return test
    body = {} if isinstance(test, str) else copy.deepcopy(test[name])
    return {name: _deep_merge(body, override.tests[name])}


def _deep_merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = _deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


# ---------------------------------------------------------------------------------------------------- yaml


def render_sources_yaml(contract: Contract, overrides: dict[str, EntityOverride]) -> str:
    tables = []
    for entity in contract.entities.values():
        ov = overrides.get(entity.name, EntityOverride())
        columns = []
        for column in entity.columns:
            col_ov = ov.columns.get(column.name)
            desc = (col_ov and col_ov.source_description) or column_description(entity, column, staging=False)
            columns.append({"name": column.name, "description": desc})
        columns += [{"name": name, "description": _lineage_doc(name)} for name in LINEAGE_COLUMNS]
        tables.append({"name": entity.name, "description": ov.source_description or entity.description,
                       "columns": columns})
    doc = {"version": 2, "sources": [{
        "name": SOURCE_NAME,
        "description": "The raw layer written by ingestion (pipelines/lib/ingest): one row per primary key, the "
                       "latest version by the contract's updated_at, typed as the contract says, plus lineage columns.",
        "schema": "raw",
        "tables": tables,
    }]}
    return f"# Sources: the raw layer ingestion writes (see the raw layer contract in pipelines/lib/ingest).\n" \
           f"# {_GENERATED}\n" + _dump(doc)


def _lineage_doc(name: str) -> str:
    try:
        return _LINEAGE_DOCS[name]
    except KeyError:
        raise ValueError(f"lineage column {name} of pipelines/lib/warehouse.py has no description in "
                         f"pipelines/contract/dbt_render.py (_LINEAGE_DOCS); add one.") from None


def render_models_yaml(contract: Contract, overrides: dict[str, EntityOverride]) -> str:
    models = []
    for entity in contract.entities.values():
        ov = overrides.get(entity.name, EntityOverride())
        columns = []
        for column in entity.columns:
            col_ov = ov.columns.get(column.name)
            entry = {"name": column.name,
                     "description": (col_ov and col_ov.model_description)
                     or column_description(entity, column, staging=True)}
            tests = column_tests(contract, entity, column, col_ov)
            if tests:
                entry["data_tests"] = tests
            columns.append(entry)
        columns += [{"name": extra.name, "description": extra.description} for extra in ov.extra_columns]
        columns.append({
            "name": "_source",
            "description": _lineage_doc("_source"),
            "data_tests": ["not_null", {"accepted_values": {"arguments": {"values": ["store", "landing"]}}}],
        })
        columns.append({"name": "_ingested_at",
                        "description": "When ingestion loaded the row. Incremental models use it as their watermark."})
        summary = ov.model_description or entity.description
        models.append({
            "name": model_name(entity.name),
            "description": f"Staging of raw.{entity.name}: {summary} Contract column names and types unchanged, "
                           "plus the lineage columns `_source` and `_ingested_at`.",
            "columns": columns,
        })
    return "# Staging models: one per contract entity, rename/cast only. Tests mirror the contract.\n" \
           f"# {_GENERATED}\n" + _dump({"version": 2, "models": models})


class _Dumper(yaml.SafeDumper):
    """Block style, except lists of plain values ([unique, not_null], accepted values) on one line."""


def _represent_list(dumper: yaml.SafeDumper, data: list):
    flow = all(isinstance(v, (str, int, float, bool)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def _dump(doc: dict) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True, default_flow_style=False)


# ---------------------------------------------------------------------------------------------------- sql


def render_staging_sql(entity: Entity, override: EntityOverride | None = None) -> str:
    ov = override or EntityOverride()
    qualify = "source." if ov.joins else ""
    comment = ov.sql_comment or (f"{entity.name}: contract columns unchanged (names and types), plus the lineage "
                                 "columns `_source` and `_ingested_at`.")
    out = [f"{{# {_GENERATED} -#}}\n"]
    out += [f"-- {line}".rstrip() + "\n" for line in comment.strip().splitlines()]
    ctes = [("source", f"select * from {{{{ source('{SOURCE_NAME}', '{entity.name}') }}}}")] + ov.ctes
    for name, sql in ctes:
        out.append(f"with {name} as (\n\n" if name == "source" else f"{name} as (\n\n")
        out += [f"    {line}".rstrip() + "\n" for line in sql.splitlines()]
        out.append("\n),\n\n")
    out.append("final as (\n\n    select\n")
    for name, expression, sql_type, comment in _select_list(entity, ov, qualify):
        if comment:
            out.append(f"        -- {comment}\n")
        out.append(f"        cast({expression} as {sql_type}) as {name},\n")
    out += [f"        {qualify}{name},\n" for name in STAGING_LINEAGE_COLUMNS]
    out.append("    from source\n")
    out += [f"    {join}\n" for join in ov.joins]
    out.append("\n)\n\nselect * from final\n")
    return "".join(out)


def _select_list(entity: Entity, ov: EntityOverride, qualify: str) -> list[tuple[str, str, str, str | None]]:
    items = []
    for column in entity.columns:
        col_ov = ov.columns.get(column.name) or ColumnOverride()
        items.append((column.name, col_ov.expression or f"{qualify}{column.name}",
                      DUCKDB_TYPES[column.type].lower(), col_ov.comment))
    for extra in ov.extra_columns:
        at = next(i for i, item in enumerate(items) if item[0] == extra.after) + 1
        items.insert(at, (extra.name, extra.expression, DUCKDB_TYPES[extra.type].lower(), extra.comment))
    return items


# ---------------------------------------------------------------------------------------------------- files


def render_staging_files(contract: Contract | None = None, overrides_path: Path = OVERRIDES_PATH) -> dict[str, str]:
    """File name -> content of every file of the generated staging folder."""
    contract = contract or load_contract()
    overrides = load_overrides(contract, overrides_path)
    files = {
        "_crm__sources.yml": render_sources_yaml(contract, overrides),
        "_crm__models.yml": render_models_yaml(contract, overrides),
    }
    for entity in contract.entities.values():
        files[f"{model_name(entity.name)}.sql"] = render_staging_sql(entity, overrides.get(entity.name))
    return files


def write_staging_files(out_dir: Path = STAGING_DIR, contract: Contract | None = None) -> list[Path]:
    """Write the rendered files; a staging model of an entity the contract no longer has is removed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = render_staging_files(contract)
    for stale in out_dir.glob(f"stg_{SOURCE_NAME}__*.sql"):
        if stale.name not in files:
            stale.unlink()
    paths = []
    for name, text in files.items():
        path = out_dir / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
