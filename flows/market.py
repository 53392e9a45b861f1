"""Market: prices in, gated, leakage-free windows, an LSTM walked forward against three baselines."""

from __future__ import annotations

from prefect import flow

from flows.common import gate, models_for, pipeline_run
from flows.params import MarketParams
from tasks.market.report import publish_report
from tasks.market.tasks import check_prices, forecast_next, ingest_prices, walk_forward


@flow(name="market")
def market(params: MarketParams = MarketParams()) -> dict:
    """Ingest, check and gate, walk forward (leakage-free windows, LSTM and baselines), forecast, publish."""
    with pipeline_run("market", params, publish=publish_report) as run:
        run_dir, models = str(run.dir), models_for(params, run)
        prices = ingest_prices(run_dir, input=params.input, symbol=params.symbol,
                               target=params.target, date_column=params.date_column,
                               volume_column=params.volume_column, seed=params.seed)
        checked = check_prices(prices.output, run_dir, splits=params.splits,
                               adjusted=prices.read["adjusted_close"])
        run.add_counts(checked.records_in, checked.records_valid, checked.records_quarantined,
                       unsorted_rows=checked.unsorted_rows, empty_cells_skipped=prices.read["empty_cells"])
        run.inputs.update(prices.read, splits=checked.splits)
        gate(run, checked.profile, "market_prices", "prices", min_rows=params.lag + params.horizon + 1)
        trained = walk_forward(checked.output, run_dir, models.root, mode=models.mode,
                               lag=params.lag, horizon=params.horizon, folds=params.folds, epochs=params.epochs,
                               hidden=params.hidden, cost=params.cost, model_name=models.name,
                               seed=params.seed, mc_samples=params.mc_samples, tune=params.tune)
        run.record_training(trained)
        forecast_next(checked.output, trained.output, run_dir, models.root)
    return run.to_dict()
