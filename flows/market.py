"""Market: prices in, gated, leakage-free windows, an LSTM walked forward against three baselines."""

from __future__ import annotations

from prefect import flow

from flows.common import gate, pipeline_run
from tasks.market.report import publish_report
from tasks.market.tasks import check_prices, forecast_next, ingest_prices, walk_forward
from tasks.store import data_root


@flow(name="market")
def market(input: str | None = None, symbol: str | None = None, target: str | None = None,
           date_column: str | None = None, volume_column: str | None = None, splits: str = "adjust",
           train: str = "auto", lag: int = 20,
           horizon: int = 1, folds: int = 3, epochs: int = 15, hidden: int = 32, cost: float = 0.0005,
           model_name: str = "market", seed: int = 0, mc_samples: int = 0, tune: int = 0, out: str | None = None,
           dask_address: str | None = None, run_id: str | None = None) -> dict:
    """Ingest, check and gate, walk forward (leakage-free windows, LSTM and baselines), forecast, publish."""
    with pipeline_run("market", dict(locals()), publish=publish_report, out=out, run_id=run_id,
                      dask_address=dask_address) as run:
        run_dir, root = str(run.dir), str(data_root(out))
        prices = run.stage("ingest", ingest_prices, run_dir, input=input, symbol=symbol, target=target,
                           date_column=date_column, volume_column=volume_column, seed=seed)
        checked = run.stage("check", check_prices, prices["output"], run_dir, splits=splits,
                            adjusted=prices["read"]["adjusted_close"])
        run.add_counts(checked["records_in"], checked["records_valid"], checked["records_quarantined"],
                       unsorted_rows=checked["unsorted_rows"], empty_cells_skipped=prices["read"]["empty_cells"])
        run.inputs.update(prices["read"], splits=checked["splits"])
        gate(run, checked["profile"], "market_prices", "prices", min_rows=lag + horizon + 1)
        trained = run.stage("walk_forward", walk_forward, checked["output"], run_dir, root, mode=train, lag=lag,
                            horizon=horizon, folds=folds, epochs=epochs, hidden=hidden, cost=cost,
                            model_name=model_name, seed=seed, mc_samples=mc_samples, tune=tune)
        run.model, run.metrics, run.baselines = trained["model"], trained["metrics"], trained["baselines"]
        run.stage("forecast", forecast_next, checked["output"], trained["output"], run_dir, root)
    return run.to_dict()
