"""The contract is consistent and the committed import guide is rendered from it."""

from __future__ import annotations

from pathlib import Path

from pipelines.contract import load_contract
from pipelines.contract.docs import render_import_guide

REPO = Path(__file__).resolve().parents[1]


def test_every_entity_is_well_formed():
    contract = load_contract()
    assert len(contract.entities) == 19
    for entity in contract.entities.values():
        assert entity.primary_key == entity.column_names[0]
        assert entity.column(entity.primary_key).required
        assert entity.column(entity.updated_at).type == "timestamp"
        for column in entity.columns:
            if column.reference:
                target, key = column.reference
                assert contract.entity(target).primary_key == key


def test_interactions_are_partitioned_by_day():
    assert load_contract().entity("interactions").partition_by_day == "occurred_at"


def test_import_guide_is_up_to_date():
    committed = (REPO / "docs" / "IMPORT_FORMAT.md").read_text(encoding="utf-8")
    assert committed == render_import_guide(), "run `crm contract docs` and commit docs/IMPORT_FORMAT.md"
