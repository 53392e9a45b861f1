"""Calibration, thresholds, uncertainty, error analysis and attributions on small cases with known answers."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from models.train import enable_dropout, predict_proba_mc
from tasks import insight
from tasks.insight_report import insight_sections
from tasks.metrics import classification_metrics
from tasks.reporting import Report


def _calibrated_toy(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes; the label is drawn from exactly the stated probability, so the model is calibrated."""
    rng = np.random.default_rng(seed)
    p1 = rng.uniform(0, 1, n)
    y = (rng.uniform(0, 1, n) < p1).astype(int)
    return y, np.column_stack([1 - p1, p1])


def test_perfectly_calibrated_model_has_ece_near_zero():
    y, proba = _calibrated_toy()
    assert insight.expected_calibration_error(y, proba) < 0.015


def test_overconfident_model_has_the_ece_of_its_gap():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    proba = np.tile([0.95, 0.05], (10, 1))  # always 95 % sure of class 0, right 40 % of the time
    assert insight.expected_calibration_error(y, proba) == pytest.approx(0.55)
    table = insight.reliability(y, proba)
    assert table["count"].sum() == 10 and table.loc[table["count"] > 0, "accuracy"].item() == pytest.approx(0.4)


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_fitted_on_validation_repairs_a_distorted_model(method):
    y, proba = _calibrated_toy()
    distorted = proba**3 / (proba**3).sum(axis=1, keepdims=True)  # sharpened: overconfident
    calibration = insight.fit_calibration(distorted[:10_000], y[:10_000], method)
    fixed = insight.apply_calibration(calibration, distorted[10_000:])
    before = insight.expected_calibration_error(y[10_000:], distorted[10_000:])
    after = insight.expected_calibration_error(y[10_000:], fixed)
    assert before > 0.08 and after < 0.03
    assert np.allclose(fixed.sum(axis=1), 1)


def test_unknown_calibration_method_is_refused():
    with pytest.raises(ValueError, match="platt or isotonic"):
        insight.fit_calibration(np.full((4, 2), 0.5), np.array([0, 1, 0, 1]), "beta")


def test_binary_operating_point_maximises_f1_on_validation():
    y = np.array([0, 0, 0, 1, 1, 1])
    p1 = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.9])  # 0.5 misses two positives; 0.35 gets all of them
    point = insight.operating_point(y, np.column_stack([1 - p1, p1]), ["neg", "pos"])
    assert point["threshold"] == pytest.approx(0.35)
    assert (insight.decide(point, np.column_stack([1 - p1, p1])) == y).all()
    assert insight.operating_point(y, np.column_stack([1 - p1, p1, 0 * p1]), ["a", "b", "c"])["rule"] == "argmax"


def test_specificity_and_average_precision_beside_accuracy():
    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 1, 1])
    m = classification_metrics(y, pred, np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]]),
                               class_names=["a", "b"])
    assert m["per_class"]["b"]["specificity"] == pytest.approx(0.5)  # one of the two a's called b
    assert m["per_class"]["a"]["specificity"] == pytest.approx(1.0)
    assert m["average_precision"] == pytest.approx(1.0)  # the b's have the highest scores


def test_uncertainty_separates_right_from_wrong():
    y = np.zeros(100, int)
    y_pred = np.r_[np.zeros(80, int), np.ones(20, int)]  # the last 20 are wrong ...
    uncertainty = np.r_[np.linspace(0, 0.3, 80), np.linspace(0.6, 1, 20)]  # ... and the most uncertain
    summary = insight.uncertainty_summary(y, y_pred, uncertainty)
    assert summary["error_detection_auroc"] == pytest.approx(1.0)
    assert summary["accuracy_least_uncertain"] == 1.0 and summary["accuracy_most_uncertain"] == 0.0
    table = insight.accuracy_by_uncertainty(y, y_pred, uncertainty)
    assert table["accuracy"].is_monotonic_decreasing


def test_integrated_gradients_of_a_linear_model_equal_weight_times_input():
    linear = nn.Linear(5, 2)
    x = torch.randn(3, 5)
    attributions = insight.integrated_gradients(linear, x, np.array([1, 0, 1]))
    weights = linear.weight.detach().numpy()
    expected = weights[[1, 0, 1]] * x.numpy()
    assert np.allclose(attributions, expected, atol=1e-4)


def test_token_attributions_point_at_the_token_that_decides():
    torch.manual_seed(0)

    class BagOfWords(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 1, padding_idx=0)
            with torch.no_grad():
                self.embed.weight.zero_()
                self.embed.weight[7] = 3.0  # only token 7 matters

        def forward(self, ids):
            score = self.embed(ids).sum(dim=(1, 2))
            return torch.stack([-score, score], dim=1)

    model = BagOfWords()
    importance = insight.embedding_attributions(model, model.embed, torch.tensor([[2, 7, 3, 0]]), np.array([1]))
    assert importance[0].argmax() == 1
    assert np.allclose(importance[0, [0, 2, 3]], 0)


