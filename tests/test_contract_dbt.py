"""The dbt staging layer of the CRM entities is rendered from the contract, and the committed files are that rendering."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from pipelines.contract import CONTRACT_PATH, Contract
from pipelines.contract.dbt_render import (
    STAGING_DIR,
    OverrideError,
    render_staging_files,
    write_staging_files,
)


def _contract_data() -> dict:
    return yaml.safe_load(CONTRACT_PATH.read_text(encoding="utf-8"))


def _model(models_yaml: str, name: str) -> dict:
    return next(m for m in yaml.safe_load(models_yaml)["models"] if m["name"] == name)


def _table(sources_yaml: str, name: str) -> dict:
    return next(t for t in yaml.safe_load(sources_yaml)["sources"][0]["tables"] if t["name"] == name)


def test_committed_staging_files_are_the_rendered_ones():
    rendered = render_staging_files()
    committed = {p.name: p.read_text(encoding="utf-8") for p in STAGING_DIR.iterdir() if p.is_file()}
    assert sorted(committed) == sorted(rendered), "run `crm contract dbt` and commit dbt_project/models/staging/crm"
    stale = [name for name, text in rendered.items() if committed[name] != text]
    assert stale == [], f"run `crm contract dbt` and commit dbt_project/models/staging/crm (differs: {stale})"
    assert len([n for n in rendered if n.endswith(".sql")]) == 19


def test_a_new_contract_column_reaches_sources_staging_sql_and_tests():
    data = _contract_data()
    before = render_staging_files(Contract.model_validate(copy.deepcopy(data)))
    data["entities"]["tickets"]["columns"].append(
        {"name": "escalated_to_user_id", "type": "string", "required": True, "references": "users.user_id"})
    data["entities"]["tickets"]["columns"].append({"name": "reopen_count", "type": "integer", "required": False})
    after = render_staging_files(Contract.model_validate(data))

    changed = sorted(name for name in after if after[name] != before[name])
    assert changed == ["_crm__models.yml", "_crm__sources.yml", "stg_crm__tickets.sql"]

    source_columns = [c["name"] for c in _table(after["_crm__sources.yml"], "tickets")["columns"]]
    assert source_columns[-7:-5] == ["escalated_to_user_id", "reopen_count"]  # before the 5 lineage columns

    sql = after["stg_crm__tickets.sql"]
    assert "cast(escalated_to_user_id as varchar) as escalated_to_user_id," in sql
    assert "cast(reopen_count as bigint) as reopen_count," in sql
    assert sql.index("as updated_at,") < sql.index("as escalated_to_user_id,") < sql.index("_source,")

    columns = {c["name"]: c for c in _model(after["_crm__models.yml"], "stg_crm__tickets")["columns"]}
    escalated = columns["escalated_to_user_id"]
    assert escalated["description"] == "References users.user_id. Contract type string, required."
    assert escalated["data_tests"] == [
        "not_null", {"relationships": {"arguments": {"to": "ref('stg_crm__users')", "field": "user_id"}}}]
    assert columns["reopen_count"] == {"name": "reopen_count",
                                       "description": "Reopen count. Contract type integer, optional."}


def test_tests_follow_keys_required_columns_references_and_closed_lists():
    models = render_staging_files()["_crm__models.yml"]
    columns = {c["name"]: c.get("data_tests", []) for c in _model(models, "stg_crm__order_lines")["columns"]}
    assert columns["order_line_id"] == ["unique", "not_null"]
    assert columns["quantity"] == ["not_null"]
    assert columns["unit_price"] == []  # required unless line_amount is given: no not_null
    assert columns["line_amount"] == []
    opportunities = {c["name"]: c.get("data_tests", []) for c in _model(models, "stg_crm__opportunities")["columns"]}
    assert opportunities["stage"][1] == {
        "relationships": {"arguments": {"to": "ref('stg_settings__stages')", "field": "stage"}}}
    tasks = {c["name"]: c.get("data_tests", []) for c in _model(models, "stg_crm__tasks")["columns"]}
    assert tasks["status"][1] == {"accepted_values": {"arguments": {"values": ["open", "done", "cancelled"]}}}


def test_an_override_configures_a_generated_test_and_adds_columns(tmp_path):
    overrides = tmp_path / "dbt_overrides.yaml"
    overrides.write_text(yaml.safe_dump({"entities": {"payments": {
        "columns": {"invoice_id": {"tests": {"relationships": {"config": {"severity": "warn", "where": "amount > 0"}}},
                                   "extra_tests": [{"dbt_utils.not_empty_string": {}}]}},
        "extra_columns": [{"name": "amount_cents", "type": "integer", "expression": "amount * 100",
                           "after": "amount", "description": "Amount in cents."}],
    }}}), encoding="utf-8")
    files = render_staging_files(overrides_path=overrides)
    columns = {c["name"]: c for c in _model(files["_crm__models.yml"], "stg_crm__payments")["columns"]}
    assert columns["invoice_id"]["data_tests"] == [
        "not_null",
        {"relationships": {"arguments": {"to": "ref('stg_crm__invoices')", "field": "invoice_id"},
                           "config": {"severity": "warn", "where": "amount > 0"}}},
        {"dbt_utils.not_empty_string": {}},
    ]
    assert columns["amount_cents"]["description"] == "Amount in cents."
    sql = files["stg_crm__payments.sql"]
    assert sql.index("as amount,") < sql.index("cast(amount * 100 as bigint) as amount_cents,") < sql.index("as method,")


@pytest.mark.parametrize(("body", "message"), [
    ({"paymentz": {}}, "entities.paymentz is not an entity of the contract"),
    ({"payments": {"columns": {"amout": {"comment": "x"}}}}, "columns.amout is not a column of payments"),
    ({"payments": {"columns": {"amount": {"tests": {"relationships": {"config": {}}}}}}},
     "configures test(s) relationships the contract does not give it"),
    ({"payments": {"colums": {}}}, "has unknown key(s) colums"),
    ({"payments": {"extra_columns": [{"name": "amount", "type": "decimal", "expression": "1", "after": "method",
                                      "description": "x"}]}}, "extra_columns.amount is already a column of payments"),
    ({"payments": {"extra_columns": [{"name": "x", "type": "decimal"}]}},
     "extra_columns[0] lacks after, description, expression"),
])
def test_an_override_of_something_the_contract_lacks_is_refused(tmp_path, body, message):
    overrides = tmp_path / "dbt_overrides.yaml"
    overrides.write_text(yaml.safe_dump({"entities": body}), encoding="utf-8")
    with pytest.raises(OverrideError, match=re.escape(message)):
        render_staging_files(overrides_path=overrides)


def test_writing_removes_the_model_of_an_entity_the_contract_dropped(tmp_path):
    (tmp_path / "stg_crm__gone.sql").write_text("select 1\n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("kept\n", encoding="utf-8")
    paths = write_staging_files(tmp_path)
    assert len(paths) == 21
    assert not (tmp_path / "stg_crm__gone.sql").exists()
    assert (tmp_path / "notes.md").exists()
