"""crm.yaml: loading, defaults, one-sentence errors, the commented file, and the allowed values validation
takes from it (pipelines.lib.settings)."""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.contract import load_contract
from pipelines.contract.validate import describe_fault, validate_frame
from pipelines.lib.home import CrmHome
from pipelines.lib.settings import (
    DEFAULT_STAGES,
    DIMENSIONS,
    Settings,
    SettingsError,
    load_settings,
    render_settings,
    write_settings_tables,
)


def _write(tmp_path, text: str):
    path = tmp_path / "crm.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_file_means_the_demo_world_with_every_dimension_open(tmp_path):
    settings = load_settings(tmp_path / "crm.yaml")
    assert settings == Settings()
    assert settings.currency.reporting == "EUR" and settings.currency.symbol == "€"
    assert [s.name for s in settings.stages] == ["prospecting", "qualification", "proposal", "negotiation",
                                                 "closed_won", "closed_lost"]
    assert [settings.stage_order(s) for s in settings.stages] == [1, 2, 3, 4, 5, None]
    assert settings.dimensions == dict.fromkeys(DIMENSIONS, "open")
    assert settings.as_of == "data" and settings.models == {}
    assert load_settings(_write(tmp_path, "")) == Settings()


def test_the_rendered_file_is_commented_and_loads_back_to_the_same_settings(tmp_path):
    text = render_settings()
    assert load_settings(_write(tmp_path, text)) == Settings()
    assert text.count("#") >= 15 and "models: {}" in text and "# Model settings." in text
    custom = Settings(currency={"reporting": "CHF", "rates": {"EUR": 0.94, "USD": 0.88}},
                      stages=[{"name": "Lead in", "probability": 0.05}, {"name": "Signed", "won": True,
                                                                          "probability": 1.0},
                              {"name": "Dropped", "lost": True, "probability": 0.0},
                              {"name": "No fit", "lost": True, "probability": 0.0}],
                      dimensions={"region": ["Zürich", "Genève"], "sales_channel": ["direct"]},
                      as_of=date(2026, 6, 30), models={"churn": {"max_depth": 4}})
    assert load_settings(_write(tmp_path, render_settings(custom))) == custom
    assert custom.currency.symbol == "CHF" and [custom.stage_order(s) for s in custom.stages] == [1, 2, None, None]


def test_the_demo_generator_describes_its_own_world(tmp_path):
    from pipelines.generate.deals import OPEN_STAGES
    from pipelines.generate.vocabulary import demo_settings, write_demo_settings

    assert [s.name for s in DEFAULT_STAGES if not s.is_closed] == OPEN_STAGES
    write_demo_settings(tmp_path / "crm.yaml")
    demo = load_settings(tmp_path / "crm.yaml")
    assert demo == demo_settings() and demo.currency.reporting == "EUR"
    assert all(values != "open" for values in demo.dimensions.values())
    assert demo.dimensions["region"] == ["North", "South", "East", "West", "Central"]
    assert demo.dimensions["lost_reason"] == ["price", "competitor", "no_decision", "timing", "no_budget",
                                              "product_fit"]