def test_grad_cam_is_upsampled_to_the_chip():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    x = torch.randn(2, 3, 8, 8)
    cam = insight.grad_cam(lambda t: model(t)[:, :, 4, 4], model[0], x, np.array([0, 1]))
    assert cam.shape == (2, 8, 8) and (cam >= 0).all()


def test_mc_dropout_gives_spread_only_where_dropout_is():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.Dropout(0.5), nn.Linear(16, 3))
    model.eval()
    enable_dropout(model)
    assert model[2].training and not model[1].training
    mean, entropy = predict_proba_mc(model, torch.randn(6, 4), samples=20)
    assert mean.shape == (6, 3) and np.allclose(mean.sum(axis=1), 1, atol=1e-5)
    assert entropy.shape == (6,) and (entropy > 0).all() and not model.training


def test_confusion_pairs_slices_and_mistakes():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    pred = np.array([0, 1, 1, 0, 1, 1, 2])
    pairs = insight.confusion_pairs(y, pred, ["a", "b", "c"])
    assert pairs.iloc[0][["true", "predicted", "count"]].tolist() == ["c", "b", 2]
    slices = insight.slice_metrics(y, pred, np.array(["s", "s", "s", "l", "l", "l", "l"]))
    assert slices.set_index("slice").loc["s", "accuracy"] == pytest.approx(2 / 3)
    assert slices.set_index("slice").loc["l", "macro_f1"] == pytest.approx(0.25)  # classes 1 and 2; not 0
    bins = pd.Series(pd.cut([30, 3, 12, 30, 7, 3, 12], [0, 5, 10, 20, 40], labels=["0-5", "6-10", "11-20", "21-40"]))
    assert insight.slice_metrics(y, pred, bins)["slice"].tolist() == ["0-5", "6-10", "11-20", "21-40"]
    proba = np.eye(3)[pred] * 0.5 + 0.5 / 3
    proba[4, 1] = 0.99
    assert insight.confident_mistakes(y, proba, n=1).tolist() == [4]


def test_embeddings_and_report_sections(tmp_path):
    rng = np.random.default_rng(0)
    features = np.r_[rng.normal(0, 1, (40, 8)), rng.normal(5, 1, (40, 8))]
    y = np.r_[np.zeros(40, int), np.ones(40, int)]
    table = insight.embeddings_table(features, y, y, seed=0)
    assert table[["pca_1", "tsne_1"]].notna().all().all()
    assert abs(table.groupby("y_true")["pca_1"].mean().diff().iloc[-1]) > 5  # the classes separate
    metrics, evaluation, _ = insight.analyse_predictions(y, np.eye(2)[y] * 0.8 + 0.1, y, np.eye(2)[y] * 0.8 + 0.1,
                                                         ["a", "b"], calibrate="isotonic",
                                                         uncertainty=rng.uniform(size=80))
    evaluation.to_parquet(tmp_path / "evaluation.parquet")
    table.to_parquet(tmp_path / "embeddings.parquet")
    report = Report("t")
    insight_sections(report, {"dir": str(tmp_path), "metrics": metrics}, ["a", "b"], slices={})
    assert {"reliability", "uncertainty", "embeddings"} <= set(report.figures)
    assert list(evaluation.filter(like="raw_p_").columns) == ["raw_p_0", "raw_p_1"]
    assert metrics["calibration"] == "isotonic" and "ece_calibrated" in metrics


def test_forecast_intervals_cover_their_level_when_the_noise_is_known():
    from tasks.market.forecaster import forecast_interval

    rng = np.random.default_rng(0)
    truth = rng.normal(0, 0.02, 50_000)
    lower, upper = forecast_interval(np.zeros_like(truth), np.full_like(truth, 0.01), 0.02**2 - 0.01**2)
    assert ((truth >= lower) & (truth <= upper)).mean() == pytest.approx(0.9, abs=0.01)


def test_volatility_regimes_use_only_the_past():
    from tasks.market.report import error_by_regime, volatility_regimes

    rng = np.random.default_rng(0)
    returns = np.r_[rng.normal(0, 0.001, 200), rng.normal(0, 0.05, 200)]
    frame = pd.DataFrame({"symbol": "A", "date": pd.date_range("2020-01-01", periods=400),
                          "actual_return": returns, "predicted_return": 0.0})
    regimes = volatility_regimes(frame)
    assert regimes.iloc[0] == "unknown"  # no history yet
    assert regimes[regimes == "high"].index.min() > 200  # the calm stretch ends at 200; no look-ahead
    assert regimes[regimes == "low"].index.max() <= 200  # day 200 has seen only calm days
    table = error_by_regime(frame).set_index("regime")
    assert table.loc["high", "lstm_rmse"] > 10 * table.loc["low", "lstm_rmse"]


