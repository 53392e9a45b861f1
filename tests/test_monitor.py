"""PSI and KS drift per feature on small seeded samples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tasks import monitor


def normals(seed: int, loc: float = 0.0, n: int = 2000) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc, 1.0, n)


class TestPopulationStabilityIndex:
    def test_identical_samples_give_zero(self) -> None:
        sample = normals(0)
        assert monitor.population_stability_index(sample, sample) == pytest.approx(0.0, abs=1e-12)

    def test_two_samples_of_one_distribution_stay_below_threshold(self) -> None:
        assert monitor.population_stability_index(normals(0), normals(1)) < 0.05

    def test_shifted_normal_is_large(self) -> None:
        psi = monitor.population_stability_index(normals(0), normals(1, loc=1.0))
        assert psi > monitor.PSI_THRESHOLD
        assert psi > 0.5

    def test_larger_shift_gives_larger_psi(self) -> None:
        ref = normals(0)
        small = monitor.population_stability_index(ref, normals(1, loc=0.5))
        large = monitor.population_stability_index(ref, normals(1, loc=2.0))
        assert 0 < small < large

    def test_binary_feature_shift_is_detected(self) -> None:
        ref = np.array([0.0] * 90 + [1.0] * 10)
        cur = np.array([0.0] * 10 + [1.0] * 90)
        assert monitor.population_stability_index(ref, cur) > monitor.PSI_THRESHOLD

    def test_non_finite_values_are_ignored(self) -> None:
        sample = normals(0, n=200)
        with_gaps = np.concatenate([sample, [np.nan, np.inf, -np.inf]])
        assert monitor.population_stability_index(with_gaps, sample) == pytest.approx(0.0, abs=1e-12)

    def test_empty_input_is_nan(self) -> None:
        assert math.isnan(monitor.population_stability_index(np.array([]), normals(0, n=10)))
        assert math.isnan(monitor.population_stability_index(normals(0, n=10), np.array([np.nan])))

    def test_constant_reference_detects_a_moved_constant(self) -> None:
        assert monitor.population_stability_index(np.full(50, 5.0), np.full(50, 9.0)) > monitor.PSI_THRESHOLD


class TestFeatureDrift:
    def test_flags_only_the_shifted_column(self) -> None:
        reference = pd.DataFrame({"stable": normals(0), "shifted": normals(1), "ref_only": normals(2)})
        current = pd.DataFrame({"stable": normals(3), "shifted": normals(4, loc=1.5), "cur_only": normals(5)})
        table = monitor.feature_drift(reference, current)
        assert list(table.columns) == ["feature", "psi", "ks_statistic", "ks_pvalue", "drifted"]
        assert list(table["feature"]) == ["stable", "shifted"]
        assert table.set_index("feature")["drifted"].to_dict() == {"stable": False, "shifted": True}
        shifted = table.set_index("feature").loc["shifted"]
        assert shifted["psi"] > monitor.PSI_THRESHOLD
        assert shifted["ks_statistic"] > monitor.KS_THRESHOLD
        assert shifted["ks_pvalue"] < 1e-6

    def test_ks_statistic_exact(self) -> None:
        # ECDFs of 0..9 and 5..14 differ by at most 5/10
        reference = pd.DataFrame({"v": np.arange(10.0)})
        current = pd.DataFrame({"v": np.arange(10.0) + 5})
        row = monitor.feature_drift(reference, current).iloc[0]
        assert row["ks_statistic"] == pytest.approx(0.5)
        assert bool(row["drifted"]) is True

    def test_identical_tables_do_not_drift(self) -> None:
        table = pd.DataFrame({"a": normals(0, n=300), "b": normals(1, n=300)})
        drift = monitor.feature_drift(table, table)
        assert list(drift["ks_statistic"]) == [0.0, 0.0]
        assert not drift["drifted"].any()

    def test_thresholds_are_configurable(self) -> None:
        reference = pd.DataFrame({"v": normals(0)})
        current = pd.DataFrame({"v": normals(1, loc=0.3)})
        assert bool(monitor.feature_drift(reference, current).iloc[0]["drifted"]) is True
        relaxed = monitor.feature_drift(reference, current, psi_threshold=10, ks_threshold=0.9)
        assert bool(relaxed.iloc[0]["drifted"]) is False

    def test_all_missing_column_is_nan_not_drifted(self) -> None:
        reference = pd.DataFrame({"v": [1.0, 2.0, 3.0]})
        current = pd.DataFrame({"v": [np.nan, np.nan]})
        row = monitor.feature_drift(reference, current).iloc[0]
        assert math.isnan(row["psi"]) and math.isnan(row["ks_statistic"])
        assert bool(row["drifted"]) is False

    def test_no_common_columns_gives_empty_table(self) -> None:
        drift = monitor.feature_drift(pd.DataFrame({"a": [1.0]}), pd.DataFrame({"b": [1.0]}))
        assert len(drift) == 0
        assert list(drift.columns) == ["feature", "psi", "ks_statistic", "ks_pvalue", "drifted"]
