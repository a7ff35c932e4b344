"""Win probability of open deals: time-based backtest against the stage's historical win rate."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

import models.win_probability as win


@pytest.fixture(scope="module")
def win_backtest(ml_marts):
    return win.backtest(ml_marts.opportunities, ml_marts.deal_stages, ml_marts.activity)


def test_brier_is_below_the_stage_rate_baseline(win_backtest):
    model, stage = win_backtest["metrics"], win_backtest["baseline"]
    print(f"win probability Brier {model['brier']:.4f} vs stage rate {stage['brier']:.4f}; ROC-AUC "
          f"{model['roc_auc']:.3f} vs {stage['roc_auc']:.3f}; {win_backtest['evaluation_deals']} deals")
    assert model["brier"] < stage["brier"]
    assert win_backtest["evaluation_deals"] > 300
    assert len(win_backtest["calibration"]) == 5


def test_backtest_trains_only_on_what_was_known_at_the_split(win_backtest):
    split = date.fromisoformat(win_backtest["split"])
    predictions = win_backtest["predictions"]
    assert predictions["cutoff"].min().date() >= split
    rates = win_backtest["stage_rates"]
    # later stages win more often: the baseline is ordered like the funnel
    assert rates["prospecting"] < rates["qualification"] < rates["proposal"] < rates["negotiation"]


def test_open_deals_are_scored_and_weighted_by_close_month(ml_marts):
    trained = win.train(ml_marts.opportunities, ml_marts.deal_stages, ml_marts.activity)
    scores = win.score(trained.artifacts, trained.metadata["stage_rates"], ml_marts.opportunities,
                       ml_marts.deal_stages, ml_marts.activity)
    open_deals = ml_marts.opportunities.filter(~pl.col("is_closed"))
    assert set(scores["opportunity_id"]) == set(open_deals["opportunity_id"])
    assert scores["win_probability"].is_between(0, 1).all()
    weighted = win.weighted_pipeline(scores)
    assert weighted["open_deals"].sum() == scores.height
    assert weighted["weighted_amount"].sum() == pytest.approx((scores["amount"] * scores["win_probability"]).sum())
    assert (weighted["weighted_amount"] <= weighted["pipeline_amount"]).all()