@pytest.mark.parametrize(("text", "expected"), [
    ("currency: {reporting: euro}", "currency.reporting: 'euro' is not an ISO 4217 code"),
    ("currency: {rates: {USD: 0}}", "currency.rates: the rate of USD must be a positive number"),
    ("stages: [{name: a, probability: 0.5}, {name: b, lost: true, probability: 0}]",
     "stages: exactly one stage must be marked `won: true`"),
    ("stages: [{name: w, won: true, probability: 1}, {name: a, probability: 0.5}, {name: l, lost: true, "
     "probability: 0}]", "stages: open stages must all come before the won and lost stages"),
    ("stages: [{name: a, probability: 1.5}]", "stages.0.probability: input should be less than or equal to 1"),
    ("dimensions: {colour: [red]}", "dimensions: 'colour' is not a dimension; use one of region"),
    ("dimensions: {region: 7}", "dimensions.region: write `open` or a list of values"),
    ("dimensions: {region: []}", "dimension region lists no values"),
    ("as_of: soon", "as_of: 'soon' is neither data, live nor a date"),
    ("as_of: 2026-13-45", "holds a date that does not exist (month must be in 1..12); write a real date"),
    ("currencies: {}", "currencies: not a setting; remove it or check its spelling"),
    ("stages: [", "is not valid YAML at line"),
    ("- a list", "must be a mapping of settings"),
])
def test_errors_are_one_sentence_naming_the_file_and_the_key(tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    message = str(info.value)
    assert str(path) in message and expected in message
    assert message.endswith(".") and message.count("\n") == 0


def _accounts(regions: list[str]) -> pl.DataFrame:
    n = len(regions)
    return pl.DataFrame({"account_id": [f"A-{i}" for i in range(n)], "account_name": ["X"] * n,
                         "account_type": ["B2B"] * n, "country": ["US"] * n, "region": regions,
                         "source_system": ["crm"] * n, "created_at": ["2025-01-01T00:00:00"] * n,
                         "is_archived": ["false"] * n, "updated_at": ["2025-01-01T00:00:00"] * n})


def test_open_dimensions_accept_any_value_and_closed_ones_only_their_list():
    frame = _accounts(["Pacific", "North", "Mountain"])
    open_faults = validate_frame(Settings().contract().entity("accounts"), frame).faults
    assert open_faults.height == 0
    closed = Settings(dimensions={"region": ["North", "Pacific"]}).contract().entity("accounts")
    faults = validate_frame(closed, frame).faults
    assert faults.select("field", "reason", "value").rows() == [("region", "not_allowed_value", "Mountain")]
    assert describe_fault(closed, "region", "not_allowed_value", "Mountain") == (
        "region must be one of North, Pacific (got 'Mountain'); correct the value or add it to "
        "dimensions.region in crm.yaml.")
    # values whose meaning the marts depend on stay fixed in the contract, whatever crm.yaml says
    assert load_contract().entity("accounts").column("account_type").allowed == ["B2B", "B2C"]


def test_stages_and_currencies_are_closed_by_the_settings():
    settings = Settings(currency={"reporting": "USD", "rates": {"EUR": 1.1}},
                        stages=[{"name": "Open", "probability": 0.2}, {"name": "Won", "won": True, "probability": 1},
                                {"name": "Lost", "lost": True, "probability": 0}])
    contract = settings.contract()
    assert contract.entity("opportunities").column("stage").allowed == ["Open", "Won", "Lost"]
    assert contract.entity("opportunity_stage_history").column("to_stage").allowed == ["Open", "Won", "Lost"]
    orders = contract.entity("orders")
    assert orders.column("currency").allowed == ["USD", "EUR"]
    frame = pl.DataFrame({"order_id": ["O-1", "O-2", "O-3"], "account_id": ["A"] * 3, "order_date": ["2025-01-01"] * 3,
                          "status": ["completed"] * 3, "sales_channel": ["anything"] * 3,
                          "currency": ["USD", "EUR", "JPY"], "updated_at": ["2025-01-01T00:00:00"] * 3})
    faults = validate_frame(orders, frame).faults
    assert faults.select("field", "reason", "value").rows() == [("currency", "unknown_currency", "JPY")]
    assert "JPY" in describe_fault(orders, "currency", "unknown_currency", "JPY")
    # every vocabulary the contract names is one crm.yaml defines
    vocabularies = {c.vocabulary for e in load_contract().entities.values() for c in e.columns if c.vocabulary}
    assert vocabularies == set(DIMENSIONS) | {"stages", "currency"}


def test_settings_tables_carry_stage_order_rates_and_as_of_mode():
    settings = Settings(currency={"reporting": "GBP", "rates": {"EUR": 0.86}}, as_of="2026-03-31")
    con = duckdb.connect()
    write_settings_tables(con, settings)
    write_settings_tables(con, settings)  # replaced, not appended
    assert con.execute("select stage, stage_order, is_won, is_lost from settings.stages order by stage_position"
                       ).fetchall()[-2:] == [("closed_won", 5, True, False), ("closed_lost", None, False, True)]
    assert con.execute("select * from settings.currencies").fetchall() == [("GBP", 1.0, True, "£"),
                                                                          ("EUR", 0.86, False, "€")]
    assert con.execute("select * from settings.as_of").fetchall() == [("fixed", date(2026, 3, 31))]


def test_store_migrate_writes_the_commented_defaults_once(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    import pipelines.cli

    out = io.StringIO()
    monkeypatch.setattr(pipelines.cli, "console", Console(file=out, width=400))
    monkeypatch.delenv("CRM_OPERATIONAL_DB_URL", raising=False)
    home = CrmHome(tmp_path / "home")
    runner = CliRunner()
    first = runner.invoke(app, ["store", "migrate", "--home", str(home.root)])
    assert first.exit_code == 0, first.output
    assert f"Settings written to {home.settings_file}" in out.getvalue()
    assert home.settings_file.read_text(encoding="utf-8") == render_settings()
    home.settings_file.write_text("currency: {reporting: USD}\n", encoding="utf-8")
    second = runner.invoke(app, ["store", "migrate", "--home", str(home.root)])
    assert second.exit_code == 0 and f"Settings kept: {home.settings_file} exists" in out.getvalue()
    assert load_settings(home.settings_file).currency.reporting == "USD"
