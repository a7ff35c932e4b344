"""Identity resolution (dbt int_customers_resolved) scored against the generator's ground truth.

The generator records which accounts - CRM store and webshop export - are the same person
(ground_truth/identity.csv, person_key). A pair of accounts is a true match when both share a person_key and
a predicted match when both share a customer_key. Precision and recall are over those pairs.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"


def _pairs(frame: pl.DataFrame, group: str) -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for ids in frame.group_by(group).agg(pl.col("account_id").sort()).get_column("account_id").to_list():
        pairs.update(itertools.combinations(ids, 2))
    return pairs


def score(home) -> dict[str, float]:
    """Precision and recall of the resolved customer keys of `home` against its ground truth."""
    truth = pl.read_csv(home.ground_truth / "identity.csv", infer_schema=False)
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        resolved = con.sql("select account_id, customer_key, match_rule from intermediate.int_customers_resolved").pl()
    assert sorted(resolved["account_id"].to_list()) == sorted(truth["account_id"].to_list()), \
        "every account of the ground truth must be resolved exactly once"
    true_pairs, predicted = _pairs(truth, "person_key"), _pairs(resolved, "customer_key")
    hits = len(true_pairs & predicted)
    return {
        "true_pairs": len(true_pairs),
        "predicted_pairs": len(predicted),
        "precision": hits / len(predicted) if predicted else 0.0,
        "recall": hits / len(true_pairs) if true_pairs else 0.0,
        "rules": dict(resolved.group_by("match_rule").len().sort("match_rule").iter_rows()),
    }


def _assert_good(name: str, figures: dict) -> None:
    print(f"\nidentity resolution ({name}): {figures['true_pairs']} true pairs, {figures['predicted_pairs']} "
          f"predicted, precision {figures['precision']:.4f}, recall {figures['recall']:.4f}, rules {figures['rules']}")
    assert figures["true_pairs"] >= 5, "the demo data should contain cross-source duplicates"
    assert figures["precision"] >= 0.98
    assert figures["recall"] >= 0.95


def test_identity_resolution_on_built_home(built_home):
    _assert_good("built_home", score(built_home))


@pytest.mark.slow
def test_identity_resolution_at_4000_customers(tmp_path):
    """More duplicates for a steadier figure: only the tables identity resolution needs are loaded and built."""
    from pipelines.generate.run import generate_home
    from pipelines.lib.home import CrmHome
    from pipelines.lib.ingest import ingest_all

    home = CrmHome(tmp_path / "identity_home").ensure()
    generate_home(home, customers=4000, seed=11, console=None)
    ingest_all(home, entities=["teams", "users", "accounts"])
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), "build", "--project-dir", str(PROJECT), "--profiles-dir",
         str(PROJECT), "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"),
         "--select", "stg_crm__accounts", "int_customers_resolved", "--indirect-selection", "cautious"],
        env={**os.environ, "CRM_WAREHOUSE": str(home.warehouse)}, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    _assert_good("4000 customers", score(home))