def test_cross_validation_reports_every_fold_and_the_spread():
    y = np.repeat([0, 1], 30)
    seen = []

    def fit_predict(fit, stop, held, fold):
        seen.append((fold, fit, stop, held))
        return np.eye(2)[y[held]] if fold == 0 else np.eye(2)[1 - y[held]]  # fold 0 perfect, the rest all wrong

    cv = insight.cross_validate(fit_predict, y, 3, class_names=["a", "b"])
    assert [f for f, *_ in seen] == [0, 1, 2]
    for _, fit, stop, held in seen:  # early stopping never sees the fold it scores, nor the records it fits
        assert not (set(fit) & set(stop)) and not (set(stop) & set(held)) and not (set(fit) & set(held))
        assert len(fit) + len(stop) + len(held) == len(y) and len(stop) == 6 and set(y[stop]) == {0, 1}
    assert sorted(np.concatenate([held for *_, held in seen]).tolist()) == list(range(len(y)))
    assert cv["accuracy"]["folds"] == [1.0, 0.0, 0.0]
    assert cv["accuracy"]["mean"] == pytest.approx(1 / 3) and cv["accuracy"]["std"] > 0.4


def test_the_class_map_scores_with_the_models_calibration():
    from tasks.satellite.scoring import classify_block

    torch.manual_seed(0)
    model = nn.Conv2d(2, 3, 1).eval()
    block = np.random.default_rng(0).normal(size=(2, 4, 5)).astype("float32")
    raw = classify_block(block, model)
    calibration = {"method": "platt", "classes": [{"a": 0.2, "b": 0.0}, None, {"a": 3.0, "b": 1.0}]}
    calibrated = classify_block(block, model, calibration)
    with torch.no_grad():
        proba = torch.softmax(model(torch.from_numpy(block)[None]), dim=1)[0].numpy()
    expected = insight.apply_calibration(calibration, proba.reshape(3, -1).T).max(axis=1).reshape(4, 5)
    assert np.allclose(calibrated[1], expected, atol=1e-6) and not np.allclose(calibrated[1], raw[1])


def test_identical_points_get_pca_but_no_tsne():
    from tasks.insight import embed_2d

    table = embed_2d(np.ones((40, 8), dtype=np.float32))
    assert table[["pca_1", "pca_2"]].notna().all().all() and table[["tsne_1", "tsne_2"]].isna().all().all()


def _flip(y: np.ndarray, share: float, seed: int) -> np.ndarray:
    """One-hot predictions that are right except on ``share`` of the records, picked at random."""
    rng = np.random.default_rng(seed)
    pred = np.where(rng.uniform(size=len(y)) < share, 1 - y, y)
    return np.eye(2)[pred]


def test_a_deep_share_is_kept_only_when_its_gain_is_clear_of_the_noise():
    y = np.random.default_rng(0).integers(0, 2, 600)
    linear = _flip(y, 0.30, seed=1)
    one_record_better = linear.copy()
    wrong = np.flatnonzero(linear.argmax(1) != y)[0]
    one_record_better[wrong] = np.eye(2)[y[wrong]]
    share, scores = insight.choose_deep_share(y, {0.0: linear, 0.5: one_record_better})
    assert share == 0.0 and scores["0.5"]["gain"] > 0
    share, scores = insight.choose_deep_share(y, {0.0: linear, 0.5: _flip(y, 0.10, seed=2),
                                                 1.0: _flip(y, 0.05, seed=3)})
    assert share == 1.0 and scores["1.0"]["gain"] > 2 * scores["1.0"]["se"]


def test_the_report_says_how_much_of_the_cnn_the_model_keeps_and_why(tmp_path) -> None:
    import json

    from tasks.insight_report import deep_share_section

    scores = {"0.0": {"macro_f1": 0.875, "gain": 0.0, "se": 0.0}, "0.75": {"macro_f1": 0.94, "gain": 0.06, "se": 0.06}}
    (tmp_path / "training.json").write_text(json.dumps({"history": {"mix": 0.0, "mix_val": scores}}))
    report = Report("r")
    deep_share_section(report, tmp_path)
    html = report.html()
    assert "mix = 0," in html and "no share gained more than twice its standard error" in html and "0.75" in html
    empty = Report("r")
    (tmp_path / "training.json").write_text(json.dumps({"history": {"train_loss": [1.0]}}))
    deep_share_section(empty, tmp_path)
    assert empty.parts == []
