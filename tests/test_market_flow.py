"""The market flow end to end under a Prefect test server, and its exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from flows.cli import main
from flows.market import market
from flows.params import MarketParams
from tasks.market.synthetic import synthetic_prices

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


def test_synthetic_walk_forward(data_root: Path) -> None:
    result = market(MarketParams(epochs=2, folds=2, lag=10))
    record = json.loads((Path(result["dir"]) / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["counts"]["records_in"] == record["counts"]["records_valid"] == 3000
    assert {"rmse", "mae", "directional_accuracy", "gain_vs_buy_and_hold"} <= set(record["metrics"])
    assert len(record["metrics"]["folds"]) == 2
    assert set(record["baselines"]) == {"persistence", "moving_average", "linear_window"}
    forecasts = pd.read_parquet(Path(result["dir"]) / "forecasts.parquet")
    assert sorted(forecasts["symbol"]) == ["SYM0", "SYM1", "SYM2", "SYM3"] and (forecasts["predicted_price"] > 0).all()
    assert (Path(result["dir"]) / "figures" / "forecasts.png").exists()


def test_text_in_prices_is_quarantined(tmp_path: Path, data_root: Path) -> None:
    prices = synthetic_prices(symbols=1, days=200)
    prices["close"] = prices["close"].astype(object)
    prices.loc[5, "close"] = "n/a"
    prices.to_csv(tmp_path / "p.csv", index=False)
    result = market(MarketParams(input=str(tmp_path / "p.csv"), epochs=1, folds=2, lag=5))
    assert result["counts"]["records_quarantined"] == 1 and result["status"] == "completed"


def test_tune_from_the_command_line_picks_the_lowest_validation_rmse(data_root: Path) -> None:
    assert main(["run", "market", "--epochs", "2", "--folds", "2", "--lag", "10", "--tune", "3"]) == 0
    run_dir = next((data_root / "market" / "runs").iterdir())
    tuning = json.loads((run_dir / "training.json").read_text())["tuning"]
    assert tuning["direction"] == "minimize" and len(tuning["trials"]) == 3
    assert tuning["best_score"] == min(t["score"] for t in tuning["trials"])
    model = json.loads((run_dir / "run.json").read_text())["model"]
    card = json.loads((Path(model["uri"]) / "card.json").read_text())
    assert card["architecture"]["kwargs"]["hidden"] == tuning["chosen"]["hidden"]


@pytest.mark.parametrize("args, message, code", [
    (["--target", "vwap"], "target column 'vwap' not found", 2),
    (["--lag", "150"], "training and", 2),
])
def test_bad_arguments_exit_2(args, message, code, tmp_path: Path, data_root: Path, capsys) -> None:
    synthetic_prices(symbols=1, days=120).to_csv(tmp_path / "p.csv", index=False)
    assert main(["run", "market", "--input", str(tmp_path / "p.csv"), "--epochs", "1", *args]) == code
    assert message in capsys.readouterr().err


def test_a_trading_halt_is_a_warning_and_the_run_goes_on(tmp_path: Path, data_root: Path) -> None:
    prices = synthetic_prices(symbols=1, days=200).drop(index=range(80, 110))
    prices.to_csv(tmp_path / "p.csv", index=False)
    result = market(MarketParams(input=str(tmp_path / "p.csv"), epochs=1, folds=2, lag=5))
    record = json.loads((Path(result["dir"]) / "run.json").read_text())
    assert record["status"] == "completed"
    gate = record["quality"][0]
    assert gate["success"] and gate["failed"] == []
    assert [(w["column"], w["severity"]) for w in gate["warnings"]] == [("max_gap_days", "warning")]
    assert "1 unexpected" in gate["warnings"][0]["observed"] and "suspension" in gate["warnings"][0]["notes"]
    assert "passed with 1 warning" in (Path(record["dir"]) / "report.html").read_text()


def test_prices_in_mixed_units_fail_the_gate_with_exit_3(tmp_path: Path, data_root: Path, capsys) -> None:
    prices = synthetic_prices(symbols=2, days=200)
    cents = (prices.index % 2 == 0) & (prices["symbol"] == "SYM1")
    prices.loc[cents, ["open", "high", "low", "close"]] *= 100
    prices.to_csv(tmp_path / "p.csv", index=False)
    assert main(["run", "market", "--input", str(tmp_path / "p.csv")]) == 3
    err = capsys.readouterr().err
    assert "quality gate 'market_prices' failed" in err and "expect_column_values_to_be_between(jump_share)" in err


def test_an_unadjusted_split_is_found_and_adjusted(tmp_path: Path, data_root: Path) -> None:
    prices = synthetic_prices(symbols=1, days=200)
    prices.loc[120:, ["open", "high", "low", "close"]] /= 4
    prices.to_csv(tmp_path / "p.csv", index=False)
    result = market(MarketParams(input=str(tmp_path / "p.csv"), epochs=1, folds=2, lag=5))
    record = json.loads((Path(result["dir"]) / "run.json").read_text())
    assert record["status"] == "completed" and record["quality"][0]["warnings"] == []
    (split,) = record["inputs"]["splits"]
    assert (split["date"], split["split"], split["action"]) == (prices["date"][120], "4:1", "adjust")
    assert (Path(record["dir"]) / "figures" / "splits.png").exists()


def test_the_lifecycle_reuses_compares_and_matches_lag_and_horizon(tmp_path: Path, data_root: Path) -> None:
    synthetic_prices(symbols=2, days=300).to_csv(tmp_path / "p.csv", index=False)
    run = {"input": str(tmp_path / "p.csv"), "epochs": 1, "folds": 2, "lag": 5}
    first = market(MarketParams(**run))
    again = market(MarketParams(**run))  # --train auto: the champion forecasts, measured on test windows it never saw
    assert again["model"]["trained"] is False and again["model"]["scored_with"] == "v1"
    assert again["metrics"]["test_records"] > 0 and "rmse" in again["metrics"]
    # the same windows: nothing the champion did not see to compare on
    challenger = market(MarketParams(**run, train="always"))
    assert (challenger["model"]["version"], challenger["model"]["promoted"]) == ("v2", False)
    assert challenger["model"]["comparison"]["units"] == 0 and challenger["model"]["scored_with"] == "v1"
    forecasts = [pd.read_parquet(Path(r["dir"]) / "forecasts.parquet") for r in (first, challenger)]
    pd.testing.assert_frame_equal(*forecasts)  # the champion's forecasts, not the losing challenger's
    longer = market(MarketParams(**run, horizon=2))  # a champion for another horizon is not comparable
    assert longer["model"]["trained"] and longer["model"]["promoted"]
    assert longer["model"]["comparison"]["decision"].startswith("no compatible champion")
