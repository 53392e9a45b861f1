"""The shared training loop on a tiny linearly separable problem, on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from models import train
from models.train import TrainConfig


def separable(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian blobs far apart: class = 1 when x0 + x1 > 0."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(0.0, 0.3, (n, 2)) + np.where(y[:, None] == 1, 1.5, -1.5)
    return x.astype("float32"), y.astype("int64")


def linear(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(2, 2)


def fit(model: nn.Module, **config) -> dict:
    options = {"epochs": 30, "batch_size": 16, "lr": 0.05, "patience": 5, "device": "cpu", "progress": False}
    config = TrainConfig(**(options | config))
    return train.train_model(model, separable(64, seed=0), separable(32, seed=1), config=config)


class TestTrainModel:
    def test_reaches_high_validation_accuracy(self) -> None:
        model = linear()
        fit(model)
        x_val, y_val = separable(32, seed=1)
        accuracy = (train.predict_proba(model, x_val, device="cpu").argmax(axis=1) == y_val).mean()
        assert accuracy >= 0.95

    def test_history_has_a_loss_per_epoch_and_the_best_epoch(self) -> None:
        history = fit(linear(), epochs=6, patience=10)
        assert len(history["train_loss"]) == len(history["val_loss"]) == 6
        assert 1 <= history["best_epoch"] <= 6
        assert history["best_val_loss"] == min(history["val_loss"])
        assert history["val_loss"][history["best_epoch"] - 1] == history["best_val_loss"]
        assert history["device"] == "cpu"
        assert history["seconds"] >= 0
        assert history["train_loss"][-1] < history["train_loss"][0]

    def test_best_weights_are_restored(self) -> None:
        model = linear()
        history = fit(model, epochs=8, patience=10)
        x_val, y_val = separable(32, seed=1)
        with torch.no_grad():
            loss = nn.CrossEntropyLoss()(model(torch.as_tensor(x_val)), torch.as_tensor(y_val))
        assert float(loss) == pytest.approx(history["best_val_loss"], rel=1e-5)
        assert not model.training

    def test_early_stopping_after_patience_epochs_without_improvement(self) -> None:
        model = linear()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        history = fit(model, epochs=50, lr=0.0, patience=3)
        assert len(history["val_loss"]) == 1 + 3
        assert history["best_epoch"] == 1
        for name, value in model.state_dict().items():
            assert torch.equal(value, before[name])

    def test_a_small_set_gets_enough_batches(self) -> None:
        history = fit(linear(), epochs=1, lr=1e-4, patience=50, min_steps=10)  # 64 records of 16: 4 batches/epoch
        assert len(history["val_loss"]) == 3

    def test_same_seed_gives_identical_weights(self) -> None:
        first, second = linear(seed=7), linear(seed=7)
        history_1 = fit(first, epochs=5, seed=3)
        history_2 = fit(second, epochs=5, seed=3)
        assert history_1["val_loss"] == history_2["val_loss"]
        for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
            assert torch.equal(a, b), name

    def test_different_shuffle_seed_changes_the_path(self) -> None:
        history_1 = fit(linear(seed=7), epochs=3, seed=3)
        history_2 = fit(linear(seed=7), epochs=3, seed=4)
        assert history_1["train_loss"] != history_2["train_loss"]

    def test_custom_loss_and_datasets(self) -> None:
        torch.manual_seed(0)
        model = nn.Linear(1, 1)
        x = torch.linspace(-1, 1, 32).unsqueeze(1)
        data = torch.utils.data.TensorDataset(x, 2 * x + 1)
        history = train.train_model(model, data, data, loss_fn=nn.MSELoss(),
                                    config=TrainConfig(epochs=60, lr=0.1, device="cpu", progress=False))
        assert history["best_val_loss"] < 1e-2
        assert model.weight.detach().item() == pytest.approx(2.0, abs=0.1)
        assert model.bias.detach().item() == pytest.approx(1.0, abs=0.1)


class TestBatches:
    def test_arrays_come_in_dataloaders_batches_and_draw_the_same_random_numbers(self) -> None:
        from torch.utils.data import DataLoader, TensorDataset

        x, y = torch.arange(50.0)[:, None], torch.arange(50)
        ours = train.batches((x, y), 8, shuffle=True, generator=torch.Generator().manual_seed(3))
        theirs = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True,
                            generator=torch.Generator().manual_seed(3))
        for _ in range(2):
            torch.manual_seed(0)
            got = list(ours)
            after_ours = torch.rand(1)
            torch.manual_seed(0)
            expected = list(theirs)
            assert torch.equal(after_ours, torch.rand(1))
            assert len(got) == len(expected) == 7
            for (gx, gy), (ex, ey) in zip(got, expected, strict=True):
                assert torch.equal(gx, ex) and torch.equal(gy, ey)

    def test_a_batched_dataset_is_asked_for_whole_batches(self) -> None:
        class Squares(torch.utils.data.Dataset):
            batched = True

            def __init__(self) -> None:
                self.asked: list[int] = []

            def __len__(self) -> int:
                return 10

            def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
                self.asked.append(len(indices))
                index = torch.as_tensor(indices)
                return index.float(), index**2

        data = Squares()
        got = list(train.batches(data, 4))
        assert data.asked == [4, 4, 2]
        assert torch.equal(torch.cat([b[1] for b in got]), torch.arange(10) ** 2)


class TestPredictProba:
    def test_rows_sum_to_one(self) -> None:
        x, _ = separable(10)
        proba = train.predict_proba(linear(), x, batch_size=3, device="cpu")
        assert proba.shape == (10, 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
        assert ((proba >= 0) & (proba <= 1)).all()

    def test_batches_do_not_change_the_result(self) -> None:
        x, _ = separable(10)
        model = linear()
        np.testing.assert_allclose(train.predict_proba(model, x, batch_size=3, device="cpu"),
                                   train.predict_proba(model, x, batch_size=256, device="cpu"), rtol=1e-6)


class TestPickDevice:
    def test_cpu_when_cuda_is_absent(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        assert train.pick_device() == torch.device("cpu")

    def test_cuda_when_present(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        assert train.pick_device() == torch.device("cuda")

    def test_explicit_device_wins(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        assert train.pick_device("cpu") == torch.device("cpu")


class TestSeedEverything:
    def test_numpy_and_torch_draws_repeat(self) -> None:
        train.seed_everything(5)
        first = (np.random.rand(3), torch.rand(3))
        train.seed_everything(5)
        second = (np.random.rand(3), torch.rand(3))
        np.testing.assert_array_equal(first[0], second[0])
        assert torch.equal(first[1], second[1])
