"""The LSTM forecaster's lifecycle: windows as a dataset, the spec the lifecycle drives, shrinkage on validation."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.market import windows
from tasks.market.synthetic import synthetic_prices
from tests.conftest import uneven_prices


class TestWindowDataset:
    def test_loader_batches_are_gathered_from_the_view(self) -> None:
        from models.train import batches as loader
        from tasks.market.forecaster import WindowDataset

        prices = uneven_prices()
        fold = windows.fold_windows(prices, np.datetime64("2024-02-12"), np.datetime64("2024-03-15"), lag=5)
        starts = windows.window_starts(fold.train)
        x, y = windows.gather_windows(fold, starts)
        batches = list(loader(WindowDataset(fold, starts, target_scale=2.0), 8))
        assert len(batches) == -(-len(starts) // 8)
        np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in batches]), x)
        np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y / np.float32(2.0))


class TestMarketSpec:
    def test_a_champion_is_scored_with_its_own_scalers(self) -> None:
        from models.card import Architecture, ModelCard
        from tasks.market.forecaster import MarketSettings, MarketSpec

        def card(scalers: dict, horizon: int = 1) -> ModelCard:
            return ModelCard(architecture=Architecture(name="LSTMForecaster"), scalers=scalers,
                             parameters={"lag": 5, "horizon": horizon})

        prices = synthetic_prices(symbols=2, days=160).assign(date=lambda f: pd.to_datetime(f["date"]))
        prices = prices.rename(columns={"close": "price"})[["date", "symbol", "price", "volume"]]
        spec = MarketSpec(prices, MarketSettings(lag=5, horizon=1, folds=2, epochs=1, hidden=4, cost=0.0, seed=0,
                                                 mc_samples=0))
        fold, units = spec.last.fold, np.flatnonzero(spec.split == 1)
        own = {str(n): (m.tolist(), s.tolist()) for n, m, s in zip(fold.symbols, fold.mean, fold.std, strict=True)}
        np.testing.assert_allclose(spec.inputs(card(own), units), fold.x[spec.starts[units]], atol=1e-5)
        other = {n: ([m + 1.0 for m in mean], [2.0 * s for s in std]) for n, (mean, std) in own.items()}
        mean, std = fold.mean[spec.symbol[units]][:, None], fold.std[spec.symbol[units]][:, None]
        raw = fold.x[spec.starts[units]] * std + mean
        expected = (raw - (mean + 1.0)) / (2.0 * std)
        np.testing.assert_allclose(spec.inputs(card(other), units), expected, rtol=1e-4, atol=1e-5)
        assert spec.mismatch(card(own)) is None
        assert spec.mismatch(card(own, horizon=2)).endswith("run with --lag 5 --horizon 2")
        assert spec.mismatch(card({"SYM0": own["SYM0"]})).startswith("it has no scaler for SYM1")
        val_dates = windows.target_dates(fold, spec.starts[units], spec.dates)
        test_dates = windows.target_dates(fold, spec.starts[spec.split == 2], spec.dates)
        assert val_dates.max() < spec.last.start <= test_dates.min()  # validation precedes the test period


class TestShrinkOnValidation:
    def test_a_forecast_without_signal_is_shrunk_to_no_change_and_a_good_one_kept(self) -> None:
        from tasks.market.forecaster import shrink_on_validation

        rng = np.random.default_rng(0)
        actual = rng.normal(0, 0.01, 500)
        assert shrink_on_validation(actual, rng.normal(0, 0.01, 500)) == 0.0
        assert shrink_on_validation(actual, actual) == 1.0
        assert shrink_on_validation(actual, 2 * actual) == 0.5

    def test_a_gain_on_validation_within_the_noise_keeps_no_change(self) -> None:
        from tasks.market.forecaster import shrink_on_validation

        rng = np.random.default_rng(1)
        actual = rng.normal(0, 0.01, 250)
        faint = rng.normal(0, 0.01, 250) + 0.1 * actual  # a quarter of it lowers the validation error, by too little
        assert np.mean((actual - 0.25 * faint) ** 2) < np.mean(actual**2)
        assert shrink_on_validation(actual, faint) == 0.0
        assert shrink_on_validation(actual, 0.5 * actual + rng.normal(0, 0.002, 250)) > 0.0

    def test_symbols_moving_together_on_a_day_count_as_one_piece_of_evidence(self) -> None:
        from tasks.market.forecaster import shrink_on_validation

        rng = np.random.default_rng(1)
        day = rng.normal(0, 0.01, 40)  # five symbols with the same return each day
        forecast = rng.normal(0, 0.01, 40) + 0.15 * day
        actual, forecast = np.repeat(day, 5), np.repeat(forecast, 5) + rng.normal(0, 1e-4, 200)
        assert shrink_on_validation(actual, forecast) == 0.25  # 200 windows seem to show a gain
        assert shrink_on_validation(actual, forecast, np.repeat(np.arange(40), 5)) == 0.0  # 40 days do not
